"""`amir-bench grade`'s library half: JSONL lines of {"pred", "gold", ...} -> graded lines.

How a line's answer is extracted, first rule that applies:
1. the line's own `extract` (a list of mode names);
2. a benchmark (`--benchmark NAME` for the whole file, else the line's `benchmark` field,
   each renamed through `--map FROM=TO`): exactly what `amir-bench run` does for that
   benchmark (its spec through `item_for`);
3. the default (`default_extract`): boxed, <answer>, final-answer line, `####`, and a last
   number only when the gold itself is a plain number.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any, Callable

from amir_bench.errors import UserError
from amir_bench.grading.extract import EXTRACTORS
from amir_bench.grading.items import KINDS, STATUSES, GradeItem, default_extract, item_for
from amir_bench.grading.pool import Grader
from amir_bench.limits import GRADE_TIMEOUT_S


def parse_map(text: str | None) -> dict[str, str]:
    """`math=math500,mgsm_en=gsm8k` -> {"math": "math500", "mgsm_en": "gsm8k"}."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        src, sep, dst = part.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise UserError(f"--map: expected FROM=TO[,FROM=TO...], got {part.strip()!r}")
        out[src.strip()] = dst.strip()
    return out


def _field_checks(obj: dict, bad: Callable[[str], UserError]) -> tuple[str, str, str, tuple]:
    """(pred, gold, kind, alternatives) of one line, or a UserError saying what is wrong."""
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
    alts = obj.get("alternatives", [])
    if isinstance(alts, str):
        alts = [alts]
    if not isinstance(alts, list) or not all(isinstance(a, (str, int, float)) for a in alts):
        raise bad("field 'alternatives' must be a list of strings")
    return pred, gold, kind, tuple(str(a) for a in alts)


def _modes(extract: Any, bad: Callable[[str], UserError]) -> tuple[str, ...]:
    """A line's `extract` field (a list or a comma-separated string) as mode names."""
    if isinstance(extract, str):
        extract = [m.strip() for m in extract.split(",") if m.strip()]
    if not isinstance(extract, list) or not extract or not all(isinstance(m, str) for m in extract):
        raise bad("field 'extract' must be a non-empty list of mode names")
    unknown = [m for m in extract if m not in EXTRACTORS]
    if unknown:
        raise bad(f"unknown extraction mode {unknown[0]!r} (known: {', '.join(EXTRACTORS)})")
    return tuple(extract)


def _spec_item(name: str, pred: str, gold: str, alts: tuple[str, ...],
               bad: Callable[[str], UserError]) -> GradeItem:
    """The item `amir-bench run` builds for benchmark `name` (through `item_for`)."""
    from benchmarks.specs import Problem, get_spec

    try:
        spec = get_spec(name)
    except UserError as e:
        raise bad(f"{e} (rename it with --map {name}=NAME)") from None
    if spec.answer_kind == "choice":
        meta: dict[str, Any] = {"answer_text": alts[0]} if alts else {}
    else:
        meta = {"answer_alternatives": list(alts)}
    return item_for(Problem(id="", problem="", answer=gold, meta=meta), spec, pred)


def item_from_row(obj: dict, path: Path, line: int, benchmark: str | None = None,
                  bench_map: dict[str, str] | None = None) -> GradeItem:
    """The GradeItem of one input line (see the module docstring for the extraction rules)."""
    def bad(what: str) -> UserError:
        return UserError(f"{path}:{line}: {what}")

    pred, gold, kind, alts = _field_checks(obj, bad)
    if obj.get("extract") is not None:
        return GradeItem(completion=pred, gold=gold, extract=_modes(obj["extract"], bad),
                         kind=kind, alternatives=alts)
    name = benchmark or obj.get("benchmark")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise bad("field 'benchmark' must be a benchmark name")
        name = (bench_map or {}).get(name, name)
        return _spec_item(name, pred, gold, alts, bad)
    return GradeItem(completion=pred, gold=gold, extract=default_extract(gold, kind), kind=kind,
                     alternatives=alts)


def grade_lines(path: Path, lines: list[tuple[int, dict]], *,
                timeout: float = GRADE_TIMEOUT_S,
                workers: int | None = None, benchmark: str | None = None,
                bench_map: dict[str, str] | None = None,
                progress: Callable[[int], None] | None = None) -> list[dict]:
    """Each (line number, object) of `path` graded: the object plus extracted / correct /
    grade_status / extract_mode. Every line is checked before any grading starts."""
    items = [item_from_row(obj, path, i, benchmark, bench_map) for i, obj in lines]
    if not items:
        return []
    with Grader(timeout=timeout, workers=min(workers or os.cpu_count() or 1, len(items))) as g:
        results = g.grade(items, progress=progress)
    return [{**obj, "extracted": res.extracted, "correct": res.correct,
             "grade_status": res.status, "extract_mode": res.extract_mode}
            for (_, obj), res in zip(lines, results)]


def grade_file(in_path, out_path, timeout: float = GRADE_TIMEOUT_S,
               workers: int | None = None,
               progress: Callable[[int], None] | None = None, *, benchmark: str | None = None,
               bench_map: dict[str, str] | None = None) -> dict:
    """`amir-bench grade FILE.jsonl`: read {"pred", "gold", optional "benchmark"/"extract"/
    "kind"/"alternatives"} lines, write each line back with extracted/correct/grade_status/
    extract_mode. The output is written atomically (temp file + rename); returns counts."""
    from amir_bench.jsonio import atomic_write_jsonl, iter_jsonl

    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.exists():
        raise UserError(f"{in_path}: no such file")
    graded = grade_lines(in_path, list(iter_jsonl(in_path)), timeout=timeout, workers=workers,
                         benchmark=benchmark, bench_map=bench_map, progress=progress)
    atomic_write_jsonl(out_path, graded)
    counts: collections.Counter = collections.Counter({s: 0 for s in STATUSES})
    counts.update(r["grade_status"] for r in graded)
    n_correct = sum(bool(r["correct"]) for r in graded)
    modes = collections.Counter(r["extract_mode"] or "none" for r in graded)
    return {"total": len(graded), "correct": n_correct,
            "accuracy": (n_correct / len(graded)) if graded else 0.0, **dict(counts),
            "by_extract_mode": dict(sorted(modes.items()))}
