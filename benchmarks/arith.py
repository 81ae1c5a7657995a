"""`arith`: a built-in, deterministic generator of arithmetic word problems.

Integer answers, three difficulty levels, disjoint train/test splits (a problem's split is a
function of its text), no external data. Tiny models learn it in minutes on a CPU, which is
what the tests, the `tiny-cpu` training recipe and the demo need.
"""

from __future__ import annotations

import hashlib
import random

from benchmarks.specs import Problem

NAMES = ["Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ivy", "Jon", "Kai", "Lea"]
ITEMS = ["apples", "books", "coins", "marbles", "pens", "shells", "stamps", "cards"]

DEFAULT_SIZES = {"train": 2000, "test": 200}
TEST_FRACTION = 0.2  # share of the problem space that belongs to the test split


def _split_of(text: str) -> str:
    h = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    return "test" if (h % 1000) < TEST_FRACTION * 1000 else "train"


def _make(rng: random.Random, level: int) -> tuple[str, list[str], int]:
    """(problem text, solution steps, answer) for one problem of the given level.

    Operands stay small (single digits) so that a model of a few hundred thousand parameters
    can learn the facts; what grows with the level is the number of steps and operations."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    if level == 1:
        if rng.random() < 0.5:
            text = f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?"
            return text, [f"{a} + {b} = {a + b}"], a + b
        a, b = max(a, b), min(a, b)
        text = f"{name} has {a} {item} and gives away {b}. How many {item} are left?"
        return text, [f"{a} - {b} = {a - b}"], a - b
    if level == 2:
        c = rng.randint(1, min(a + b - 1, 9))
        text = (f"{name} has {a} {item}, finds {b} more, then loses {c}. "
                f"How many {item} does {name} have?")
        return text, [f"{a} + {b} = {a + b}", f"{a + b} - {c} = {a + b - c}"], a + b - c
    a, b, c = rng.randint(2, 5), rng.randint(2, 5), rng.randint(1, 9)
    text = (f"{name} buys {a} boxes with {b} {item} in each box and already had {c} {item}. "
            f"How many {item} does {name} have in total?")
    return text, [f"{a} * {b} = {a * b}", f"{a * b} + {c} = {a * b + c}"], a * b + c


def generate(split: str = "test", n: int | None = None, seed: int = 0,
             levels: tuple[int, ...] = (1, 2, 3)) -> list[Problem]:
    """`n` distinct problems of `split`, identical for the same (split, n, seed, levels)."""
    if split not in DEFAULT_SIZES:
        raise ValueError(f"arith split must be one of {sorted(DEFAULT_SIZES)}, got {split!r}")
    n = DEFAULT_SIZES[split] if n is None else n
    rng = random.Random(f"arith:{seed}")
    seen: set[str] = set()
    out: list[Problem] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * n + 10_000:
            raise RuntimeError(f"arith: could not generate {n} distinct {split} problems")
        level = levels[len(out) % len(levels)]
        text, steps, answer = _make(rng, level)
        if text in seen or _split_of(text) != split:
            continue
        seen.add(text)
        out.append(Problem(
            id=f"arith-{split}-{len(out):05d}", problem=text, answer=str(answer),
            solution=". ".join(steps) + f". The answer is \\boxed{{{answer}}}.",
            subject="arithmetic", level=level, source=f"amir-bench arith (seed {seed})",
            meta={"steps": steps}))
    return out


def format_solution(problem: Problem, template: str) -> str:
    """A reference completion in a template's answer format (used for supervised warm-start)."""
    steps = problem.meta.get("steps") or []
    work = ". ".join(steps)
    if template == "amir-xml":
        return f"<think> {work} </think> <answer> \\boxed{{{problem.answer}}} </answer>"
    return f"{work}. The answer is \\boxed{{{problem.answer}}}."
