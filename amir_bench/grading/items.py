"""What the grader takes and returns (GradeItem, GradeResult) and `item_for`, which turns one
benchmark problem and a completion into the item its spec asks for."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_EXTRACT = ("boxed", "answer_tag", "gsm8k", "answer_line", "answer_number", "last_number")
NUMBER_PICKS = ("answer_number", "last_number")  # modes that pick a number out of prose
CHOICE_EXTRACT = ("boxed", "answer_tag", "choice_letter")
STATUSES = ("ok", "no_answer", "timeout", "error")
KINDS = ("math", "choice")


@dataclass(frozen=True)
class GradeItem:
    """One completion (or bare answer) to grade against a gold under the given extraction."""

    completion: str  # full model completion OR a bare answer
    gold: str
    extract: tuple[str, ...] = DEFAULT_EXTRACT
    kind: str = "math"  # "math" | "choice"
    alternatives: tuple[str, ...] = ()  # other accepted golds (minerva alternatives; aqua option text)


@dataclass(frozen=True)
class GradeResult:
    """The verdict on one GradeItem."""

    extracted: str | None
    correct: bool
    status: str  # "ok" | "no_answer" | "timeout" | "error"
    # which extractor produced `extracted`: boxed | answer_tag | answer_line | gsm8k |
    # answer_number | choice_letter | last_number | bare (the completion is itself an
    # answer); None: nothing. Provenance, not part of the verdict: left out of ==.
    extract_mode: str | None = field(default=None, compare=False)

_PLAIN_NUMBER_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def is_plain_number(gold: str) -> bool:
    """`42`, `-3`, `1,000`, `2.5` (also inside `$…$`): a gold a last number can match."""
    return bool(_PLAIN_NUMBER_RE.fullmatch(gold.strip().strip("$").strip()))


def default_extract(gold: str, kind: str = "math") -> tuple[str, ...]:
    """Extraction when no benchmark is known: DEFAULT_EXTRACT, without the modes that pick
    a number out of prose unless the gold is a plain number (`\\frac{11}{2}` must never meet
    a stray 2)."""
    if kind == "choice":
        return CHOICE_EXTRACT
    if is_plain_number(gold):
        return DEFAULT_EXTRACT
    return tuple(m for m in DEFAULT_EXTRACT if m not in NUMBER_PICKS)


def item_for(problem, spec, completion: str) -> GradeItem:
    """The GradeItem for one completion of a benchmarks.specs Problem under its BenchmarkSpec."""
    meta = getattr(problem, "meta", None) or {}
    alts: tuple[str, ...] = ()
    if spec.answer_kind == "choice":
        text = meta.get("answer_text")
        if text and not meta.get("answer_text_needs_options"):
            alts = (str(text),)
    else:
        raw = meta.get("answer_alternatives") or ()
        if isinstance(raw, str):
            raw = (raw,)
        alts = tuple(a for a in (str(x).strip() for x in raw)
                     if a and a != problem.answer and _plausible_alternative(problem.answer, a))
    return GradeItem(completion=completion, gold=str(problem.answer), extract=tuple(spec.extract),
                     kind=spec.answer_kind, alternatives=alts)


_SIMPLE_SCI_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:(?:[eE]|\\times\s*10\^)\s*\{?\s*([+-]?\d+)\s*\}?)?\s*$")


def _simple_float(s: str) -> float | None:
    m = _SIMPLE_SCI_RE.match(s)
    if not m:
        return None
    return float(m.group(1)) * (10.0 ** int(m.group(2)) if m.group(2) else 1.0)


def _plausible_alternative(gold: str, alt: str) -> bool:
    """Drop an alternative that is a plain number more than 10% away from a plain-number gold
    (a few Minerva rows carry another problem's answer as their "alternative")."""
    g, a = _simple_float(gold), _simple_float(alt)
    if g is None or a is None:
        return True
    return abs(g - a) <= 0.1 * max(abs(g), abs(a))


_SHARED: dict[float, Grader] = {}
