"""analysis.stats on hand-computed values, cross-checked with scipy where it has the test."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from analysis.stats import (auroc, bootstrap_counts, bootstrap_means, combine_strata, describe,
                            group_pair_counts, mcnemar_exact, paired_bootstrap, point_biserial,
                            quintiles, rank_average)


# ---------------------------------------------------------------- McNemar exact


def test_mcnemar_hand_values():
    # b=1, c=6: P[X<=1 | Bin(7, 1/2)] = (1 + 7) / 128; two-sided p = 16/128
    r = mcnemar_exact(1, 6)
    assert r == {"b": 1, "c": 6, "discordant": 7, "p_value": pytest.approx(0.125)}
    assert mcnemar_exact(0, 5)["p_value"] == pytest.approx(2 / 32)
    assert mcnemar_exact(2, 4)["p_value"] == pytest.approx(2 * (1 + 6 + 15) / 64)
    assert mcnemar_exact(3, 3)["p_value"] == 1.0  # capped at 1
    assert mcnemar_exact(0, 0)["p_value"] == 1.0  # no discordant problems


@pytest.mark.parametrize("b,c", [(0, 1), (1, 6), (4, 9), (10, 30), (25, 25), (120, 80),
                                 (3, 300)])
def test_mcnemar_matches_scipy_binomtest(b, c):
    ref = sps.binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact(b, c)["p_value"] == pytest.approx(ref, rel=1e-9)
    assert mcnemar_exact(b, c)["p_value"] == mcnemar_exact(c, b)["p_value"]


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_counts_rows_sum_to_p():
    rng = np.random.default_rng(0)
    ws = list(bootstrap_counts(7, 1000, rng))
    w = np.concatenate(ws)
    assert w.shape == (1000, 7)
    assert (w.sum(axis=1) == 7).all()
    # every item is drawn 1 time per resample on average
    assert w.mean() == pytest.approx(1.0, abs=0.05)


def test_paired_bootstrap_constant_and_known_se():
    const = paired_bootstrap(np.full(30, 0.25), resamples=500, seed=1)
    assert const["estimate"] == const["ci_low"] == const["ci_high"] == pytest.approx(0.25)
    # 100 differences of 0 or 1 (half each): mean 0.5, se = sqrt(0.25 / 100) = 0.05
    d = np.array([0.0, 1.0] * 50)
    res = paired_bootstrap(d, resamples=10_000, seed=0)
    assert res["estimate"] == 0.5
    assert res["se"] == pytest.approx(0.05, rel=0.05)
    assert res["ci_low"] == pytest.approx(0.5 - 1.96 * 0.05, abs=0.012)
    assert res["ci_high"] == pytest.approx(0.5 + 1.96 * 0.05, abs=0.012)


def test_paired_bootstrap_seeded_and_vectorized_paths_agree():
    rng = np.random.default_rng(3)
    d = rng.normal(size=(40, 10))  # (P, M): M > 8 takes the count-matrix path
    a = paired_bootstrap(d, resamples=2000, seed=7)
    b = paired_bootstrap(d, resamples=2000, seed=7)
    assert np.array_equal(a["ci_low"], b["ci_low"])
    c = paired_bootstrap(d, resamples=2000, seed=8)
    assert not np.array_equal(a["ci_low"], c["ci_low"])
    # few columns gather the values instead; same draws -> same replicates
    few = bootstrap_means(d[:, :2], resamples=2000, seed=7)
    many = bootstrap_means(d, resamples=2000, seed=7)
    np.testing.assert_allclose(few, many[:, :2], rtol=1e-12, atol=1e-12)
    # a naive loop with the same draws gives the same replicate means
    rng2 = np.random.default_rng(7)
    chunk = 400_000 // 40
    naive = []
    while len(naive) < 2000:
        idx = rng2.integers(0, 40, size=(min(chunk, 2000 - len(naive)), 40), dtype=np.int16)
        naive.extend(d[i].mean(axis=0) for i in idx.astype(np.intp))
    np.testing.assert_allclose(many, np.array(naive), rtol=1e-12, atol=1e-12)


def test_bootstrap_means_shares_replicates_of_identical_columns():
    rng = np.random.default_rng(4)
    d = rng.normal(size=(30, 3))
    dup = np.column_stack([d[:, 0], d[:, 1], d[:, 0] + 1e-15, d[:, 2], d[:, 1]])
    reps = bootstrap_means(dup, resamples=300, seed=2)
    np.testing.assert_array_equal(reps[:, 0], reps[:, 2])
    np.testing.assert_array_equal(reps[:, 1], reps[:, 4])
    np.testing.assert_allclose(reps[:, [0, 1, 3]], bootstrap_means(d, resamples=300, seed=2),
                               rtol=1e-12, atol=1e-12)


def test_stratified_bootstrap_keeps_strata_weights():
    # stratum A: all 0, stratum B: all 1 -> every stratified resample mean is exactly 0.25
    d = np.array([0.0] * 30 + [1.0] * 10)
    res = paired_bootstrap(d, resamples=1000, seed=0, strata=[30, 10])
    assert res["ci_low"] == pytest.approx(0.25) and res["ci_high"] == pytest.approx(0.25)
    plain = paired_bootstrap(d, resamples=1000, seed=0)
    assert plain["ci_low"] < 0.25 < plain["ci_high"]
    reps = combine_strata([np.zeros((5, 1)), np.ones((5, 1))], [3, 1])
    np.testing.assert_allclose(reps, 0.25)
    with pytest.raises(ValueError):
        paired_bootstrap(d, strata=[10, 10])


def test_paired_bootstrap_empty():
    res = paired_bootstrap(np.array([]), resamples=10)
    assert all(math.isnan(v) for v in res.values())


# ---------------------------------------------------------------- point-biserial


def test_point_biserial_hand_value():
    # x = 1..4, y = 0,0,1,1: r = 2 / sqrt(5); t = r sqrt(2 / (1 - r^2)) = 2 sqrt 2, df = 2
    res = point_biserial(np.array([1, 2, 3, 4]), np.array([0, 0, 1, 1], dtype=bool))
    assert res["r"] == pytest.approx(2 / math.sqrt(5))
    t = 2 * math.sqrt(2)
    assert res["p_value"] == pytest.approx(2 * sps.t.sf(t, 2))


def test_point_biserial_matches_scipy_and_degenerate_cases():
    rng = np.random.default_rng(0)
    x = rng.integers(50, 4000, size=500).astype(float)
    y = rng.random(500) < 1 / (1 + np.exp((x - 2000) / 500))
    ref = sps.pointbiserialr(y, x)
    res = point_biserial(x, y)
    assert res["r"] == pytest.approx(ref.statistic, rel=1e-10)
    assert res["p_value"] == pytest.approx(ref.pvalue, rel=1e-6)
    assert point_biserial(x, np.ones(500, bool)) == {"r": None, "p_value": None}
    assert point_biserial(np.full(10, 3.0), y[:10]) == {"r": None, "p_value": None}


# ---------------------------------------------------------------- AUROC and ranks


def test_auroc_hand_values():
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([1, 2, 3], [0, 1, 1]) == 1.0
    assert auroc([3, 2, 1], [0, 1, 1]) == 0.0
    assert auroc([1.0, 1.0], [1, 0]) == 0.5  # a tie counts one half
    assert auroc([1.0, 2.0], [1, 1]) is None


def test_auroc_matches_pair_count_and_scipy_with_ties():
    rng = np.random.default_rng(1)
    s = rng.integers(0, 6, size=80).astype(float)  # many ties
    y = rng.random(80) < 0.4
    pos, neg = s[y], s[~y]
    brute = np.mean([(a > b) + 0.5 * (a == b) for a, b in itertools.product(pos, neg)])
    assert auroc(s, y) == pytest.approx(brute)
    u = sps.mannwhitneyu(pos, neg).statistic
    assert auroc(s, y) == pytest.approx(u / (len(pos) * len(neg)))


def test_rank_average_matches_scipy():
    x = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    np.testing.assert_allclose(rank_average(x), sps.rankdata(x))


# ---------------------------------------------------------------- quintiles, pairs, describe


def test_quintiles_equal_bins_and_ties():
    x = np.arange(1, 101)
    q = quintiles(x, x > 50)
    assert [b["count"] for b in q] == [20] * 5
    assert [b["mean"] for b in q] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert (q[0]["lo"], q[0]["hi"], q[4]["hi"]) == (1.0, 20.0, 100.0)
    same = quintiles(np.full(10, 7.0), np.arange(10) < 3)
    assert len(same) == 1 and same[0]["count"] == 10 and same[0]["mean"] == pytest.approx(0.3)
    assert quintiles(np.array([]), np.array([])) == []


@pytest.mark.parametrize("seed", [0, 1])
def test_quintiles_match_pandas_qcut(seed):
    import pandas as pd

    rng = np.random.default_rng(seed)
    for x in (rng.integers(0, 20, 500).astype(float), rng.normal(size=1000)):
        y = rng.random(len(x))
        ref = pd.Series(y).groupby(pd.qcut(x, 5, labels=False, duplicates="drop")).agg(
            ["mean", "size"])
        q = quintiles(x, y)
        assert [b["count"] for b in q] == ref["size"].tolist()
        np.testing.assert_allclose([b["mean"] for b in q], ref["mean"])


def test_group_pair_counts_matches_brute_force():
    rng = np.random.default_rng(2)
    g = rng.integers(0, 12, size=300)
    s = rng.integers(0, 5, size=300).astype(float)
    y = rng.random(300) < 0.5
    res = group_pair_counts(g, s, y)
    for k, grp in enumerate(res["groups"]):
        sel = g == grp
        pos, neg = s[sel & y], s[sel & ~y]
        assert res["pairs"][k] == len(pos) * len(neg)
        assert res["greater"][k] == sum(a > b for a in pos for b in neg)
        assert res["ties"][k] == sum(a == b for a in pos for b in neg)


def test_describe():
    d = describe(np.array([1, 2, 3, 4, 100]))
    assert d == {"count": 5, "mean": 22.0, "median": 3.0, "q1": 2.0, "q3": 4.0, "iqr": 2.0}
    assert describe(np.array([]))["mean"] is None
