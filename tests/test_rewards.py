"""training/rewards.py: presets, the format shaping terms, and one batched grader call."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from amir_bench.errors import UserError
from benchmarks import arith
from benchmarks.specs import get_spec
from training.rewards import (REWARD_PRESETS, CorrectnessReward, full_completion, make_reward_funcs,
                              numeric_answer_score, strict_format_score, tag_count_score)

GOOD = "<think> 3 + 4 = 7 </think> <answer> \\boxed{7} </answer>"


@dataclass(frozen=True)
class FakeResult:
    correct: bool


class FakeGrader:
    """Accepts a completion when its boxed answer equals the gold; records every call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def grade(self, items):
        self.calls.append(len(items))
        return [FakeResult(f"\\boxed{{{it.gold}}}" in it.completion) for it in items]


@dataclass(frozen=True)
class Item:
    completion: str
    gold: str


def fake_item(problem, spec, completion):
    return Item(completion, problem.answer)


@pytest.fixture()
def problems():
    spec = get_spec("arith")
    return {p.id: (p, spec) for p in arith.generate("train", n=4)}


@pytest.mark.parametrize("text,strict,numeric,tags", [
    (GOOD, True, True, 0.1),
    ("<think>x</think>\n<answer>12</answer>", True, True, 0.1),
    ("<think>x</think> <answer> 1,234.5 </answer>", True, True, 0.1),
    ("<think>x</think> <answer> \\frac{1}{2} </answer>", True, False, 0.1),
    ("<think>x</think> <answer>7</answer> trailing", False, True, 0.1 - 0.008),
    ("<answer>7</answer>", False, True, 0.05),
    ("no tags, answer 7", False, False, 0.0),
    ("<think><think> x </think> <answer>7</answer>", True, True, 0.075),
])
def test_format_terms(text, strict, numeric, tags):
    assert strict_format_score(text) is strict
    assert numeric_answer_score(text) is numeric
    assert tag_count_score(text) == pytest.approx(tags)


def test_think_opened_by_the_prompt_is_restored():
    assert full_completion("...Assistant: <think>", " a </think> <answer>1</answer>").startswith("<think>")
    assert full_completion("plain prompt", "abc") == "abc"
    assert full_completion("x <think>", "<think> a") == "<think> a"


def test_correctness_grades_each_batch_in_one_call(problems):
    grader = FakeGrader()
    (fn,) = make_reward_funcs("correctness", problems, grader)
    fn.item_for = fake_item
    ids = list(problems)
    golds = [problems[i][0].answer for i in ids]
    completions = [f"so \\boxed{{{golds[0]}}}", "no answer", f"\\boxed{{{golds[2]}}}", "\\boxed{-1}"]
    logged: dict[str, float] = {}
    out = fn(prompts=["p"] * 4, completions=completions, problem_id=ids,
             completion_ids=[[1] * 5, [1] * 9, [1] * 7, [1] * 3], log_metric=logged.__setitem__)
    assert out == [1.0, 0.0, 1.0, 0.0]
    assert grader.calls == [4]  # one batched call, each completion once
    assert logged == {"accuracy": 0.5, "completions/correct_mean_length": 6.0,
                      "completions/incorrect_mean_length": 6.0}
    assert fn.__name__ == "correctness"


def test_paper_preset_values(problems):
    grader = FakeGrader()
    funcs = make_reward_funcs("paper", problems, grader)
    for f in funcs:
        if isinstance(f, CorrectnessReward):
            f.item_for = fake_item
    assert [f.__name__ for f in funcs] == ["correctness", "strict_format", "numeric_answer", "tag_count"]
    pid = next(iter(problems))
    gold = problems[pid][0].answer
    perfect = f"<think> work </think> <answer> \\boxed{{{gold}}} </answer>"
    wrong = "<think> work </think> <answer> \\boxed{-1} </answer>"
    totals = [sum(vals) for vals in zip(*[f(prompts=["p", "p"], completions=[perfect, wrong],
                                             problem_id=[pid, pid]) for f in funcs])]
    assert totals == pytest.approx([2.8, 0.8])
    assert grader.calls == [2]


def test_unknown_preset():
    with pytest.raises(UserError, match="unknown reward preset"):
        make_reward_funcs("accuracy", {}, FakeGrader())
    assert set(REWARD_PRESETS) == {"correctness", "paper"}


def test_correctness_through_the_real_grader(problems):
    from amir_bench.grading import Grader

    ids = list(problems)
    right = [f"<think> w </think> <answer> \\boxed{{{problems[i][0].answer}}} </answer>" for i in ids]
    wrong = ["<think> w </think> <answer> \\boxed{-999} </answer>" for _ in ids]
    with Grader(timeout=10.0, workers=1) as grader:
        (fn,) = make_reward_funcs("correctness", problems, grader)
        out = fn(prompts=["p"] * 8, completions=right + wrong, problem_id=ids + ids)
    assert out == [1.0] * 4 + [0.0] * 4
