"""Holm adjustment, p-values of bootstrap differences and the problems / samples a difference
needs, against textbook and hand computations; and their place in coverage.json."""

from __future__ import annotations

import math

import numpy as np
import pytest
from runfactory import make_run

from analysis.stats import holm, power_z, problems_needed, samples_needed, wald_p_value


def test_holm_textbook_example():
    # four tests, p = .01 .04 .03 .005: sorted .005 .01 .03 .04 times 4 3 2 1 = .02 .03 .06 .04,
    # made monotone -> .02 .03 .06 .06, back in input order
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # capped at 1, None left out of the family
    assert holm([0.5, None, 0.4]) == [pytest.approx(0.8), None, pytest.approx(0.8)]
    assert holm([]) == []


def test_wald_p_value_by_hand():
    # estimate 0.02 with standard error 0.01: z = 2, p = 2 (1 - Phi(2)) = 0.0455
    assert wald_p_value(0.02, 0.01)[0] == pytest.approx(0.04550026, rel=1e-6)
    assert list(wald_p_value([0.0, 0.1], [0.0, 0.0])) == [1.0, 0.0]  # degenerate CIs
    assert np.isnan(wald_p_value(np.nan, 0.1)[0])


def test_problems_needed_hand_computation():
    z = 1.959963984540054 + 0.8416212335729143
    assert power_z() == pytest.approx(z)
    # sd 0.2, delta 0.05: (z * 0.2 / 0.05)^2 = 125.58 -> 126 problems
    assert problems_needed(0.2, 0.05) == math.ceil((z * 4) ** 2) == 126
    assert problems_needed(0.2, 0.0) is None


def test_samples_needed_hand_computation():
    # var of a problem's difference 0.04 at n = 8, per-sample variance of both runs 0.5: the
    # problems' own spread is max(0, 0.04 - 0.5 / 8) = 0; 100 problems allow a variance of
    # 100 * (0.05 / z)^2 = 0.03185 -> n' = ceil(0.5 / 0.03185) = 16
    assert samples_needed(0.04, 0.5, 8, 100, 0.05) == 16
    # a large spread between problems: no number of samples is enough
    assert samples_needed(0.5, 0.1, 8, 20, 0.01) is None


def test_coverage_reports_p_values_and_power(tmp_path):
    from analysis.coverage import coverage

    a = make_run(tmp_path / "a", {f"p{i}": i % 3 for i in range(12)}, n=4)
    b = make_run(tmp_path / "b", {f"p{i}": (i + 1) % 3 for i in range(12)}, n=4)
    res = coverage([a, b], resamples=200)
    pair = res["benchmarks"]["amc23"]["pairs"][0]
    d = pair["diff"]["avg@n"]
    assert 0 < d["p_value"] <= 1
    pw = pair["power"]
    assert pw["difference"] == pytest.approx(d["estimate"])
    assert pw["problems_needed"] == problems_needed(pw["sd_per_problem"], pw["difference"])
