"""Benchmark specs as data. One small spec per benchmark; REGISTRY resolves names.

Quirks of a source are data too: `hub_normalizer` names the function in
`benchmarks.loaders.HUB_NORMALIZERS` that brings a Hub row to the shared schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amir_bench.errors import UserError

CC_BY_NC_SA = "CC BY-NC-SA 4.0"  # MathArena's Hub releases (see ../shared/data/SOURCES.md)


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
    hub_normalizer: str = "plain"  # key of benchmarks.loaders.HUB_NORMALIZERS
    # Samples per problem the field reports this benchmark at (None: the run's default n)
    default_n: int | None = None
    license: str = "unknown"  # of the data as distributed (problems may be © the contest)
    rows: int | None = None  # rows of the split evaluated (the local file and the Hub agree)


_MATH = ("boxed", "answer_tag", "answer_line")
# Picking a number out of prose (answer_number, last_number) only where it measurably helps:
# GSM8K-style rows of the audit file agree with their harnesses 71.2 % without it, 99.1 %
# with it; MATH-500 rows with integer golds (the AIME/AMC case) 99.35 % either way.
_NUMERIC = ("boxed", "answer_tag", "gsm8k", "answer_line", "answer_number", "last_number")

REGISTRY: dict[str, BenchmarkSpec] = {s.name: s for s in [
    BenchmarkSpec("math500", "math500.jsonl", "HuggingFaceH4/MATH-500", "default", "test",
                  id_column="unique_id", extract=_MATH, description="MATH-500 (Lightman et al.)",
                  default_n=4, rows=500, license="MIT"),
    BenchmarkSpec("gsm8k", "gsm8k_test.jsonl", "openai/gsm8k", "main", "test",
                  problem_column="question", answer_column="answer", solution_column="answer",
                  extract=_NUMERIC, description="GSM8K test", hub_normalizer="gsm8k",
                  default_n=4, rows=1319, license="MIT"),
    BenchmarkSpec("gsm8k_train", "gsm8k_train.jsonl", "openai/gsm8k", "main", "train",
                  problem_column="question", answer_column="answer", solution_column="answer",
                  extract=_NUMERIC, description="GSM8K train (training set)",
                  hub_normalizer="gsm8k", rows=7473, license="MIT"),
    BenchmarkSpec("math_train", "math_train.jsonl", None, None, None, extract=_MATH,
                  description="MATH train (training set; local file only)", rows=7500,
                  license="MIT"),
    BenchmarkSpec("aime24", "aime24.jsonl", "HuggingFaceH4/aime_2024", "default", "train",
                  id_column="id", extract=_MATH, description="AIME 2024 I+II",
                  hub_normalizer="integer", default_n=32, rows=30,
                  license="MIT copy; problems © MAA"),
    BenchmarkSpec("aime25", "aime25.jsonl", "math-ai/aime25", "default", "test",
                  id_column="id", solution_column=None, extract=_MATH,
                  description="AIME 2025 I+II", hub_normalizer="integer", default_n=32,
                  rows=30, license="no license file upstream; problems © MAA"),
    BenchmarkSpec("aime26", "aime26.jsonl", "MathArena/aime_2026", "default", "train",
                  hub_id_format="2026-{half}-{number}", solution_column=None, extract=_MATH,
                  description="AIME 2026 I+II (MathArena)",
                  hub_normalizer="matharena_aime", default_n=32, rows=30, license=CC_BY_NC_SA),
    BenchmarkSpec("amc23", "amc23.jsonl", "math-ai/amc23", "default", "test",
                  problem_column="question", solution_column=None, extract=_MATH,
                  description="AMC 12A/12B 2023 (40)", default_n=32,
                  rows=40, license="MIT copy; problems © MAA"),
    BenchmarkSpec("hmmt_feb25", "hmmt_feb25.jsonl", "MathArena/hmmt_feb_2025", "default", "train",
                  hub_id_format="2025-feb-{problem_idx}", solution_column=None, extract=_MATH,
                  description="HMMT February 2025 (MathArena)", hub_normalizer="matharena",
                  default_n=32, rows=30, license=CC_BY_NC_SA),
    BenchmarkSpec("brumo25", "brumo25.jsonl", "MathArena/brumo_2025", "default", "train",
                  hub_id_format="2025-{problem_idx}", solution_column=None, extract=_MATH,
                  description="Brown University Math Olympiad 2025 (MathArena)",
                  hub_normalizer="matharena", default_n=32, rows=30, license=CC_BY_NC_SA),
    BenchmarkSpec("cmimc25", "cmimc25.jsonl", "MathArena/cmimc_2025", "default", "train",
                  hub_id_format="2025-{problem_idx}", solution_column=None, extract=_MATH,
                  description="CMIMC 2025 (MathArena)", hub_normalizer="matharena",
                  default_n=32, rows=40, license=CC_BY_NC_SA),
    BenchmarkSpec("olympiadbench", "olympiadbench.jsonl", "Hothan/OlympiadBench",
                  "OE_TO_maths_en_COMP", "train", id_column="id", problem_column="question",
                  answer_column="final_answer", solution_column="solution", extract=_MATH,
                  description="OlympiadBench OE text-only English math competition",
                  default_n=4, rows=675, license="Apache-2.0"),
    BenchmarkSpec("olymmath_en_easy", "olymmath_en_easy.jsonl", "RUC-AIBOX/OlymMATH", "en-easy",
                  "test", id_column="unique_id", solution_column=None, extract=_MATH,
                  description="OlymMATH English EASY (AIME level)", default_n=64, rows=100,
                  license="MIT"),
    BenchmarkSpec("olymmath_en_hard", "olymmath_en_hard.jsonl", "RUC-AIBOX/OlymMATH", "en-hard",
                  "test", id_column="unique_id", solution_column=None, extract=_MATH,
                  description="OlymMATH English HARD", default_n=64, rows=100, license="MIT"),
    BenchmarkSpec("minerva", "minerva_math.jsonl", "math-ai/minervamath", "default", "test",
                  hub_id_format="{index}", problem_column="question", solution_column=None,
                  extract=_MATH, description="Minerva OCW math", default_n=4,
                  rows=272, license="MIT copy; problems from MIT OCW"),
    BenchmarkSpec("aqua_rat", "aqua_rat.jsonl", "deepmind/aqua_rat", "raw", "test",
                  problem_column="question", answer_column="correct",
                  solution_column="rationale", extract=("boxed", "answer_tag", "choice_letter"),
                  answer_kind="choice", show_options=True, hub_normalizer="aqua_rat",
                  description="AQuA-RAT test (multiple choice A-E)", rows=254,
                  license="Apache-2.0"),
    BenchmarkSpec("livemathbench", "livemathbench_amc_en.jsonl", "opencompass/LiveMathBench",
                  "v202412_AMC_en", "test", hub_id_format="AMC_en_{index}",
                  problem_column="question", solution_column=None, extract=_MATH,
                  hub_normalizer="livemathbench",
                  description="LiveMathBench v202412 AMC English (gated on the Hub)",
                  rows=46, license="CC BY 4.0"),
    BenchmarkSpec("arith", None, builtin=True, extract=_NUMERIC,
                  description="built-in arithmetic word problems (seeded; train/test)",
                  rows=200, license="generated (no third-party data)"),
]}

ALIASES = {"math": "math500", "minerva_math": "minerva", "livemathbench_amc_en": "livemathbench",
           "aime2024": "aime24", "aime2025": "aime25", "aime2026": "aime26",
           "hmmt_feb_2025": "hmmt_feb25", "brumo_2025": "brumo25", "cmimc_2025": "cmimc25"}


def get_spec(name: str) -> BenchmarkSpec:
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in REGISTRY:
        raise UserError(f"unknown benchmark {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[key]
