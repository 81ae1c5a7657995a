"""Statistics for comparing runs: McNemar exact, paired bootstrap (CIs and p-values),
point-biserial r, AUROC, quantile bins, within-group pair counts, the Holm adjustment and the
problems / samples per problem a difference needs. numpy, and scipy.stats where it has the
test (binomial test, Pearson / point-biserial r, ranks, normal quantiles)."""

from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_CI = 0.95


def mcnemar_exact(b: int, c: int) -> dict:
    """Exact McNemar test: two-sided binomial test (scipy.stats.binomtest) of b vs c discordant
    pairs at p = 1/2; b = problems only the first run solves, c = only the second; 1.0 when
    b + c = 0."""
    from scipy.stats import binomtest

    b, c = int(b), int(c)
    n = b + c
    p = 1.0 if n == 0 else float(min(1.0, binomtest(b, n, 0.5).pvalue))
    return {"b": b, "c": c, "discordant": n, "p_value": p}


def stratum_seed(seed: int, name: str) -> list[int]:
    """Seed of one stratum's resamples (e.g. a benchmark): fixed by (seed, name), so a
    benchmark's CI does not depend on which other benchmarks are analysed with it."""
    return [int(seed), zlib.crc32(str(name).encode("utf-8"))]


def _resample_indices(size: int, resamples: int, rng: np.random.Generator):
    """Yield (bc, P) arrays of item indices drawn with replacement, in cache-sized chunks
    (about 400k draws each); 16-bit draws when P allows (several times faster)."""
    chunk = max(1, 400_000 // max(1, size))
    dt = np.int16 if size <= np.iinfo(np.int16).max else np.int64
    done = 0
    while done < resamples:
        bc = min(chunk, resamples - done)
        yield rng.integers(0, size, size=(bc, size), dtype=dt).astype(np.intp)  # (bc, P)
        done += bc


def bootstrap_counts(size: int, resamples: int, rng: np.random.Generator):
    """Yield count matrices W (B_chunk, P) of a bootstrap over P = size items: row r says
    how often each item was drawn in resample r (rows sum to P)."""
    size = int(size)
    for idx in _resample_indices(size, resamples, rng):
        bc = len(idx)
        idx += (np.arange(bc, dtype=np.intp) * size)[:, None]
        yield np.bincount(idx.ravel(), minlength=bc * size).reshape(bc, size).astype(np.float64)


def bootstrap_means(values: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES,
                    seed: int | Sequence[int] = 0) -> np.ndarray:
    """Means of `resamples` bootstrap resamples (with replacement) of the rows of values.

    values: (P, M); returns (B, M). All M columns share the same resamples (the draws
    depend only on P, resamples and seed). Few columns: gather the drawn values; many:
    count matrix times values, one product per cache-sized chunk.
    """
    d = np.asarray(values, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    p, m = d.shape
    if p == 0:
        return np.full((resamples, m), np.nan)
    if m > 1:  # identical columns (pass@1 = avg@n, ...) share one set of replicates
        _, first, inv = np.unique(np.round(d, 12), axis=1, return_index=True,
                                  return_inverse=True)
        if len(first) < m:
            reps = bootstrap_means(d[:, first], resamples=resamples, seed=seed)
            return reps[:, np.asarray(inv).reshape(-1)]
    rng = np.random.default_rng(seed)
    means = np.empty((resamples, m))  # (B, M)
    row = 0
    if m <= 8:
        cols = [np.ascontiguousarray(d[:, k]) for k in range(m)]
        for idx in _resample_indices(p, resamples, rng):
            for k in range(m):
                means[row:row + len(idx), k] = cols[k][idx].mean(axis=1)
            row += len(idx)
    else:
        for w in bootstrap_counts(p, resamples, rng):
            # einsum without BLAS: small products like this one lose badly to BLAS thread
            # start-up on a busy 2-core machine (measured 14x)
            means[row:row + len(w)] = np.einsum("bp,pm->bm", w, d, optimize=False) / p
            row += len(w)
    return means


def combine_strata(reps: Sequence[np.ndarray], sizes: Sequence[int]) -> np.ndarray:
    """Replicate means of the pooled items from per-stratum replicates (a stratified
    bootstrap): each stratum is resampled within itself, weighted by its size."""
    sizes = np.asarray(sizes, dtype=np.float64)
    keep = sizes > 0
    stack = np.stack([r for r, k in zip(reps, keep) if k], axis=0)  # (S, B, M)
    return (sizes[keep][:, None, None] * stack).sum(axis=0) / sizes.sum()


def bootstrap_summary(estimate: np.ndarray, reps: np.ndarray, ci: float = DEFAULT_CI) -> dict:
    """Percentile CI and standard error from replicate means reps (B, M)."""
    est = np.atleast_1d(np.asarray(estimate, dtype=np.float64))
    if reps.size == 0 or np.isnan(reps).all():
        nan = np.full(est.shape, np.nan)
        return {"estimate": est, "ci_low": nan, "ci_high": nan, "se": nan}
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha], axis=0)
    se = reps.std(axis=0, ddof=1) if len(reps) > 1 else np.zeros(est.shape)
    return {"estimate": est, "ci_low": lo, "ci_high": hi, "se": se}


