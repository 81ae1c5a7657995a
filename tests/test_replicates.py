"""Replicate seeds: t intervals and the two-level bootstrap against hand computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from amir_bench.errors import UserError
from analysis.matrices import SampleMatrix
from analysis.replicates import parse_group, replicates, t_interval, two_level_bootstrap
from analysis.stats import paired_bootstrap


def test_t_interval_by_hand():
    # mean 0.5, sd 0.1, t(0.975, 2 df) = 4.302653: half width 4.302653 * 0.1 / sqrt(3)
    got = t_interval([0.4, 0.5, 0.6])
    half = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert got["mean"] == pytest.approx(0.5)
    assert got["sd"] == pytest.approx(0.1)
    assert got["ci_low"] == pytest.approx(0.5 - half) and half == pytest.approx(0.2484138, 1e-6)
    assert got["ci_high"] == pytest.approx(0.5 + half)
    one = t_interval([0.3])
    assert one["mean"] == 0.3 and one["ci_low"] is None and one["seeds"] == 1
    same = t_interval([0.2, 0.2])
    assert same["ci_low"] == same["ci_high"] == pytest.approx(0.2)


def _exact_two_level(va, vb):
    """Every equally likely outcome of (problem draws, seed draws of a, seed draws of b)."""
    sa, p = va.shape
    sb = vb.shape[0]
    out = []
    for pi in itertools.product(range(p), repeat=p):
        for ja in itertools.product(range(sa), repeat=sa):
            for jb in itertools.product(range(sb), repeat=sb):
                mb = np.mean([vb[j, list(pi)].mean() for j in jb])
                ma = np.mean([va[j, list(pi)].mean() for j in ja])
                out.append(mb - ma)
    return np.asarray(out)


def test_two_level_bootstrap_matches_the_exact_distribution():
    va = np.array([[0.0, 1.0], [0.5, 0.5]])  # (seeds, problems)
    vb = np.array([[1.0, 1.0], [0.0, 1.0]])
    exact = _exact_two_level(va, vb)  # 4 * 4 * 4 outcomes
    res = two_level_bootstrap(va[:, :, None], vb[:, :, None], resamples=40_000, seed=1)
    assert res["estimate"][0] == pytest.approx(0.25)
    assert res["se"][0] == pytest.approx(exact.std(), rel=0.03)
    assert res["ci_low"][0] == pytest.approx(np.quantile(exact, 0.025), abs=0.02)
    assert res["ci_high"][0] == pytest.approx(np.quantile(exact, 0.975), abs=0.02)


def test_one_seed_per_group_is_the_paired_bootstrap():
    rng = np.random.default_rng(0)
    va, vb = rng.random((1, 50)), rng.random((1, 50))
    two = two_level_bootstrap(va[:, :, None], vb[:, :, None], resamples=3000, seed=7)
    one = paired_bootstrap(vb[0] - va[0], resamples=3000, seed=7)
    for key in ("estimate", "ci_low", "ci_high", "se"):
        assert two[key][0] == pytest.approx(one[key])


def _mat(counts, n=4):
    counts = np.asarray(counts)
    correct = np.arange(n)[None, :] < counts[:, None]
    return {"b": SampleMatrix("b", [f"p{i}" for i in range(len(counts))], correct,
                              np.where(correct, 0, 1), np.full(correct.shape, 10))}


def test_replicates_group_means_and_intervals():
    # grpo seeds: avg@4 = 0.25, 0.5, 0.75 over two problems; base: one seed at 0.25
    groups = {"base": [_mat([1, 1])],
              "grpo": [_mat([0, 2]), _mat([2, 2]), _mat([3, 3])]}
    res = replicates(groups, resamples=500)
    b = res["benchmarks"]["b"]
    g = b["metrics"]["grpo"]["avg@n"]
    assert g["per_seed"] == [0.25, 0.5, 0.75] and g["mean"] == pytest.approx(0.5)
    half = 4.302652729911275 * 0.25 / math.sqrt(3)
    assert g["ci_high"] - g["mean"] == pytest.approx(half)
    assert b["metrics"]["base"]["avg@n"]["ci_low"] is None
    d = b["pairs"][0]
    assert (d["a"], d["b"]) == ("base", "grpo")
    assert d["diff"]["avg@n"]["estimate"] == pytest.approx(0.25)
    assert d["diff"]["pass@4"]["estimate"] == pytest.approx(2 / 3 * 1 + 1 / 3 * 0.5 - 1.0)
    assert res["metrics"] == ["avg@n", "pass@1", "pass@2", "pass@4"]


def test_parse_group_and_errors():
    assert parse_group("grpo=runs/a, runs/b") == ("grpo", ["runs/a", "runs/b"])
    for bad in ("grpo", "=a,b", "grpo="):
        with pytest.raises(UserError, match="NAME=RUN"):
            parse_group(bad)
    with pytest.raises(UserError, match="differ in samples"):
        replicates({"a": [_mat([1], n=4)], "b": [_mat([1], n=2)]}, resamples=10)
