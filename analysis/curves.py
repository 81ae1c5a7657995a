"""pass@k and maj@k curves per run and benchmark, paired-bootstrap bands over problems, and the
crossing k between two runs (does RL only sharpen the base model, which overtakes it at large
k, as in Yue et al. 2025?).

- pass@k, k = 1, 2, 4, ..., n: the unbiased estimator 1 - C(n-c, k) / C(n, k) per problem
  (amir_bench.metrics.pass_at_k_array), averaged over problems.
- maj@k: the probability that a majority vote over a uniformly random k-subset of a problem's
  n samples picks a correct answer, with maj@n's rules (answers pool when the same string or
  both graded correct; the largest cluster wins; a tie goes to the answer seen first; samples
  without an answer do not vote). Computed exactly over all C(n, k) subsets when there are at
  most `max_subsets` of them; else estimated, without bias, from `max_subsets` uniformly random
  k-subsets (the same subsets for every problem and run, which keeps the comparison paired).
  At k = n it is exactly maj@n.
- Bands: 95% percentile bootstrap over problems; every run and k of a benchmark share the same
  resamples, so the difference of two runs has a paired CI. "all" pools the benchmarks with a
  bootstrap stratified by benchmark.
- Crossing k of a pair (a, b): the sign of b - a at the smallest k where it is not 0 is the
  small-k leader; the crossing is the smallest larger k where the difference has the other sign
  and its CI excludes 0 (None when there is no such k). The first k where the point estimate
  flips is reported next to it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np

from analysis.matrices import SampleMatrix
from analysis.stats import (DEFAULT_RESAMPLES, bootstrap_means, bootstrap_summary, ci_dict,
                            combine_strata, stratum_seed)

MAX_SUBSETS = 64
CURVE_METRICS = ("pass", "maj")


def pass_curve(counts: np.ndarray, n: int, ks: Sequence[int]) -> np.ndarray:
    """Per-problem unbiased pass@k, (P, K), from correct counts (P,) out of n."""
    from amir_bench.metrics import pass_at_k_array

    return np.stack([pass_at_k_array(n, counts, k) for k in ks], axis=1)


def k_subsets(n: int, k: int, max_subsets: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """((R, k) sorted sample indices, exact): every k-subset of range(n) when there are at most
    max_subsets, else max_subsets uniform random ones."""
    if math.comb(n, k) <= max_subsets:
        return np.array(list(itertools.combinations(range(n), k)), dtype=np.intp), True
    subs = np.argsort(rng.random((max_subsets, n)), axis=1)[:, :k]
    return np.sort(subs, axis=1), False


def _dense(answers: np.ndarray) -> tuple[np.ndarray, int]:
    """Cluster codes renumbered 0..C-1 per problem in first-seen order (-1 stays), and C."""
    p, n = answers.shape
    present = np.zeros((p, n + 1), dtype=np.int32)
    rows = np.repeat(np.arange(p), n)
    present[rows, answers.ravel() + 1] = 1  # column 0 collects "no answer"
    present[:, 0] = 0
    rank = np.cumsum(present, axis=1) - 1  # (P, n + 1)
    dense = np.where(answers >= 0, rank[rows, answers.ravel() + 1].reshape(p, n), -1)
    return dense.astype(np.int32), max(1, int(present.sum(axis=1).max()))


def majority_rate(answers: np.ndarray, correct: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """Per problem, the fraction of the given subsets whose majority answer is correct.

    answers: (P, n) cluster codes in [0, n) (-1: no answer); correct: (P, n); subsets: (R, k)
    ascending sample indices. In each subset the winner is the first sample (in sample order)
    of a largest cluster: the largest cluster wins, a tie goes to the cluster seen first."""
    p, n = answers.shape
    r_all, k = subsets.shape
    dense, c = _dense(answers)
    good = correct & (dense >= 0)
    good_code = np.where(good.any(axis=1), dense[np.arange(p), good.argmax(axis=1)], -2)
    hits = np.zeros(p)
    step = max(1, 1_000_000 // max(1, p * max(c, k)))
    for s in range(0, r_all, step):
        sb = subsets[s:s + step]  # (r, k)
        r = len(sb)
        a = np.take(dense, sb, axis=1).reshape(p * r, k)  # (P*r, k)
        valid = a >= 0
        idx = np.arange(p * r, dtype=np.int64)[:, None] * c + np.where(valid, a, 0)
        cnt = np.bincount(idx[valid], minlength=p * r * c)
        size = np.where(valid, cnt[idx], -1)  # cluster size of each voter, (P*r, k)
        win = a[np.arange(p * r), size.argmax(axis=1)]  # first voter of a largest cluster
        ok = (win == np.repeat(good_code, r)) & valid.any(axis=1)
        hits += ok.reshape(p, r).sum(axis=1)
    return hits / r_all


def maj_curve(m: SampleMatrix, ks: Sequence[int], subsets: Sequence[np.ndarray]) -> np.ndarray:
    """Per-problem maj@k, (P, K), for the given subsets of each k."""
    return np.stack([majority_rate(m.answers, m.correct, subs) for subs in subsets], axis=1)


def crossing(ks: Sequence[int], est: Sequence[float], lo: Sequence[float],
             hi: Sequence[float]) -> dict:
    """Where the difference b - a changes sign (see the module docstring)."""
    est = np.asarray(est, dtype=float)
    est = np.where(np.abs(np.nan_to_num(est)) < 1e-12, 0.0, np.nan_to_num(est))  # float noise
    signs = np.sign(est)
    nz = np.flatnonzero(signs != 0)
    out: dict[str, Any] = {"k": None, "first_sign_flip_k": None, "small_k": None,
                           "small_k_leader": None}
    if not len(nz):
        return out
    i0 = int(nz[0])
    ref = signs[i0]
    out["small_k"] = int(ks[i0])
    out["small_k_leader"] = "b" if ref > 0 else "a"
    for i in range(i0 + 1, len(ks)):
        if signs[i] != -ref:
            continue
        if out["first_sign_flip_k"] is None:
            out["first_sign_flip_k"] = int(ks[i])
        excludes = (hi[i] is not None and hi[i] < 0) if ref > 0 else \
            (lo[i] is not None and lo[i] > 0)
        if excludes:
            out["k"] = int(ks[i])
            break
    return out


def _bench_values(mats: Sequence[SampleMatrix], ks: Sequence[int], subsets) -> np.ndarray:
    """(P, runs * metrics * K) per-problem curve values, column order run, metric, k."""
    cols = []
    for m in mats:
        cols.append(pass_curve(m.counts, m.n, ks))
        cols.append(maj_curve(m, ks, subsets))
    return np.concatenate(cols, axis=1)


def _summaries(values_mean: np.ndarray, reps: np.ndarray, labels: Sequence[str],
               ks: Sequence[int]) -> dict:
    """Per-run curves and per-pair difference curves with crossings from replicate means."""
    nk = len(ks)

    def col(j: int, mi: int) -> slice:
        start = (j * len(CURVE_METRICS) + mi) * nk
        return slice(start, start + nk)

    summ = bootstrap_summary(values_mean, reps)
    runs = {lab: {f"{met}@k": [dict(k=int(k), **ci_dict(summ, c))
                               for k, c in zip(ks, range(col(j, mi).start, col(j, mi).stop))]
                  for mi, met in enumerate(CURVE_METRICS)}
            for j, lab in enumerate(labels)}
    pairs = []
    for a, b in itertools.combinations(range(len(labels)), 2):
        pair: dict[str, Any] = {"a": labels[a], "b": labels[b]}
        for mi, met in enumerate(CURVE_METRICS):
            d_est = values_mean[col(b, mi)] - values_mean[col(a, mi)]
            ds = bootstrap_summary(d_est, reps[:, col(b, mi)] - reps[:, col(a, mi)])
            diff = [dict(k=int(k), **ci_dict(ds, i)) for i, k in enumerate(ks)]
            pair[f"{met}@k"] = {"diff": diff, "crossing": crossing(
                ks, [d["estimate"] for d in diff], [d["ci_low"] for d in diff],
                [d["ci_high"] for d in diff])}
        pairs.append(pair)
    return {"runs": runs, "pairs": pairs}


def curves(aligned: dict[str, Sequence[SampleMatrix]], labels: Sequence[str], *, seed: int = 0,
           resamples: int = DEFAULT_RESAMPLES, max_subsets: int = MAX_SUBSETS,
           notes: Sequence[str] = ()) -> dict:
    """pass@k / maj@k curves of aligned runs: {benchmark: [one SampleMatrix per run]} (same
    problems, same n). Returns curves.json."""
    from amir_bench.metrics import ks_for

    if not aligned:
        from amir_bench.errors import UserError
        raise UserError("no benchmark has problems complete in every run; nothing to plot")
    n = min(m.n for mats in aligned.values() for m in mats)
    ks = ks_for(n)
    benches, reps_all, sizes, vals_all, methods = {}, [], [], [], {}
    for b, mats in aligned.items():
        if any(m.n != n for m in mats):
            mats = [_first_n(m, n) for m in mats]
        rng = np.random.default_rng(stratum_seed(seed, b) + [1])
        subsets, exact = zip(*[k_subsets(n, k, max_subsets, rng) for k in ks])
        methods[b] = {str(k): ("exact" if ex else f"{len(s)} random subsets")
                      for k, s, ex in zip(ks, subsets, exact)}
        vals = _bench_values(mats, ks, subsets)  # (P, cols)
        reps = bootstrap_means(vals, resamples=resamples, seed=stratum_seed(seed, b))
        benches[b] = {"problems": int(len(vals)), **_summaries(vals.mean(axis=0), reps, labels, ks)}
        reps_all.append(reps)
        sizes.append(len(vals))
        vals_all.append(vals)
    overall = None
    if len(benches) > 1:
        pooled = np.concatenate(vals_all)
        overall = {"problems": int(len(pooled)),
                   **_summaries(pooled.mean(axis=0), combine_strata(reps_all, sizes), labels, ks)}
    return {"kind": "curves", "labels": list(labels), "n": n, "ks": ks, "seed": seed,
            "resamples": resamples, "ci": 0.95, "max_subsets": max_subsets,
            "maj_method": methods, "notes": list(notes), "benchmarks": benches,
            "overall": overall}


def _first_n(m: SampleMatrix, n: int) -> SampleMatrix:
    """The first n samples of each problem (runs with a larger n compared at the smaller)."""
    from analysis.matrices import cluster_codes

    keys = np.where(m.answers[:, :n] >= 0, m.answers[:, :n], -1)
    return SampleMatrix(m.benchmark, m.problem_ids, m.correct[:, :n], cluster_codes(keys),
                        m.tokens[:, :n],
                        None if m.reasoning_tokens is None else m.reasoning_tokens[:, :n],
                        None if m.truncated is None else m.truncated[:, :n])


def curves_of_runs(runs: Sequence[Any], labels: Sequence[str], **kw: Any) -> dict:
    """curves() of loaded runs (amir_bench.records.Run objects)."""
    from analysis.matrices import run_matrices

    aligned, notes = run_matrices(runs)
    return curves(aligned, labels, notes=notes, **kw)