def paired_bootstrap(diffs: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                     strata: Sequence[int] | None = None, ci: float = DEFAULT_CI) -> dict:
    """Percentile bootstrap CI of the mean of per-item paired differences (resampling items,
    e.g. problems, so both runs' values of a problem stay together).

    diffs: (P,) or (P, M) per-problem differences (M metrics share the same resamples).
    strata: sizes of consecutive item blocks resampled separately (e.g. benchmarks), so the
    pooled mean keeps each block's weight; block i uses seed [seed, i]. Returns arrays
    estimate/ci_low/ci_high/se of shape (M,) (floats for 1-D input).
    """
    d = np.asarray(diffs, dtype=np.float64)
    one_d = d.ndim == 1
    if one_d:
        d = d[:, None]  # (P, M)
    p, m = d.shape
    if strata is None:
        reps = bootstrap_means(d, resamples=resamples, seed=seed)
    else:
        sizes = [int(x) for x in strata]
        if sum(sizes) != p:
            raise ValueError(f"strata sizes sum to {sum(sizes)}, expected {p}")
        bounds = np.cumsum([0] + sizes)
        reps = combine_strata([bootstrap_means(d[bounds[i]:bounds[i + 1]], resamples=resamples,
                                               seed=[int(seed), i])
                               for i in range(len(sizes))], sizes)
    out = bootstrap_summary(d.mean(axis=0) if p else np.full(m, np.nan), reps, ci)
    if one_d:
        out = {k: float(v[0]) for k, v in out.items()}
    return out


def point_biserial(x: np.ndarray, y: np.ndarray) -> dict:
    """Point-biserial correlation of a continuous x with a binary y (scipy.stats.pointbiserialr:
    Pearson r on 0/1, two-sided t-test p on n - 2 degrees of freedom).

    Returns {"r": None, "p_value": None} when either side is constant (r undefined).
    """
    from scipy.stats import pointbiserialr

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 3 or y.min() == y.max() or np.ptp(x) == 0:
        return {"r": None, "p_value": None}
    res = pointbiserialr(y, x)
    return {"r": float(np.clip(res.statistic, -1.0, 1.0)), "p_value": float(res.pvalue)}


def rank_average(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x, ties sharing their average rank (scipy.stats.rankdata)."""
    from scipy.stats import rankdata

    return rankdata(np.asarray(x, dtype=np.float64), method="average")


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve of `scores` predicting `labels` (rank-based, Mann-Whitney).

    Ties count one half. None when a class is empty.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rank_average(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def quantile_bins(x: np.ndarray, y: np.ndarray, q: int = 5) -> list[dict]:
    """Mean of y within q equal-frequency bins of x (quintiles for q = 5).

    Bins are cut at the value quantiles, right-closed as pandas.qcut; heavy ties merge
    bins, so fewer than q can come back. Each bin: {"bin", "lo", "hi", "count", "mean"}.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) == 0:
        return []
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, q + 1)))
    # right-closed bins (e0, e1], (e1, e2], ... with the lowest value in the first (as qcut)
    codes = np.searchsorted(edges[1:-1], x, side="left") if len(edges) > 2 \
        else np.zeros(len(x), dtype=np.int64)
    k = int(codes.max()) + 1
    count = np.bincount(codes, minlength=k)
    ysum = np.bincount(codes, weights=y, minlength=k)
    lo = np.full(k, np.inf)
    hi = np.full(k, -np.inf)
    np.minimum.at(lo, codes, x)
    np.maximum.at(hi, codes, x)
    keep = [i for i in range(k) if count[i] > 0]
    return [{"bin": j + 1, "lo": float(lo[i]), "hi": float(hi[i]), "count": int(count[i]),
             "mean": float(ysum[i] / count[i])} for j, i in enumerate(keep)]


def quintiles(x: np.ndarray, y: np.ndarray) -> list[dict]:
    """Mean of y by quintile of x (see quantile_bins)."""
    return quantile_bins(x, y, 5)


