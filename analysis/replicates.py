"""Replicate seeds: runs grouped as repeats of one configuration (`--group grpo=r1,r2,r3`).

- Per group and metric: the mean over seeds of each seed's metric, with a 95% Student t
  interval across seeds (scipy.stats.t; no interval for one seed).
- Per pair of groups: the difference of the group means with a two-level paired bootstrap:
  each replicate resamples problems (shared by all seeds of both groups, so the comparison
  stays paired by problem), then resamples each group's seeds with replacement; the replicate
  difference is the seed-resampled mean of b minus that of a. It carries both the problem and
  the seed variance; with one seed per group it is the ordinary paired bootstrap.

Inputs are plain: per group a list (one per seed) of {benchmark: SampleMatrix}, aligned on
the same problems; metrics are avg@n and pass@k per problem.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from analysis.matrices import SampleMatrix, align_matrices
from analysis.stats import DEFAULT_CI, DEFAULT_RESAMPLES, bootstrap_means, stratum_seed


def t_interval(values: Sequence[float], ci: float = DEFAULT_CI) -> dict:
    """Mean, sample sd and the Student t interval of the mean across seeds."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None], dtype=float)
    out: dict[str, Any] = {"mean": float(x.mean()) if len(x) else None, "sd": None,
                           "ci_low": None, "ci_high": None, "seeds": int(len(x))}
    if len(x) >= 2:
        sd = float(x.std(ddof=1))
        lo, hi = stats.t.interval(ci, len(x) - 1, loc=x.mean(), scale=sd / math.sqrt(len(x))) \
            if sd > 0 else (x.mean(), x.mean())
        out.update(sd=sd, ci_low=float(lo), ci_high=float(hi))
    return out


def two_level_bootstrap(va: np.ndarray, vb: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES,
                        seed: int | Sequence[int] = 0, ci: float = DEFAULT_CI) -> dict:
    """CI of mean(b) - mean(a) resampling problems, then seeds (see the module docstring).

    va: (S_a, P, M), vb: (S_b, P, M) per-seed per-problem values (same problems in order).
    Returns estimate / ci_low / ci_high / se arrays of shape (M,)."""
    sa, p, m = va.shape
    sb = vb.shape[0]
    cols = np.concatenate([va.transpose(1, 0, 2).reshape(p, sa * m),
                           vb.transpose(1, 0, 2).reshape(p, sb * m)], axis=1)
    q = bootstrap_means(cols, resamples=resamples, seed=seed)  # (B, (Sa + Sb) M)
    qa = q[:, :sa * m].reshape(resamples, sa, m)
    qb = q[:, sa * m:].reshape(resamples, sb, m)
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), 2])
    wa = rng.multinomial(sa, np.full(sa, 1.0 / sa), size=resamples) / sa  # (B, Sa)
    wb = rng.multinomial(sb, np.full(sb, 1.0 / sb), size=resamples) / sb  # (B, Sb)
    reps = np.einsum("bs,bsm->bm", wb, qb) - np.einsum("bs,bsm->bm", wa, qa)  # (B, M)
    est = vb.mean(axis=(0, 1)) - va.mean(axis=(0, 1))
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha], axis=0)
    return {"estimate": est, "ci_low": lo, "ci_high": hi, "se": reps.std(axis=0, ddof=1)}


def metric_values(m: SampleMatrix, ks: Sequence[int]) -> np.ndarray:
    """(P, 1 + K) per-problem avg@n and pass@k."""
    from analysis.curves import pass_curve

    return np.concatenate([(m.counts / m.n)[:, None], pass_curve(m.counts, m.n, ks)], axis=1)


def replicates(groups: Mapping[str, Sequence[dict[str, SampleMatrix]]], *, seed: int = 0,
               resamples: int = DEFAULT_RESAMPLES, notes: Sequence[str] = ()) -> dict:
    """Group metrics (mean and t interval over seeds) and two-level bootstrap differences
    between groups, per benchmark shared by every run. Returns the replicates dict."""
    from amir_bench.errors import UserError
    from amir_bench.metrics import ks_for
    from amir_bench.jsonio import jsonable as clean

    names = list(groups)
    flat = [mats for g in names for mats in groups[g]]
    if len(names) < 1 or not flat:
        raise UserError("replicate groups need at least one run")
    aligned, al_notes = align_matrices(flat)
    if not aligned:
        raise UserError("the grouped runs share no benchmark with complete problems")
    n = min(mats[0].n for mats in aligned.values())
    if any(m.n != n for mats in aligned.values() for m in mats):
        raise UserError("grouped runs differ in samples per problem (n); compare runs of one n")
    ks = ks_for(n)
    metric_names = ["avg@n"] + [f"pass@{k}" for k in ks]
    sizes = [len(groups[g]) for g in names]
    bounds = np.cumsum([0] + sizes)
    benches = {}
    for b, mats in aligned.items():
        vals = np.stack([metric_values(mm, ks) for mm in mats])  # (runs, P, M)
        per_group = {g: vals[bounds[i]:bounds[i + 1]] for i, g in enumerate(names)}
        metrics = {g: {name: {**t_interval(v.mean(axis=1)[:, j]),
                              "per_seed": v.mean(axis=1)[:, j].tolist()}
                       for j, name in enumerate(metric_names)} for g, v in per_group.items()}
        pairs = []
        for ga, gb in itertools.combinations(names, 2):
            res = two_level_bootstrap(per_group[ga], per_group[gb], resamples=resamples,
                                      seed=stratum_seed(seed, f"{b}/{ga}/{gb}"))
            pairs.append({"a": ga, "b": gb, "diff": {
                name: {k: float(res[k][j]) for k in ("estimate", "ci_low", "ci_high", "se")}
                for j, name in enumerate(metric_names)}})
        benches[b] = {"problems": int(vals.shape[1]), "metrics": metrics, "pairs": pairs}
    return clean({"kind": "replicates", "groups": {g: len(groups[g]) for g in names},
                  "n": n, "ks": ks, "metrics": metric_names, "seed": seed,
                  "resamples": resamples, "ci": DEFAULT_CI,
                  "notes": list(notes) + al_notes, "benchmarks": benches})


def parse_group(text: str) -> tuple[str, list[str]]:
    """'NAME=RUN,RUN,...' -> (name, [run, ...])."""
    from amir_bench.errors import UserError

    name, sep, rest = (text or "").partition("=")
    runs = [r.strip() for r in rest.split(",") if r.strip()]
    if not sep or not name.strip() or not runs:
        raise UserError(f"--group {text!r}: expected NAME=RUN,RUN,... (e.g. grpo=runs/s0,runs/s1)")
    return name.strip(), runs


def replicates_of_runs(groups: Mapping[str, Sequence[Any]], **kw: Any) -> dict:
    """replicates() of loaded runs (amir_bench.records.Run objects) grouped by name."""
    from analysis.matrices import frame_from_records, matrices_from_frame

    mats: dict[str, list] = {}
    notes: list[str] = []
    for g, runs in groups.items():
        for run in runs:
            m, nt = matrices_from_frame(frame_from_records(run.samples),
                                        getattr(run, "n", 0) or None)
            mats.setdefault(g, []).append(m)
            notes += [f"{g}/{run.path.name}: {x}" for x in nt]
    return replicates(mats, notes=notes, **kw)
