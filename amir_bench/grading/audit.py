"""`amir-bench audit`: amir-bench's verdicts against another harness's, line by line.

Input: a JSONL file of prediction lines (graded here unless every line already carries a
`correct` verdict) or a run directory (its samples.jsonl records, read as raw JSON lines so
any field another harness's import stored can be compared). Output: a confusion matrix
overall, per benchmark and per `--by` group, agreement with a 95 % Wilson interval, and every
disagreement with what a person needs to adjudicate it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from amir_bench.errors import UserError
from amir_bench.jsonio import atomic_write_json, atomic_write_jsonl, atomic_write_text, iter_jsonl

EXCERPT_CHARS = 300
_TRUE = frozenset({"true", "1", "1.0", "yes", "correct", "pass", "passed"})
_FALSE = frozenset({"false", "0", "0.0", "no", "incorrect", "wrong", "fail", "failed"})


def as_verdict(value: Any, where: str) -> bool | None:
    """A harness verdict as a bool: booleans, 0/1 numbers and true/false-like strings;
    None (missing) stays None; anything else is a UserError naming the line."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise UserError(f"{where}: cannot read {value!r} as a verdict (expected true/false or 0/1)")


@dataclass
class Confusion:
    """Counts of (amir-bench verdict, other verdict) pairs and the agreement they give."""

    both_correct: int = 0
    ours_only: int = 0  # amir-bench accepts, the other harness rejects
    theirs_only: int = 0  # the other harness accepts, amir-bench rejects
    both_wrong: int = 0

    def add(self, ours: bool, theirs: bool) -> None:
        """Count one line."""
        if ours and theirs:
            self.both_correct += 1
        elif ours:
            self.ours_only += 1
        elif theirs:
            self.theirs_only += 1
        else:
            self.both_wrong += 1

    @property
    def n(self) -> int:
        return self.both_correct + self.ours_only + self.theirs_only + self.both_wrong

    def to_dict(self) -> dict:
        """Counts, both accuracies, agreement and its 95 % Wilson interval."""
        n = self.n
        agree = self.both_correct + self.both_wrong
        low, high = wilson_interval(agree, n)
        return {"n": n, "both_correct": self.both_correct, "ours_only": self.ours_only,
                "theirs_only": self.theirs_only, "both_wrong": self.both_wrong,
                "ours_accuracy": (self.both_correct + self.ours_only) / n if n else None,
                "theirs_accuracy": (self.both_correct + self.theirs_only) / n if n else None,
                "agreement": agree / n if n else None, "agreement_ci95": [low, high]}


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion k/n (scipy's binomtest); (None, None) for n = 0."""
    if n == 0:
        return None, None
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass
class AuditResult:
    """Confusion matrices by scope and the disagreeing lines."""

    against: str
    overall: Confusion = field(default_factory=Confusion)
    groups: dict[str, dict[str, Confusion]] = field(default_factory=dict)
    disagreements: list[dict] = field(default_factory=list)
    missing: int = 0  # lines without a verdict in the compared field

    def to_dict(self) -> dict:
        return {"against": self.against, "missing_verdicts": self.missing,
                "overall": self.overall.to_dict(),
                "groups": {scope: {k: c.to_dict() for k, c in sorted(g.items())}
                           for scope, g in self.groups.items()}}


def compare(rows: list[dict], against: str, by: str | None = None,
            source: str = "input") -> AuditResult:
    """Compare each graded row's `correct` with its `against` field (rows from
    `audit_rows`). Scopes: `benchmark` (when lines have one) and the `by` field."""
    res = AuditResult(against=against)
    scopes = ["benchmark"] + ([by] if by and by != "benchmark" else [])
    for row in rows:
        line = row.get("_line", "?")
        theirs = as_verdict(row.get(against), f"{source}:{line}: field {against!r}")
        if theirs is None:
            res.missing += 1
            continue
        ours = as_verdict(row.get("correct"), f"{source}:{line}: field 'correct'")
        if ours is None:
            raise UserError(f"{source}:{line}: no amir-bench verdict ('correct')")
        res.overall.add(ours, theirs)
        for scope in scopes:
            if scope in row:
                res.groups.setdefault(scope, {}).setdefault(
                    str(row[scope]), Confusion()).add(ours, theirs)
        if ours != theirs:
            res.disagreements.append(_disagreement(row, ours, theirs, against, by))
    if res.overall.n == 0:
        raise UserError(f"{source}: no line has a verdict in field {against!r}")
    return res


def _disagreement(row: dict, ours: bool, theirs: bool, against: str, by: str | None) -> dict:
    """What a person needs to adjudicate one disagreement."""
    pred = row.get("pred", row.get("completion")) or ""
    excerpt = pred if len(pred) <= EXCERPT_CHARS else "…" + pred[-EXCERPT_CHARS:]
    out = {"line": row.get("_line"), "id": row.get("id", row.get("problem_id")),
           "benchmark": row.get("benchmark"), "pred_excerpt": excerpt,
           "extracted": row.get("extracted"), "gold": row.get("gold"),
           "amir_bench": ours, against: theirs, "extract_mode": row.get("extract_mode"),
           "grade_status": row.get("grade_status")}
    if by and by not in out:
        out[by] = row.get(by)
    return out


def audit_rows(path: Path, grade: Callable[[Path, list[tuple[int, dict]]], list[dict]]
               ) -> tuple[list[dict], bool]:
    """(rows with amir-bench verdicts, whether they were graded here) from a run directory
    (its samples.jsonl, verdicts as recorded) or a JSONL file (graded with `grade` unless
    every line already has a `correct` verdict). Each row keeps its line number in `_line`."""
    path = Path(path)
    if path.is_dir():
        samples = path / "samples.jsonl"
        if not samples.exists():
            raise UserError(f"{path}: not a run directory (no samples.jsonl)")
        return [{**obj, "_line": i} for i, obj in iter_jsonl(samples)], False
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    lines = list(iter_jsonl(path))
    if not lines:
        raise UserError(f"{path}: no lines")
    if all(isinstance(obj.get("correct"), bool) for _, obj in lines):
        return [{**obj, "_line": i} for i, obj in lines], False
    graded = grade(path, lines)
    return [{**obj, "_line": i} for (i, _), obj in zip(lines, graded)], True


def write_audit(res: AuditResult, out_dir: Path, graded: list[dict] | None,
                markdown: str) -> None:
    """audit.json, disagreements.jsonl, disagreements.md (+ graded.jsonl when graded here)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if graded is not None:
        atomic_write_jsonl(out_dir / "graded.jsonl",
                           [{k: v for k, v in r.items() if k != "_line"} for r in graded])
    atomic_write_jsonl(out_dir / "disagreements.jsonl", res.disagreements)
    atomic_write_text(out_dir / "disagreements.md", markdown)
    atomic_write_json(out_dir / "audit.json", res.to_dict())