def group_pair_counts(groups: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> dict:
    """For every group, count (positive, negative) pairs and how many have score_pos > score_neg
    or score_pos == score_neg, without forming the pairs: one sort by (group, score), then
    prefix counts of negatives over tie blocks (O(N log N)).

    groups: (N,) group codes; scores: (N,); labels: (N,) bool. Returns arrays indexed by
    the sorted unique group codes: groups, n_pos, n_neg, pairs, greater, ties.
    """
    g = np.asarray(groups)
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    keys, codes = np.unique(g, return_inverse=True)
    k = len(keys)
    n = len(s)
    order = np.lexsort((s, codes))
    cs, ss, ys = codes[order], s[order], y[order]
    # negatives strictly before sorted position j: neg_before[j]
    neg_before = np.concatenate([[0], np.cumsum(~ys)])  # (N + 1,)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = cs[1:] != cs[:-1]
    new_tie = new_group.copy()
    new_tie[1:] |= ss[1:] != ss[:-1]
    g_start = np.flatnonzero(new_group)[np.cumsum(new_group) - 1]  # (N,)
    t_starts = np.flatnonzero(new_tie)
    t_id = np.cumsum(new_tie) - 1
    t_start = t_starts[t_id]
    t_end = np.append(t_starts[1:], n)[t_id]
    below = neg_before[t_start] - neg_before[g_start]  # negatives of the group scored lower
    tied = neg_before[t_end] - neg_before[t_start]  # negatives with the same score
    n_pos = np.bincount(codes, weights=y.astype(np.float64), minlength=k)
    n_neg = np.bincount(codes, minlength=k) - n_pos
    greater = np.bincount(cs[ys], weights=below[ys].astype(np.float64), minlength=k)
    ties = np.bincount(cs[ys], weights=tied[ys].astype(np.float64), minlength=k)
    return {"groups": keys, "n_pos": n_pos.astype(np.int64), "n_neg": n_neg.astype(np.int64),
            "pairs": (n_pos * n_neg).astype(np.int64), "greater": greater.astype(np.int64),
            "ties": ties.astype(np.int64)}


def describe(x: np.ndarray) -> dict:
    """count, mean, median, q1, q3, iqr of x (None values when empty)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return {"count": 0, "mean": None, "median": None, "q1": None, "q3": None, "iqr": None}
    q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    return {"count": int(len(x)), "mean": float(x.mean()), "median": float(med),
            "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1)}


def ci_dict(res: dict, i: int | None = None) -> dict:
    """{"estimate", "ci_low", "ci_high", "se"} from paired_bootstrap output (column i)."""
    pick = (lambda v: v) if i is None else (lambda v: v[i])
    return {k: _num(pick(res[k])) for k in ("estimate", "ci_low", "ci_high", "se")}


def _num(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


# ---------------------------------------------------------------- multiple comparisons, power


def wald_p_value(estimate, se) -> np.ndarray:
    """Two-sided p-value of "difference = 0" from an estimate and its (bootstrap) standard
    error, by the normal approximation: 2 * P[Z > |estimate / se|]. Unlike a p-value counted
    from the replicates it is not floored at 1 / resamples, so a Holm adjustment over many
    tests stays meaningful. se = 0: p = 0 for a nonzero estimate, 1 for zero; NaN stays NaN."""
    from scipy.stats import norm

    est = np.atleast_1d(np.asarray(estimate, dtype=np.float64))
    se = np.atleast_1d(np.asarray(se, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(est) / se
    p = 2.0 * norm.sf(z)
    p = np.where(se == 0, np.where(est == 0, 1.0, 0.0), p)
    return np.where(np.isnan(est) | np.isnan(se), np.nan, p)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values (family-wise error), in the input order; None stays
    None and is not counted in the family."""
    idx = [i for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    m = len(idx)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out


def power_z(alpha: float = 0.05, power: float = 0.8) -> float:
    """z_(1-alpha/2) + z_power: the standardized effect a two-sided test needs."""
    from scipy.stats import norm

    return float(norm.ppf(1.0 - alpha / 2.0) + norm.ppf(power))


def problems_needed(sd: float, delta: float, alpha: float = 0.05,
                    power: float = 0.8) -> int | None:
    """Problems a paired test needs to detect a mean per-problem difference delta whose
    per-problem differences have standard deviation sd: ceil((z * sd / delta)^2). None when
    delta is 0 or sd unknown."""
    if not (np.isfinite(sd) and np.isfinite(delta)) or delta == 0:
        return None
    return max(2, int(math.ceil((power_z(alpha, power) * sd / abs(delta)) ** 2)))


def samples_needed(var_diff: float, var_within: float, n: int, problems: int, delta: float,
                   alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Samples per problem that would detect delta on the same problems at the given power.

    The variance of a problem's avg@n difference is var_between + var_within / n, where
    var_within is the per-sample (Bernoulli) variance of both runs summed; more samples shrink
    only the second part. None when even infinitely many samples would not do (the problems'
    own spread is too large: more problems are needed), or delta is 0."""
    if not all(np.isfinite([var_diff, var_within, delta])) or delta == 0 or problems < 2 or n < 1:
        return None
    between = max(0.0, var_diff - var_within / n)
    target = problems * (delta / power_z(alpha, power)) ** 2  # largest variance that suffices
    if target <= between:
        return None
    return max(1, int(math.ceil(var_within / (target - between))))
