"""Log-prob margin on hand-computed scores; missing / partial scores are one-line errors."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from runfactory import make_run

from amir_bench.errors import UserError
from analysis.margin import margin
from analysis.stats import auroc


def _recs(pid, ells, correct, bench="amc23"):
    return [{"benchmark": bench, "problem_id": pid, "sample_idx": j, "correct": c,
             "logprob_mean": l} for j, (l, c) in enumerate(zip(ells, correct))]


HAND = (_recs("p1", [-0.2, -0.4, -0.5], [True, True, False])
        + _recs("p2", [-0.6, -0.5, -0.7], [True, False, False])
        + _recs("p3", [-0.1, -0.3, -0.2], [True, True, True]))


def test_margin_hand_values(tmp_path):
    run = make_run(tmp_path / "r", records=HAND, n=3, scores=True)
    res = margin([run], resamples=500)
    s = res["per_run"]["r"]["benchmarks"]["amc23"]
    # p1: mean(-0.2, -0.4) - (-0.5) = 0.2; p2: -0.6 - mean(-0.5, -0.7) = 0.0; p3 all correct
    assert (s["problems"], s["problems_mixed"], s["problems_all_correct"]) == (3, 2, 1)
    assert s["mean_margin"] == pytest.approx(0.1)
    assert s["median_margin"] == pytest.approx(0.1)
    assert s["frac_positive"] == 0.5  # a zero margin is not positive
    assert s["per_problem"]["problem_id"] == ["p1", "p2"]
    np.testing.assert_allclose(s["per_problem"]["margin"], [0.2, 0.0], atol=1e-12)
    lo, hi = s["mean_margin_ci"]["ci_low"], s["mean_margin_ci"]["ci_high"]
    assert 0.0 - 1e-12 <= lo <= 0.1 <= hi <= 0.2 + 1e-12
    # pairs: p1 (+0.3, +0.1), p2 (-0.1, +0.1): 3 of 4 positive, mean 0.1
    p = s["pairs"]
    assert p["count"] == 4 and p["frac_positive"] == 0.75 and p["frac_ties"] == 0.0
    assert p["mean_margin"] == pytest.approx(0.1)
    assert p["auroc_within_problem"] == 0.75
    ells = [r["logprob_mean"] for r in HAND]
    ok = [r["correct"] for r in HAND]
    assert s["auroc"] == pytest.approx(auroc(ells, ok))
    pos = [l for l, c in zip(ells, ok) if c]
    neg = [l for l, c in zip(ells, ok) if not c]
    assert s["auroc"] == pytest.approx(np.mean([(a > b) + 0.5 * (a == b)
                                                for a, b in itertools.product(pos, neg)]))
    assert s["mean_logprob_correct"] == pytest.approx(np.mean(pos))
    assert res["per_run"]["r"]["scorers"] == ["ckpt/r"]
    json.dumps(res, allow_nan=False)


def test_pair_level_ties_and_weights(tmp_path):
    # p1: 1 correct vs 3 incorrect (3 pairs); p2: 2 vs 2 (4 pairs), one tie
    recs = (_recs("p1", [-0.1, -0.3, -0.3, -0.3], [True, False, False, False])
            + _recs("p2", [-0.5, -0.4, -0.5, -0.9], [True, True, False, False]))
    run = make_run(tmp_path / "r", records=recs, n=4, scores=True)
    s = margin([run], resamples=100)["per_run"]["r"]["benchmarks"]["amc23"]
    p = s["pairs"]
    assert p["count"] == 7
    # p1: 3 positive; p2: (-0.5 vs -0.5 tie, -0.5 vs -0.9 +, -0.4 vs -0.5 +, -0.4 vs -0.9 +)
    assert p["frac_positive"] == pytest.approx(6 / 7)
    assert p["frac_ties"] == pytest.approx(1 / 7)
    assert p["auroc_within_problem"] == pytest.approx(6.5 / 7)
    m1, m2 = 0.2, -0.45 - (-0.7)
    assert s["mean_margin"] == pytest.approx((m1 + m2) / 2)
    assert p["mean_margin"] == pytest.approx((3 * m1 + 4 * m2) / 7)  # pair-weighted


def test_paper_figure4_margins_are_recovered(tmp_path):
    """Runs whose correct samples sit 0.006 vs 0.016 nats/token above incorrect ones."""
    rng = np.random.default_rng(0)

    def build(name, gap):
        recs = []
        for i in range(60):
            base = rng.normal(-0.45, 0.05)
            ok = [j % 2 == 0 for j in range(8)]
            ells = [base + (gap / 2 if c else -gap / 2) for c in ok]
            recs += _recs(f"p{i}", ells, ok)
        return make_run(tmp_path / name, records=recs, n=8, scores=True)

    res = margin([build("grpo", 0.006), build("amir", 0.016)], resamples=500)
    g = res["per_run"]["grpo"]["overall"]
    a = res["per_run"]["amir"]["overall"]
    assert g["mean_margin"] == pytest.approx(0.006) and a["mean_margin"] == pytest.approx(0.016)
    assert g["frac_positive"] == 1.0 and a["pairs"]["auroc_within_problem"] == 1.0


def test_overall_pools_benchmarks(tmp_path):
    recs = HAND + _recs("q1", [-0.3, -0.6], [True, False], bench="aime24")
    run = make_run(tmp_path / "r", records=recs, n=3, scores=True)
    res = margin([run], resamples=300)["per_run"]["r"]
    assert sorted(res["benchmarks"]) == ["aime24", "amc23"]
    ov = res["overall"]
    assert ov["problems_mixed"] == 3
    assert ov["mean_margin"] == pytest.approx((0.2 + 0.0 + 0.3) / 3)
    assert "per_problem" not in ov
    assert ov["pairs"]["count"] == 5


def test_missing_and_partial_scores_are_user_errors(tmp_path):
    run = make_run(tmp_path / "r", records=HAND, n=3)
    with pytest.raises(UserError, match=r"no scores.jsonl; run `amir-bench score .*r` first"):
        margin([run], resamples=10)
    scored = make_run(tmp_path / "s", records=HAND, n=3, scores=True)
    lines = (scored / "scores.jsonl").read_text().splitlines(keepends=True)
    (scored / "scores.jsonl").write_text("".join(lines[:-2]))
    with pytest.raises(UserError, match="covers 7 of 9 samples; finish it with `amir-bench score"):
        margin([scored], resamples=10)
    (scored / "scores.jsonl").write_text("".join(lines[:-1]) + lines[-1][:20])
    with pytest.raises(UserError, match=r"scores.jsonl:9: last line is cut off .*amir-bench "
                                        r"score"):
        margin([scored], resamples=10)
    other = make_run(tmp_path / "o", records=HAND + _recs("zz", [-0.1], [True]), n=3,
                     scores=True)
    (scored / "scores.jsonl").write_text((other / "scores.jsonl").read_text())
    with pytest.raises(UserError, match="1 record\\(s\\) that match no sample"):
        margin([scored], resamples=10)
