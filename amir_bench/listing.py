"""`amir-bench ls`: the runs under a folder, one line each (benchmarks, n, records, accuracy).

Reads each run's manifest and summary.json (derived data, recomputed by `amir-bench summary`);
records are counted by lines, so listing a folder of large runs stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from amir_bench.errors import UserError
from amir_bench.jsonio import count_lines
from amir_bench.records import MANIFEST, SAMPLES, SUMMARY, read_samples


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_row(run_dir: Path) -> dict:
    """One run's listing: name, benchmarks, n, records, accuracy (records-weighted avg@n)."""
    manifest = _read_json(run_dir / MANIFEST)
    if not isinstance(manifest, dict):
        return {"run": str(run_dir), "error": f"unreadable {MANIFEST}"}
    summary = _read_json(run_dir / SUMMARY)
    benches = list((manifest.get("benchmarks") or {}).keys())
    per_bench_n = {b: (e or {}).get("n") for b, e in (manifest.get("benchmarks") or {}).items()
                   if isinstance(e, dict)}
    n_values = sorted({v for v in per_bench_n.values() if v} or
                      {manifest.get("decoding", {}).get("n")} - {None})
    acc = None
    if isinstance(summary, dict):
        pairs = [(m.get("avg@n"), m.get("samples", 0)) for m in summary.values()
                 if isinstance(m, dict) and m.get("avg@n") is not None]
        total = sum(s for _, s in pairs)
        if total:
            acc = sum(a * s for a, s in pairs) / total
    elif (run_dir / SAMPLES).exists():  # no summary yet: the share of correct records
        recs = read_samples(run_dir / SAMPLES, tolerate_truncated_tail=True)
        acc = sum(r.correct for r in recs) / len(recs) if recs else None
    return {
        "run": str(run_dir),
        "benchmarks": benches,
        "n": n_values,
        "records": count_lines(run_dir / SAMPLES),
        "accuracy": acc,
        "checkpoint": manifest.get("checkpoint"),
        "created_at": manifest.get("created_at"),
    }


def list_runs(folder: Path) -> list[dict]:
    """Every run directory (a folder holding manifest.json) at `folder` or one level below."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a directory")
    if (folder / MANIFEST).exists():
        return [run_row(folder)]
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and (p / MANIFEST).exists())
    return [run_row(d) for d in dirs]
