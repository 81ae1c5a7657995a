"""`amir-bench grade`'s library half: JSONL lines of {"pred", "gold", ...} -> graded lines."""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Callable

from amir_bench.errors import UserError
from amir_bench.grading.extract import EXTRACTORS
from amir_bench.grading.items import CHOICE_EXTRACT, DEFAULT_EXTRACT, KINDS, STATUSES, GradeItem, GradeResult
from amir_bench.grading.pool import Grader


def _item_from_row(obj: dict, path: Path, line: int) -> GradeItem:
    def bad(what: str) -> UserError:
        return UserError(f"{path}:{line}: {what}")

    if "pred" not in obj:
        raise bad("missing field 'pred'")
    if "gold" not in obj:
        raise bad("missing field 'gold'")
    pred, gold = obj["pred"], obj["gold"]
    if pred is None:
        pred = ""
    if not isinstance(pred, str):
        raise bad(f"field 'pred' must be a string, got {type(pred).__name__}")
    if isinstance(gold, bool) or not isinstance(gold, (str, int, float)):
        raise bad(f"field 'gold' must be a string or a number, got {type(gold).__name__}")
    gold = str(gold)
    if not gold.strip():
        raise bad("field 'gold' is empty")
    kind = obj.get("kind", "math")
    if kind not in KINDS:
        raise bad(f"field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    extract = obj.get("extract")
    if extract is None:
        modes = CHOICE_EXTRACT if kind == "choice" else DEFAULT_EXTRACT
    else:
        if isinstance(extract, str):
            extract = [m.strip() for m in extract.split(",") if m.strip()]
        if not isinstance(extract, list) or not extract or not all(isinstance(m, str) for m in extract):
            raise bad("field 'extract' must be a non-empty list of mode names")
        unknown = [m for m in extract if m not in EXTRACTORS]
        if unknown:
            raise bad(f"unknown extraction mode {unknown[0]!r} (known: {', '.join(EXTRACTORS)})")
        modes = tuple(extract)
    alts = obj.get("alternatives", [])
    if isinstance(alts, str):
        alts = [alts]
    if not isinstance(alts, list) or not all(isinstance(a, (str, int, float)) for a in alts):
        raise bad("field 'alternatives' must be a list of strings")
    return GradeItem(completion=pred, gold=gold, extract=modes, kind=kind,
                     alternatives=tuple(str(a) for a in alts))


def grade_file(in_path, out_path, timeout: float = 5.0, workers: int | None = None,
               progress: Callable[[int], None] | None = None) -> dict:
    """`amir-bench grade FILE.jsonl`: read {"pred", "gold", optional "extract"/"kind"/
    "alternatives"} lines, write each line back with extracted/correct/grade_status.
    The output is written atomically (temp file + rename); returns counts."""
    from amir_bench.jsonio import atomic_write_jsonl, iter_jsonl

    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.exists():
        raise UserError(f"{in_path}: no such file")
    rows: list[dict] = []
    items: list[GradeItem] = []
    for line, obj in iter_jsonl(in_path):
        items.append(_item_from_row(obj, in_path, line))
        rows.append(obj)
    results: list[GradeResult] = []
    if items:
        with Grader(timeout=timeout, workers=min(workers or os.cpu_count() or 1, len(items))) as g:
            results = g.grade(items, progress=progress)
    out_rows = []
    counts: collections.Counter = collections.Counter({s: 0 for s in STATUSES})
    n_correct = 0
    for obj, res in zip(rows, results):
        out_rows.append({**obj, "extracted": res.extracted, "correct": res.correct,
                         "grade_status": res.status})
        counts[res.status] += 1
        n_correct += int(res.correct)
    atomic_write_jsonl(out_path, out_rows)
    return {"total": len(rows), "correct": n_correct,
            "accuracy": (n_correct / len(rows)) if rows else 0.0, **dict(counts)}

