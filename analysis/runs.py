"""Which runs can be compared, and on which problems: `reorder` puts a base run first and
`align` checks runs against each other (benchmarks, rows, n, completeness) and returns their
per-problem correct counts. Runs are read by amir_bench.records (load_runs / Run.to_frame)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amir_bench.errors import UserError
from amir_bench.records import PathLike, Run, RunSet, load_runs, run_labels


def reorder(rs: RunSet, base: PathLike | None) -> RunSet:
    """Put the run named by `base` (a path or a label among the runs, or another run dir) first."""
    if base is None:
        return rs
    b = str(base)
    bkey = os.path.realpath(b)
    for i, r in enumerate(rs.runs):
        if os.path.realpath(r.path) == bkey or r.label == b.rstrip("/\\"):
            return RunSet([r] + rs.runs[:i] + rs.runs[i + 1:])
    if Path(b).is_dir():
        first = load_runs([b]).runs[0]
        if first.label in rs.labels:  # name clash: label all runs by their paths again
            first.label = run_labels([b] + [r.path for r in rs.runs])[0]
            if first.label in rs.labels:
                first.label = f"{first.label}#base"
        return RunSet([first] + rs.runs)
    raise UserError(f"--base {b}: not one of the runs given and not a run directory")


@dataclass
class Aligned:
    """Per benchmark: the problems compared, and per run the correct counts (problems x runs)."""

    benchmarks: list[str]
    problem_ids: dict[str, list[str]]
    counts: dict[str, Any]  # bench -> ndarray (P, m) of correct counts
    totals: dict[str, Any]  # bench -> ndarray (P, m) of sample counts
    ns: dict[str, list[int]]  # bench -> samples per problem of each run
    notes: list[str]
    kept: dict[str, dict]  # bench -> {"kept": k, "total": t}
    forced: bool = False


def _short(sha: str | None) -> str:
    return (sha or "none")[:12]


def _check_n(runs: list[Run], benches: list[str], force: bool, notes: list[str]) -> None:
    """Runs must draw the same n per problem on every shared benchmark (else --force)."""
    for b in benches:
        have = [r for r in runs if b in r.benchmarks]
        ns = [r.n_for(b) for r in have]
        if len(set(ns)) > 1:
            desc = ", ".join(f"{r.label} n={n}" for r, n in zip(have, ns))
            where = f" on {b}" if len(benches) > 1 else ""
            if not force:
                raise UserError(f"runs differ in samples per problem ({desc}){where}; "
                                f"pass --force to compare anyway")
            notes.append(f"runs differ in n ({desc}){where}; pass@k only for k <= {min(ns)}")


def _shared_benchmarks(runs: list[Run], force: bool, notes: list[str]) -> list[str]:
    """Benchmarks every run has; one missing somewhere is an error unless forced."""
    bench_sets = [set(r.benchmarks) for r in runs]
    shared = sorted(set.intersection(*bench_sets))
    for b in sorted(set().union(*bench_sets)):
        if b in shared:
            continue
        have = [r.label for r, s in zip(runs, bench_sets) if b in s]
        lack = [r.label for r, s in zip(runs, bench_sets) if b not in s]
        if not force:
            raise UserError(f"benchmark {b} is in {', '.join(have)} but not in "
                            f"{', '.join(lack)}; pass --force to compare the shared benchmarks")
        notes.append(f"{b}: skipped (not in {', '.join(lack)})")
    if not shared:
        raise UserError("the runs share no benchmark")
    return shared


def _check_rows(runs: list[Run], benches: list[str], force: bool, notes: list[str]) -> None:
    """The manifests' sha256 of each benchmark's rows must agree (else --force)."""
    for b in benches:
        known = [(r, s) for r in runs if (s := r.bench_sha(b))]
        if len({s for _, s in known}) > 1:
            r0, s0 = known[0]
            r1, s1 = next((r, s) for r, s in known if s != s0)
            msg = (f"runs evaluate different {b} rows (manifest sha256 {_short(s0)} in "
                   f"{r0.label}, {_short(s1)} in {r1.label})")
            if not force:
                raise UserError(msg + "; pass --force to compare the shared problem ids")
            notes.append(msg + "; compared on shared problem ids")


def _complete(r: Run, gb, b: str, force: bool) -> set:
    """Problems of benchmark b with exactly n samples in run r; an incomplete run is an error
    unless forced (with how to finish it)."""
    n = r.n_for(b)
    complete = gb.index[gb["size"].to_numpy() == n]
    bad = len(gb) - len(complete)
    expected = _manifest_ids(r, b)
    missing = len(set(map(str, expected)) - set(gb.index)) if expected else 0
    if (bad or missing) and not force:
        parts = []
        if bad:
            parts.append(f"{bad} problem(s) without exactly n={n} samples")
        if missing:
            parts.append(f"{missing} problem(s) of the manifest without samples")
        shard = str(r.manifest.get("shard") or "0/1")
        how = (f"it is shard {shard}: merge the shards with `amir-bench merge`"
               if shard not in ("0/1", "") else "finish it with `amir-bench run --resume`")
        raise UserError(f"{r.label}: {b} is incomplete ({'; '.join(parts)}); {how}, "
                        f"or pass --force to compare the complete problems")
    return set(complete)


def _manifest_ids(r: Run, b: str) -> list | None:
    bm = r.manifest.get("benchmarks")
    entry = bm.get(b) if isinstance(bm, dict) else None
    return entry.get("problem_ids") if isinstance(entry, dict) else None


def _shared_problems(runs: list[Run], groups: list, b: str, force: bool,
                     notes: list[str]) -> tuple[list[str], int]:
    """Problem ids complete in every run (first run's file order) and the total seen."""
    per_run = [(g, _complete(r, g, b, force)) for r, g in zip(runs, groups)]
    sets = [s for _, s in per_run]
    union = set().union(*sets)
    inter = set.intersection(*sets)
    if len(inter) != len(union) and not force:
        sizes = ", ".join(f"{r.label} {len(s)}" for r, s in zip(runs, sets))
        shards = {str(r.manifest.get("shard") or "0/1") for r in runs} - {"0/1"}
        hint = " (shard runs: merge them with `amir-bench merge`)" if shards else ""
        raise UserError(f"runs cover different {b} problems ({sizes}; {len(inter)} "
                        f"shared){hint}; pass --force to compare the shared problems")
    total = max([len(union)] + [len(g) for g, _ in per_run])
    if force and len(inter) != total:
        notes.append(f"{b}: kept {len(inter)} of {total} problems (complete in every run)")
    return [p for p in per_run[0][0].index if p in inter], total


def align(rs: RunSet, *, force: bool = False, need: int = 2, what: str = "coverage") -> Aligned:
    """Check that runs are comparable (same benchmarks and rows, same n, complete), else a
    one-line UserError naming the difference. With force, keep the problems every run has
    complete, and say how many were kept."""
    import numpy as np
    import pandas as pd

    runs = rs.runs
    if len(runs) < need:
        raise UserError(f"{what} compares runs: give at least {need} run directories "
                        f"(got {len(runs)})")
    notes: list[str] = []
    _check_n(runs, sorted(set().union(*[r.benchmarks for r in runs])), force, notes)
    shared_b = _shared_benchmarks(runs, force, notes)
    _check_rows(runs, shared_b, force, notes)
    counts_by_run = [r.to_frame().groupby(["benchmark", "problem_id"], sort=False)["correct"]
                     .agg(["sum", "size"]) for r in runs]
    al = Aligned(benchmarks=[], problem_ids={}, counts={}, totals={}, ns={}, notes=notes,
                 kept={}, forced=force)
    for b in shared_b:
        groups = [g.xs(b, level="benchmark") for g in counts_by_run]
        ids, total = _shared_problems(runs, groups, b, force, notes)
        if not ids:
            continue
        idx = pd.Index(ids)
        al.counts[b] = np.stack([g["sum"].reindex(idx).to_numpy(dtype=np.int64)
                                 for g in groups], axis=1)  # (P, m)
        al.totals[b] = np.stack([g["size"].reindex(idx).to_numpy(dtype=np.int64)
                                 for g in groups], axis=1)  # (P, m)
        al.problem_ids[b] = ids
        al.ns[b] = [r.n_for(b) for r in runs]
        al.kept[b] = {"kept": len(ids), "total": total}
    if not al.problem_ids:
        raise UserError("no problem is complete in every run; nothing to compare")
    al.benchmarks = list(al.problem_ids)
    notes.extend(duplicate_notes(rs))
    return al


def duplicate_notes(rs: RunSet) -> list[str]:
    """One note per run whose samples file repeated a (benchmark, problem, sample) key."""
    return [f"{r.label}: ignored {r.duplicates_dropped} duplicate sample(s)"
            for r in rs.runs if r.duplicates_dropped]
