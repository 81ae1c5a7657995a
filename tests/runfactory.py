"""Build small run directories (manifest.json + samples.jsonl [+ scores.jsonl]) for tests.

    make_run(tmp_path / "grpo", {"p1": 2, "p2": 0}, n=4)          # correct counts per problem
    make_run(tmp_path / "amir", {"p1": [True, False, True, True]})  # exact flags (n = 4)
    make_run(d, records=[{"problem_id": "p1", "sample_idx": 0, "correct": True,
                          "num_tokens": 120, "logprob_mean": -0.3}], n=1, scores=True)

A spec value may be an int c (the first c of n samples are correct), a list of bools, or a
list of dicts (per-sample overrides, e.g. num_tokens, finish_reason, extracted, logprob_mean).
Defaults are deterministic, so two runs built from the same spec are identical; the manifest's
benchmark sha256 defaults to one fixed value per benchmark, so runs are comparable unless sha
or n is changed on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

SAMPLE_FIELDS = ("benchmark", "problem_id", "sample_idx", "completion", "finish_reason",
                 "num_tokens", "gen_logprob_sum", "extracted", "correct", "grade_status", "gold")
SCORE_ONLY = ("logprob_mean", "logprob_sum", "scorer")


def default_sha(benchmark: str) -> str:
    return f"sha256-of-{benchmark}-rows"


def _sample(benchmark: str, pid: str, j: int, correct: bool, over: Mapping[str, Any]) -> dict:
    gold = str(over.get("gold", "42"))
    extracted = over.get("extracted", gold if correct else str(100 + j))
    rec = {
        "benchmark": benchmark, "problem_id": str(pid), "sample_idx": j,
        "completion": f"... so the answer is \\boxed{{{extracted}}}",
        "finish_reason": "stop", "num_tokens": 100 + 10 * j + (0 if correct else 50),
        "gen_logprob_sum": None, "extracted": extracted, "correct": bool(correct),
        "grade_status": "ok" if extracted is not None else "no_answer", "gold": gold,
    }
    rec.update({k: v for k, v in over.items() if k in SAMPLE_FIELDS})
    return rec


def expand(problems: Mapping[str, Any] | None, n: int, benchmark: str) -> list[dict]:
    """Problem spec -> list of full records (plus score-only keys when given)."""
    out = []
    for pid, spec in (problems or {}).items():
        if isinstance(spec, bool) or not isinstance(spec, (int, list, tuple)):
            raise TypeError(f"problem {pid}: spec must be an int, a list of bools or of dicts")
        if isinstance(spec, int):
            if not 0 <= spec <= n:
                raise ValueError(f"problem {pid}: {spec} correct of n={n}")
            items: Sequence[Any] = [j < spec for j in range(n)]
        else:
            items = spec
        for j, it in enumerate(items):
            over = dict(it) if isinstance(it, Mapping) else {"correct": bool(it)}
            correct = bool(over.get("correct", False))
            rec = _sample(over.get("benchmark", benchmark), pid, int(over.get("sample_idx", j)),
                          correct, over)
            rec.update({k: over[k] for k in SCORE_ONLY if k in over})
            out.append(rec)
    return out


def make_run(run_dir: str | Path, problems: Mapping[str, Any] | None = None, *,
             records: Iterable[Mapping[str, Any]] | None = None, n: int = 4,
             benchmark: str = "amc23", sha: str | Mapping[str, str] | None = None,
             scores: bool | str = False, manifest: Mapping[str, Any] | None = None,
             manifest_ids: Mapping[str, Sequence[str]] | None = None) -> Path:
    """Write a run directory and return its path.

    problems: {problem_id: c | [bool, ...] | [dict, ...]} for `benchmark`.
    records: extra partial records (any benchmark); missing fields get defaults.
    sha: the manifest sha256 for `benchmark` (or {benchmark: sha}); default default_sha().
    scores: True (or a scorer name) also writes scores.jsonl; logprob_mean defaults to
        -0.5 + 0.02 for correct samples, overridable per record.
    manifest: keys merged over the generated manifest (e.g. {"decoding": {...}}).
    manifest_ids: {benchmark: ids} to list in the manifest instead of those in the samples.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    recs = expand(problems, n, benchmark)
    for r in records or []:
        r = dict(r)
        b = r.get("benchmark", benchmark)
        full = _sample(b, str(r.get("problem_id", "p0")), int(r.get("sample_idx", 0)),
                       bool(r.get("correct", False)), r)
        full.update({k: r[k] for k in SCORE_ONLY if k in r})
        recs.append(full)
    benches: dict[str, list[str]] = {}
    for r in recs:
        ids = benches.setdefault(r["benchmark"], [])
        if r["problem_id"] not in ids:
            ids.append(r["problem_id"])
    if manifest_ids:
        for b, ids in manifest_ids.items():
            benches[b] = [str(x) for x in ids]
    shas = dict(sha) if isinstance(sha, Mapping) else ({benchmark: sha} if sha else {})
    man = {
        "checkpoint": {"path": f"ckpt/{run_dir.name}", "sha256": None},
        "backend": "test",
        "decoding": {"n": n, "temperature": 1.0, "top_p": 1.0, "top_k": 0,
                     "max_new_tokens": 1024, "seed": 0},
        "template": "boxed",
        "benchmarks": {b: {"source": f"test:{b}", "sha256": shas.get(b, default_sha(b)),
                           "count": len(ids), "problem_ids": ids} for b, ids in benches.items()},
        "shard": "0/1",
        "amir_bench_version": "0.1.0",
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    for k, v in (manifest or {}).items():
        if isinstance(v, Mapping) and isinstance(man.get(k), dict):
            man[k] = {**man[k], **v}
        else:
            man[k] = v
    (run_dir / "manifest.json").write_text(json.dumps(man, indent=2), encoding="utf-8")
    with open(run_dir / "samples.jsonl", "w", encoding="utf-8") as fh:
        for r in recs:
            fh.write(json.dumps({k: r[k] for k in SAMPLE_FIELDS}) + "\n")
    if scores:
        scorer = scores if isinstance(scores, str) else f"ckpt/{run_dir.name}"
        with open(run_dir / "scores.jsonl", "w", encoding="utf-8") as fh:
            for r in recs:
                lm = float(r.get("logprob_mean", -0.5 + (0.02 if r["correct"] else 0.0)))
                fh.write(json.dumps({
                    "benchmark": r["benchmark"], "problem_id": r["problem_id"],
                    "sample_idx": r["sample_idx"],
                    "logprob_sum": float(r.get("logprob_sum", lm * r["num_tokens"])),
                    "logprob_mean": lm, "num_tokens": r["num_tokens"],
                    "scorer": r.get("scorer", scorer)}) + "\n")
    return run_dir


def table2_runs(root: str | Path, n: int = 4) -> list[Path]:
    """Base, GRPO, AMIR runs on 40 AMC23 problems with the solved-cell counts of the paper's
    Table 2 (✓✓✓ 24, ✓✓✗ 1, ✓✗✓ 4, ✓✗✗ 1, ✗✓✓ 1, ✗✓✗ 0, ✗✗✓ 3, ✗✗✗ 6)."""
    root = Path(root)
    cells = [("111", 24), ("110", 1), ("101", 4), ("100", 1), ("011", 1), ("010", 0),
             ("001", 3), ("000", 6)]
    flags: list[str] = [cell for cell, k in cells for _ in range(k)]
    assert len(flags) == 40
    names = ("base", "grpo", "amir")
    specs: list[dict[str, int]] = [{}, {}, {}]
    for i, cell in enumerate(flags):
        pid = f"amc23-{i:02d}"
        for r in range(3):
            # a solved problem gets 1..n correct samples (varies so avg@n differs from pass@n)
            specs[r][pid] = (1 + (i + r) % n) if cell[r] == "1" else 0
    return [make_run(root / name, spec, n=n, benchmark="amc23")
            for name, spec in zip(names, specs)]
