"""Reward presets for GRPO / AMIR-GRPO, chosen by name from REWARD_PRESETS.

Correctness goes through the evaluation grader (`amir_bench.grading`): one Grader stays alive
for the whole training run and each batch of completions is graded in one `grade()` call, so
train-time and eval-time correctness are the same function. Every reward function follows
TRL's reward-function protocol and scores each completion exactly once per call.

Presets:
  correctness  1.0 if the grader accepts the answer, else 0.0
  paper        the AMIR-GRPO paper's sum: correctness 2.0 + strict <think>/<answer> format 0.5
               + numeric answer 0.2 + tag count (0.025 per tag, up to 0.1)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from amir_bench.errors import UserError

RewardFunc = Callable[..., list[float]]

THINK_OPEN = "<think>"


def full_completion(prompt: str, completion: str) -> str:
    """The completion as the model wrote it, with a `<think>` the prompt already opened put back."""
    if isinstance(prompt, str) and prompt.rstrip().endswith(THINK_OPEN) \
            and not completion.lstrip().startswith(THINK_OPEN):
        return THINK_OPEN + completion
    return completion


# ----------------------------------------------------------------------------- correctness


@dataclass
class CorrectnessReward:
    """`value` for a completion the grader accepts, else 0; logs accuracy and lengths by outcome."""

    problems: dict[str, tuple[Any, Any]]  # problem id -> (Problem, BenchmarkSpec)
    grader: Any  # amir_bench.grading.Grader (or anything with .grade(items))
    value: float = 1.0
    item_for: Callable[[Any, Any, str], Any] | None = None  # default: amir_bench.grading.item_for
    name: str = "correctness"

    @property
    def __name__(self) -> str:  # TRL names reward columns/metrics after __name__
        return self.name

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], problem_id: Sequence[str],
                 completion_ids: Sequence[Sequence[int]] | None = None,
                 log_metric: Callable[[str, float], None] | None = None, **_: Any) -> list[float]:
        make_item = self.item_for
        if make_item is None:
            from amir_bench.grading import item_for as make_item
        items = []
        for pid, p, c in zip(problem_id, prompts, completions, strict=True):
            problem, spec = self.problems[pid]
            items.append(make_item(problem, spec, full_completion(p, c)))
        correct = [r.correct for r in self.grader.grade(items)]  # one batched call
        if log_metric is not None and correct:
            log_metric("accuracy", sum(correct) / len(correct))
            if completion_ids is not None:
                lengths = [len(ids) for ids in completion_ids]
                right = [n for n, ok in zip(lengths, correct) if ok]
                wrong = [n for n, ok in zip(lengths, correct) if not ok]
                if right:
                    log_metric("completions/correct_mean_length", sum(right) / len(right))
                if wrong:
                    log_metric("completions/incorrect_mean_length", sum(wrong) / len(wrong))
        return [self.value if ok else 0.0 for ok in correct]


# ----------------------------------------------------------------------------- format shaping

_STRICT_FORMAT_RE = re.compile(r"^<think>.*?</think>\s*<answer>.*?</answer>$", re.DOTALL)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOXED_RE = re.compile(r"^\\boxed\{(.*)\}$", re.DOTALL)
_NUMBER_RE = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)$")
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
TAG_VALUE = 0.025
TRAILING_PENALTY_PER_CHAR = 0.001


def strict_format_score(text: str) -> bool:
    """Exactly `<think>…</think> <answer>…</answer>` and nothing around it."""
    return bool(_STRICT_FORMAT_RE.match(text.strip()))


def numeric_answer_score(text: str) -> bool:
    """The last <answer> holds a plain number (optionally inside \\boxed{}, commas/$ allowed)."""
    found = _ANSWER_RE.findall(text)
    if not found:
        return False
    ans = found[-1].strip()
    m = _BOXED_RE.match(ans)
    if m:
        ans = m.group(1).strip()
    ans = ans.replace(",", "").replace("$", "").strip()
    return bool(_NUMBER_RE.match(ans))


def tag_count_score(text: str) -> float:
    """0.025 per tag appearing exactly once (≤ 0.1), minus 0.001 per character after </answer>."""
    score = sum(TAG_VALUE for t in TAGS if text.count(t) == 1)
    if text.count("</answer>") == 1:
        trailing = text.split("</answer>", 1)[1].strip()
        score -= min(len(trailing) * TRAILING_PENALTY_PER_CHAR, len(TAGS) * TAG_VALUE)
    return score


@dataclass
class TextReward:
    """A reward computed from each completion's text alone: value × score(text)."""

    score: Callable[[str], float]
    value: float
    name: str

    @property
    def __name__(self) -> str:  # TRL names reward columns/metrics after __name__
        return self.name

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **_: Any) -> list[float]:
        return [self.value * float(self.score(full_completion(p, c)))
                for p, c in zip(prompts, completions, strict=True)]


# ----------------------------------------------------------------------------- presets


def _correctness(problems: dict, grader: Any) -> list[RewardFunc]:
    return [CorrectnessReward(problems, grader, value=1.0)]


def _paper(problems: dict, grader: Any) -> list[RewardFunc]:
    return [
        CorrectnessReward(problems, grader, value=2.0),
        TextReward(strict_format_score, 0.5, "strict_format"),
        TextReward(numeric_answer_score, 0.2, "numeric_answer"),
        TextReward(tag_count_score, 1.0, "tag_count"),
    ]


REWARD_PRESETS: dict[str, Callable[[dict, Any], list[RewardFunc]]] = {
    "correctness": _correctness,
    "paper": _paper,
}


def make_reward_funcs(preset: str, problems: dict[str, tuple[Any, Any]], grader: Any) -> list[RewardFunc]:
    """The reward functions of a preset, all sharing one grader."""
    if preset not in REWARD_PRESETS:
        raise UserError(f"unknown reward preset {preset!r}; choose one of {', '.join(REWARD_PRESETS)}")
    return REWARD_PRESETS[preset](problems, grader)
