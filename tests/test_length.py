"""Length bias on hand-computed lengths; paired length differences between runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from runfactory import make_run
from scipy import stats as sps

from analysis.length import length_bias


def _recs(pid, lengths, correct, finish=None):
    return [{"problem_id": pid, "sample_idx": j, "num_tokens": t, "correct": c,
             "finish_reason": (finish or {}).get(j, "stop")}
            for j, (t, c) in enumerate(zip(lengths, correct))]


def test_lengths_of_correct_vs_incorrect(tmp_path):
    recs = (_recs("p1", [100, 300, 500], [True, False, False], finish={2: "length"})
            + _recs("p2", [200, 700, 400], [True, False, False]))
    run = make_run(tmp_path / "r", records=recs, n=3)
    res = length_bias([run], resamples=100)
    s = res["per_run"]["r"]["benchmarks"]["amc23"]
    assert s["samples"] == 6 and s["accuracy"] == pytest.approx(2 / 6)
    assert s["correct"] == {"count": 2, "mean": 150.0, "median": 150.0, "q1": 125.0,
                            "q3": 175.0, "iqr": 50.0}
    assert s["incorrect"]["mean"] == pytest.approx(475.0)
    assert s["incorrect"]["median"] == pytest.approx(450.0)
    assert s["incorrect"]["iqr"] == pytest.approx(np.subtract(*np.quantile(
        [300, 500, 700, 400], [0.75, 0.25])))
    assert s["ratio_incorrect_correct"] == pytest.approx(475 / 150)
    assert s["truncation_rate"] == pytest.approx(1 / 6)
    assert s["truncation_rate_incorrect"] == pytest.approx(1 / 4)
    assert s["truncation_rate_correct"] == 0.0
    x = np.array([100, 300, 500, 200, 700, 400])
    y = np.array([1, 0, 0, 1, 0, 0], bool)
    assert s["point_biserial"]["r"] == pytest.approx(sps.pointbiserialr(y, x).statistic)
    assert s["point_biserial"]["r"] < 0
    # six distinct lengths in 5 quintile bins; accuracy falls with length
    qs = s["quintiles"]
    assert sum(q["count"] for q in qs) == 6
    assert qs[0]["accuracy"] == 1.0 and qs[-1]["accuracy"] == 0.0
    # within problems: p1 (400 - 100), p2 (550 - 200)
    w = s["within_problem"]
    assert w["problems"] == 2
    assert w["mean_diff_incorrect_minus_correct"] == pytest.approx((300 + 350) / 2)
    assert w["mean_ratio_incorrect_correct"] == pytest.approx((4.0 + 2.75) / 2)
    h = s["histogram"]
    assert len(h["edges"]) == 31 and sum(h["correct"]) == 2 and sum(h["incorrect"]) == 4
    assert res["pairs"] == []  # a single run is fine for length
    json.dumps(res, allow_nan=False)


def test_all_correct_gives_nulls_not_errors(tmp_path):
    run = make_run(tmp_path / "r", {"p1": 2, "p2": 2}, n=2)
    s = length_bias([run], resamples=10)["per_run"]["r"]["overall"]
    assert s["incorrect"]["mean"] is None and s["ratio_incorrect_correct"] is None
    assert s["point_biserial"] == {"r": None, "p_value": None}
    assert s["within_problem"]["problems"] == 0


def test_paired_length_difference_between_runs(tmp_path):
    a = make_run(tmp_path / "a", records=_recs("p1", [100, 200], [True, False])
                 + _recs("p2", [300, 300], [True, True])
                 + _recs("p3", [50, 50], [False, False]), n=2)
    b = make_run(tmp_path / "b", records=_recs("p1", [100, 100], [True, True])
                 + _recs("p2", [500, 300], [True, True])
                 + _recs("p3", [90, 70], [False, True]), n=2)
    res = length_bias([a, b], resamples=2000)
    (pair,) = res["pairs"]
    assert (pair["a"], pair["b"]) == ("a", "b")
    blk = pair["benchmarks"]["amc23"]
    # per-problem mean length b - a: p1 -50, p2 +100, p3 +30
    assert blk["problems"] == 3
    assert blk["mean_a"] == pytest.approx((150 + 300 + 50) / 3)
    assert blk["diff"]["estimate"] == pytest.approx(80 / 3)
    assert blk["median_diff"] == pytest.approx(30)
    assert -50 <= blk["diff"]["ci_low"] <= blk["diff"]["estimate"] <= blk["diff"]["ci_high"] <= 100
    assert pair["overall"]["diff"]["estimate"] == pytest.approx(80 / 3)


def test_pairs_use_shared_problems_and_skip_other_rows(tmp_path):
    a = make_run(tmp_path / "a", {"p1": 1, "p2": 1, "p3": 0}, n=2)
    b = make_run(tmp_path / "b", {"p1": 1, "p2": 2}, n=2)
    c = make_run(tmp_path / "c", {"p1": 1, "p2": 2}, n=2, sha="other rows")
    res = length_bias([a, b, c], resamples=100)
    pairs = {(p["a"], p["b"]): p for p in res["pairs"]}
    assert pairs[("a", "b")]["benchmarks"]["amc23"]["problems"] == 2
    assert pairs[("a", "c")]["benchmarks"] == {} and pairs[("a", "c")]["overall"] is None
    assert any("a vs c: amc23 skipped" in n for n in res["notes"])


def test_seeded_and_overall_stratified(tmp_path):
    recs = [{"benchmark": "gsm8k", "problem_id": f"g{i}", "sample_idx": j,
             "num_tokens": 100 + 7 * i + j, "correct": j == 0} for i in range(8) for j in range(2)]
    recs2 = [dict(r, num_tokens=r["num_tokens"] + (i % 3) * 10) for i, r in enumerate(recs)]
    a = make_run(tmp_path / "a", {"p1": 1, "p2": 0}, n=2, records=recs)
    b = make_run(tmp_path / "b", {"p1": 2, "p2": 1}, n=2, records=recs2)
    r1 = length_bias([a, b], seed=3, resamples=500)
    r2 = length_bias([a, b], seed=3, resamples=500)
    assert r1 == r2
    ov = r1["pairs"][0]["overall"]
    assert ov["problems"] == 10
    est = sum(blk["diff"]["estimate"] * blk["problems"]
              for blk in r1["pairs"][0]["benchmarks"].values()) / 10
    assert ov["diff"]["estimate"] == pytest.approx(est)
