"""pass@k / maj@k curves against brute-force enumeration, and the crossing k."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pandas as pd
import pytest

from amir_bench.metrics import majority_correct, summarize
from amir_bench.records import SampleRecord
from analysis.curves import crossing, curves, k_subsets, majority_rate, pass_curve
from analysis.matrices import align_matrices, frame_from_records, matrices_from_frame


def _rec(pid: str, j: int, extracted, correct: bool, bench: str = "b") -> SampleRecord:
    return SampleRecord(benchmark=bench, problem_id=pid, sample_idx=j, completion="",
                        finish_reason="stop", num_tokens=10 + j, gen_logprob_sum=None,
                        extracted=extracted, correct=correct,
                        grade_status="ok" if extracted is not None else "no_answer", gold="g")


def _random_records(rng: random.Random, problems: int, n: int) -> list[SampleRecord]:
    """Answers from a small alphabet; "g" and "G" are both graded correct (equivalent), None
    is no answer, so pooling, ties and abstentions all occur."""
    out = []
    for p in range(problems):
        for j in range(n):
            a = rng.choice(["g", "G", "x", "y", "z", None])
            out.append(_rec(f"p{p}", j, a, a in ("g", "G")))
    return out


def test_pass_curve_matches_enumeration():
    rng = np.random.default_rng(0)
    n = 6
    flags = rng.random((40, n)) < 0.3
    ks = [1, 2, 4, 6]
    got = pass_curve(flags.sum(axis=1), n, ks)
    for k_i, k in enumerate(ks):
        brute = np.array([np.mean([row[list(s)].any() for s in itertools.combinations(range(n), k)])
                          for row in flags])
        np.testing.assert_allclose(got[:, k_i], brute, atol=1e-12)


def test_pass_curve_hand_values():
    # c = 2 of n = 8: pass@2 = 1 - C(6,2)/C(8,2) = 13/28, pass@4 = 1 - 15/70 = 11/14
    got = pass_curve(np.array([2]), 8, [1, 2, 4, 8])[0]
    np.testing.assert_allclose(got, [0.25, 13 / 28, 11 / 14, 1.0])


def test_maj_matches_enumeration_with_the_maj_at_n_rule():
    """Every k-subset voted with amir_bench.metrics' own majority rule (ties to the answer seen
    first, equivalent correct answers pooled, no-answer samples skipped)."""
    recs = _random_records(random.Random(1), problems=30, n=6)
    mats, notes = matrices_from_frame(frame_from_records(recs))
    assert not notes
    m = mats["b"]
    by_pid = {pid: [r for r in recs if r.problem_id == pid] for pid in m.problem_ids}
    for k in range(1, 7):
        subs, exact = k_subsets(6, k, 1000, np.random.default_rng(0))
        assert exact and len(subs) == len(list(itertools.combinations(range(6), k)))
        got = majority_rate(m.answers, m.correct, subs)
        for i, pid in enumerate(m.problem_ids):
            rs = by_pid[pid]
            votes = [majority_correct([pid] * len(s), [rs[j].extracted for j in s],
                                      [rs[j].correct for j in s]).get(pid, False)
                     for s in subs]
            brute = np.mean(votes)
            assert got[i] == pytest.approx(brute), (pid, k)


def test_maj_at_n_equals_summary_and_sampled_maj_is_close():
    recs = _random_records(random.Random(2), problems=200, n=8)
    mats, _ = matrices_from_frame(frame_from_records(recs))
    res = curves({"b": [mats["b"]]}, ["r"], resamples=200, max_subsets=20)
    maj = {d["k"]: d["estimate"] for d in res["benchmarks"]["b"]["runs"]["r"]["maj@k"]}
    assert maj[8] == pytest.approx(summarize(recs)["b"]["maj@8"])
    assert res["maj_method"]["b"]["4"] == "20 random subsets"
    assert res["maj_method"]["b"]["8"] == "exact"
    exact = majority_rate(mats["b"].answers, mats["b"].correct,
                          k_subsets(8, 4, 10_000, np.random.default_rng(0))[0]).mean()
    assert maj[4] == pytest.approx(exact, abs=0.03)  # 200 problems x 20 subsets


def test_crossing_found_where_the_base_wins_at_large_k():
    """RL solves half the problems every time and the rest never; the base solves every problem
    2 times in 8. RL leads at k = 1, 2; the base leads from k = 4 on."""
    recs_rl, recs_base = [], []
    for p in range(60):
        for j in range(8):
            recs_rl.append(_rec(f"p{p}", j, "g" if p < 30 else f"w{j}", p < 30))
            recs_base.append(_rec(f"p{p}", j, "g" if j < 2 else f"w{j}", j < 2))
    per_run = [matrices_from_frame(frame_from_records(r))[0] for r in (recs_base, recs_rl)]
    aligned, notes = align_matrices(per_run)
    assert not notes
    res = curves(aligned, ["base", "rl"], resamples=2000, seed=3)
    pair = res["benchmarks"]["b"]["pairs"][0]
    diff = {d["k"]: d["estimate"] for d in pair["pass@k"]["diff"]}
    assert diff[1] == pytest.approx(0.5 - 0.25)
    assert diff[2] == pytest.approx(0.5 - 13 / 28)
    assert diff[4] == pytest.approx(0.5 - 11 / 14)
    cr = pair["pass@k"]["crossing"]
    assert cr == {"k": 4, "first_sign_flip_k": 4, "small_k": 1, "small_k_leader": "b"}
    assert res["benchmarks"]["b"]["runs"]["base"]["pass@k"][-1]["estimate"] == 1.0


def test_crossing_rules():
    ks = [1, 2, 4, 8]
    # flips at 4 but its CI straddles 0; significant at 8
    assert crossing(ks, [0.1, 0.05, -0.02, -0.1], [0.05, 0, -0.05, -0.2],
                    [0.2, 0.1, 0.01, -0.01])["k"] == 8
    none = crossing(ks, [0.1, 0.05, -0.02, -0.1], [0.05, 0, -0.05, -0.2], [0.2, 0.1, 0.01, 0.02])
    assert none["k"] is None and none["first_sign_flip_k"] == 4
    # the leader at small k is the first non-zero difference
    cr = crossing(ks, [0.0, -0.1, 0.0, 0.2], [0, -0.2, 0, 0.1], [0, -0.05, 0, 0.3])
    assert cr["small_k"] == 2 and cr["small_k_leader"] == "a" and cr["k"] == 8
    assert crossing(ks, [0, 0, 0, 0], [0] * 4, [0] * 4)["small_k"] is None
    # rounding noise is no lead
    assert crossing(ks, [1e-15, 0.1, 0.1, 0.1], [0] * 4, [0.2] * 4)["small_k"] == 2


def test_matrices_drop_incomplete_problems_and_keep_sample_order():
    recs = [_rec("p1", j, "g", True) for j in (2, 0, 1)] + [_rec("p2", 0, "x", False)]
    mats, notes = matrices_from_frame(frame_from_records(recs), n=3)
    assert mats["b"].problem_ids == ["p1"]
    assert mats["b"].tokens.tolist() == [[10, 11, 12]]
    assert notes == ["b: 1 of 2 problem(s) without exactly n=3 samples left out"]


def test_wrong_answer_equal_to_a_correct_one_pools_with_it():
    """A sample graded incorrect (e.g. a timeout) whose answer string a correct sample of the
    same problem also gave votes with the correct cluster, as maj@n pools them."""
    df = frame_from_records([_rec("p", 0, "x", False), _rec("p", 1, "7", False),
                             _rec("p", 2, "7", True)])
    m = matrices_from_frame(df)[0]["b"]
    assert m.answers.tolist() == [[0, 1, 1]]
    assert isinstance(df, pd.DataFrame)
