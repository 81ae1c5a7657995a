"""Strata: where the coverage partition's gains and losses come from, by subject, by level, or
by difficulty (bins of a reference run's per-problem pass rate).

Input is a coverage result (coverage.json: per benchmark the problem ids, each run's correct
counts and solved flags) plus a stratum label per problem, so every stratum uses exactly the
problems and the solved criterion of the unstratified partition and the strata add up to it.
Each stratum gets coverage's own block (partition, per-run metrics, gains/losses, McNemar) and
paired-bootstrap CIs of avg@n, pass@n and the solved rate; "all" pools a stratum's problems
over benchmarks with a bootstrap stratified by benchmark.

Subject and level come from the benchmark rows (benchmarks.loaders), looked up at analysis
time through each run manifest's benchmark source (amir_bench.scoring.run_problems checks
the rows hash to what the run saw); SampleRecords do not carry them.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from amir_bench.errors import UserError
from analysis.stats import DEFAULT_RESAMPLES, bootstrap_means, combine_strata, stratum_seed

NONE_LABEL = "(none)"
# Difficulty bins of a reference pass rate r: r = 0, (0, .25], (.25, .5], (.5, .75], (.75, 1), 1
DIFFICULTY_BINS = ("0", "(0, .25]", "(.25, .5]", "(.5, .75]", "(.75, 1)", "1")


def difficulty_bin(rate: np.ndarray) -> np.ndarray:
    """Index into DIFFICULTY_BINS of each pass rate in [0, 1]."""
    r = np.asarray(rate, dtype=float)
    mid = np.searchsorted([0.25, 0.5, 0.75], r, side="left") + 1  # (0,.25] -> 1 .. (.75,1) -> 4
    return np.where(r <= 0, 0, np.where(r >= 1, 5, mid))


def problem_metadata(manifests: Sequence[dict], data_dir: str | None = None) -> dict:
    """(benchmark, problem id) -> {"subject", "level"} from the benchmark rows each manifest
    names; the first run that evaluated a problem decides. UserError when rows cannot load."""
    import os
    from pathlib import Path

    from amir_bench.scoring import run_problems
    from benchmarks.loaders import DATA_DIR_ENV

    out: dict[tuple[str, str], dict] = {}
    for m in manifests:
        for name, entry in (m.get("benchmarks") or {}).items():
            src = str((entry or {}).get("source", ""))
            known = src.startswith(("hf:", "builtin:")) or Path(src).exists()
            if not known and not (data_dir or os.environ.get(DATA_DIR_ENV)):
                raise UserError(f"{name}: the benchmark rows the run used ({src or 'no source'}) "
                                f"are not found; pass --data-dir with them")
        for key, (_, prob) in run_problems(m, data_dir).items():
            out.setdefault(key, {"subject": prob.subject, "level": prob.level})
    return out


def _meta_labeler(field: str) -> Callable[..., dict[str, list[str]]]:
    def label(cov: dict, *, metadata: Mapping | None = None, **_: Any) -> dict[str, list[str]]:
        if metadata is None:
            raise UserError(f"strata by {field} need the benchmark rows (problem metadata)")
        out = {}
        for b, blk in cov["benchmarks"].items():
            vals = [(metadata.get((b, pid)) or {}).get(field) for pid in blk["problem_ids"]]
            out[b] = [NONE_LABEL if v is None or v == "" else str(v) for v in vals]
        return out
    return label


def _difficulty_labeler(cov: dict, *, ref_rates: Mapping | None = None,
                        **_: Any) -> dict[str, list[str]]:
    if ref_rates is None:
        raise UserError("strata by difficulty need a reference run (--difficulty-ref)")
    out = {}
    for b, blk in cov["benchmarks"].items():
        rates = ref_rates.get(b) or {}
        lab = []
        for pid in blk["problem_ids"]:
            r = rates.get(pid)
            lab.append(NONE_LABEL if r is None else DIFFICULTY_BINS[int(difficulty_bin([r])[0])])
        out[b] = lab
    return out


LABELERS: dict[str, Callable[..., dict[str, list[str]]]] = {
    "subject": _meta_labeler("subject"),
    "level": _meta_labeler("level"),
    "difficulty": _difficulty_labeler,
}


def _order(by: str, values: set[str]) -> list[str]:
    """Strata in reading order: bins as defined, levels numerically, subjects by name."""
    if by == "difficulty":
        return [v for v in DIFFICULTY_BINS + (NONE_LABEL,) if v in values]
    named = sorted(v for v in values if v != NONE_LABEL)
    if by == "level":
        named.sort(key=lambda v: (0, float(v)) if v.replace(".", "", 1).isdigit() else (1, 0))
    return named + ([NONE_LABEL] if NONE_LABEL in values else [])


def _stratum(labels, ids, c, solved, ns, ks, seed_key, seed, resamples):
    """coverage's block for one stratum with its diff CIs; returns (block, replicates)."""
    from analysis.coverage import _block, _fill_diffs, _per_problem_metrics

    blk, diffs, names = _block(labels, ids, _per_problem_metrics(c, ns, ks), solved)
    reps = bootstrap_means(diffs, resamples=resamples, seed=stratum_seed(seed, seed_key))
    _fill_diffs(blk, diffs, reps, names)
    return blk, reps


