"""Benchmark specs as data. One small spec per benchmark; REGISTRY resolves names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amir_bench.errors import UserError


@dataclass(frozen=True)
class Problem:
    """One benchmark row in the shared schema."""

    id: str
    problem: str
    answer: str
    solution: str | None = None
    subject: str | None = None
    level: int | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "problem": self.problem, "answer": self.answer,
                "solution": self.solution, "subject": self.subject, "level": self.level,
                "source": self.source, "meta": self.meta}


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    local_file: str | None  # file name in the shared schema under --data-dir
    hub_id: str | None = None
    hub_config: str | None = None
    hub_split: str | None = None
    id_column: str | None = None  # None: ids from hub_id_format
    hub_id_format: str = "{split}-{index}"  # Hub rows without an id column, as the local files
    problem_column: str = "problem"
    answer_column: str = "answer"
    solution_column: str | None = "solution"
    # Answer extraction, tried in order: boxed, answer_tag, answer_line, gsm8k, choice_letter,
    # last_number (amir_bench.grading.extract.EXTRACTORS)
    extract: tuple[str, ...] = ("boxed", "answer_tag", "answer_line")
    # "math" graded with math-verify; "choice" letters A-E (with option text as fallback)
    answer_kind: str = "math"
    show_options: bool = False  # template variant listing meta["options"]
    builtin: bool = False  # generated in-process (arith)
    description: str = ""


_MATH = ("boxed", "answer_tag", "answer_line")
# Picking a number out of prose (answer_number, last_number) only where it measurably helps:
# GSM8K-style rows of the audit file agree with their harnesses 71.2 % without it, 99.1 %
# with it; MATH-500 rows with integer golds (the AIME/AMC case) 99.35 % either way.
_NUMERIC = ("boxed", "answer_tag", "gsm8k", "answer_line", "answer_number", "last_number")

REGISTRY: dict[str, BenchmarkSpec] = {s.name: s for s in [
    BenchmarkSpec("math500", "math500.jsonl", "HuggingFaceH4/MATH-500", "default", "test",
                  id_column="unique_id", extract=_MATH, description="MATH-500 (Lightman et al.)"),
    BenchmarkSpec("gsm8k", "gsm8k_test.jsonl", "openai/gsm8k", "main", "test",
                  problem_column="question", answer_column="answer", solution_column="answer",
                  extract=_NUMERIC, description="GSM8K test"),
    BenchmarkSpec("gsm8k_train", "gsm8k_train.jsonl", "openai/gsm8k", "main", "train",
                  problem_column="question", answer_column="answer", solution_column="answer",
                  extract=_NUMERIC, description="GSM8K train (training set)"),
    BenchmarkSpec("math_train", "math_train.jsonl", None, None, None, extract=_MATH,
                  description="MATH train (training set; local file only)"),
    BenchmarkSpec("aime24", "aime24.jsonl", "HuggingFaceH4/aime_2024", "default", "train",
                  id_column="id", extract=_MATH, description="AIME 2024 I+II"),
    BenchmarkSpec("aime25", "aime25.jsonl", "math-ai/aime25", "default", "test",
                  id_column="id", solution_column=None, extract=_MATH,
                  description="AIME 2025 I+II"),
    BenchmarkSpec("amc23", "amc23.jsonl", "math-ai/amc23", "default", "test",
                  problem_column="question", solution_column=None, extract=_MATH,
                  description="AMC 12A/12B 2023 (40)"),
    BenchmarkSpec("olympiadbench", "olympiadbench.jsonl", "Hothan/OlympiadBench",
                  "OE_TO_maths_en_COMP", "train", id_column="id", problem_column="question",
                  answer_column="final_answer", solution_column="solution", extract=_MATH,
                  description="OlympiadBench OE text-only English math competition"),
    BenchmarkSpec("minerva", "minerva_math.jsonl", "math-ai/minervamath", "default", "test",
                  hub_id_format="{index}", problem_column="question", solution_column=None,
                  extract=_MATH,
                  description="Minerva OCW math"),
    BenchmarkSpec("aqua_rat", "aqua_rat.jsonl", "deepmind/aqua_rat", "raw", "test",
                  problem_column="question", answer_column="correct",
                  solution_column="rationale", extract=("boxed", "answer_tag", "choice_letter"),
                  answer_kind="choice", show_options=True,
                  description="AQuA-RAT test (multiple choice A-E)"),
    BenchmarkSpec("livemathbench", "livemathbench_amc_en.jsonl", "opencompass/LiveMathBench",
                  "v202412_AMC_en", "test", hub_id_format="AMC_en_{index}",
                  problem_column="question", solution_column=None,
                  extract=_MATH, description="LiveMathBench v202412 AMC English (gated on the Hub)"),
    BenchmarkSpec("arith", None, builtin=True, extract=_NUMERIC,
                  description="built-in arithmetic word problems (seeded; train/test)"),
]}

ALIASES = {"math": "math500", "minerva_math": "minerva", "livemathbench_amc_en": "livemathbench",
           "aime2024": "aime24", "aime2025": "aime25"}


def get_spec(name: str) -> BenchmarkSpec:
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in REGISTRY:
        raise UserError(f"unknown benchmark {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[key]