def strata(cov: dict, by: str, *, metadata: Mapping | None = None,
           ref_rates: Mapping | None = None, reference: str | None = None, seed: int = 0,
           resamples: int = DEFAULT_RESAMPLES) -> dict:
    """Coverage broken down by `by` (subject | level | difficulty). ref_rates: {benchmark:
    {problem id: reference pass rate}} for difficulty; metadata from problem_metadata()."""
    from amir_bench.jsonio import jsonable as clean
    from analysis.coverage import _block, _fill_diffs, _per_problem_metrics

    if by not in LABELERS:
        raise UserError(f"--by {by!r}: use one of {', '.join(LABELERS)}")
    labels = cov["labels"]
    ns = cov["n"]
    ks = [max(cov["ks"])] if cov["ks"] else []
    per_problem = LABELERS[by](cov, metadata=metadata, ref_rates=ref_rates)
    values = _order(by, {v for labs in per_problem.values() for v in labs})
    benches: dict[str, dict] = {}
    pooled: dict[str, list] = {v: [] for v in values}
    for b, blk in cov["benchmarks"].items():
        lab = np.asarray(per_problem[b], dtype=object)
        ids = np.asarray(blk["problem_ids"], dtype=object)
        c = np.stack([np.asarray(blk["correct"][r], dtype=np.int64) for r in labels], axis=1)
        solved = np.stack([np.asarray(blk["solved"][r], dtype=bool) for r in labels], axis=1)
        benches[b] = {}
        for v in values:
            sel = lab == v
            if not sel.any():
                continue
            s_blk, reps = _stratum(labels, ids[sel].tolist(), c[sel], solved[sel],
                                   blk.get("n", ns), ks, f"{b}/{by}/{v}", seed, resamples)
            benches[b][v] = s_blk
            pooled[v].append((ids[sel], c[sel], solved[sel], reps, b, blk.get("n", ns)))
    overall = None
    if len(benches) > 1:
        overall = {}
        for v in values:
            parts = pooled[v]
            if not parts:
                continue
            ids = [f"{b}/{p}" for i, _, _, _, b, _ in parts for p in i]
            per = [_per_problem_metrics(p[1], p[5], ks) for p in parts]  # each benchmark's n
            blk, diffs, names = _block(labels, ids, {m: np.concatenate([q[m] for q in per])
                                                     for m in per[0]},
                                       np.concatenate([p[2] for p in parts]))
            _fill_diffs(blk, diffs, combine_strata([p[3] for p in parts],
                                                   [len(p[0]) for p in parts]), names)
            overall[v] = blk
    notes = []
    if by == "difficulty" and reference in labels:
        notes.append(f"difficulty bins come from {reference}, one of the compared runs: its own "
                     "noise places problems in bins, so its gains and losses by bin regress to "
                     "the mean; an independent reference run (another seed) avoids this")
    return clean({"kind": "strata", "by": by, "labels": labels, "criterion": cov["criterion"],
                  "reference": reference, "strata": values, "metrics_k": ks, "seed": seed,
                  "resamples": resamples, "notes": notes, "benchmarks": benches,
                  "overall": overall})


def reference_rates(cov: dict, reference: str | None = None, frame=None) -> dict:
    """{benchmark: {problem id: pass rate}} of the reference: a run label of the coverage
    result (default: the first run), or a per-sample frame of another run."""
    if frame is not None:
        g = frame.groupby(["benchmark", "problem_id"], sort=False)["correct"].mean()
        return {b: s.droplevel("benchmark").to_dict() for b, s in g.groupby(level="benchmark")}
    ref = reference or cov["labels"][0]
    if ref not in cov["labels"]:
        raise UserError(f"--difficulty-ref {ref}: not one of the runs compared")
    j = cov["labels"].index(ref)
    n = cov["n"][j]
    return {b: dict(zip(blk["problem_ids"], (np.asarray(blk["correct"][ref]) / n).tolist()))
            for b, blk in cov["benchmarks"].items()}
