"""Coverage: the paper's Table 2 partition, gains/losses, McNemar, bootstrap CIs, criteria,
comparability checks and --force."""

from __future__ import annotations

import json

import numpy as np
import pytest
from runfactory import make_run, table2_runs

from amir_bench.errors import UserError
from amir_bench.metrics import pass_at_k, summarize
from amir_bench.records import load_run
from analysis.coverage import coverage, parse_criterion

TABLE2_PCT = {"111": 70.6, "110": 2.9, "101": 11.8, "100": 2.9, "011": 2.9, "010": 0.0,
              "001": 8.8}


def test_table2_partition_reproduces_paper(tmp_path):
    runs = table2_runs(tmp_path)
    res = coverage(runs, resamples=200)
    blk = res["benchmarks"]["amc23"]
    assert res["labels"] == ["base", "grpo", "amir"]
    assert blk["problems"] == 40 and blk["union_solved"] == 34 and blk["unsolved"] == 6
    cells = {c["cell"]: c for c in blk["partition"]}
    assert [c["cell"] for c in blk["partition"]] == ["111", "110", "101", "100", "011", "010",
                                                      "001", "000"]
    assert {k: round(cells[k]["pct_union"], 1) for k in TABLE2_PCT} == TABLE2_PCT
    assert [cells[k]["count"] for k in TABLE2_PCT] == [24, 1, 4, 1, 1, 0, 3]
    assert cells["000"]["count"] == 6 and cells["000"]["pct_union"] is None
    assert cells["111"]["pct_all"] == pytest.approx(60.0)
    assert cells["101"]["solved_by"] == ["base", "amir"]
    # one benchmark: overall is the same partition
    assert [c["count"] for c in res["overall"]["partition"]] == [c["count"]
                                                                 for c in blk["partition"]]
    json.dumps(res, allow_nan=False)  # strict JSON


def test_table2_gains_losses_and_mcnemar(tmp_path):
    res = coverage(table2_runs(tmp_path), resamples=200)
    pairs = {(p["a"], p["b"]): p for p in res["benchmarks"]["amc23"]["pairs"]}
    assert list(pairs) == [("base", "grpo"), ("base", "amir"), ("grpo", "amir")]
    ba = pairs[("base", "amir")]
    # amir solves cells 011 (1) + 001 (3) that base does not; base solves 110 + 100 only
    assert ba["n_gains"] == 4 and ba["n_losses"] == 2
    assert ba["gains"] == ["amc23-30", "amc23-31", "amc23-32", "amc23-33"]
    assert ba["losses"] == ["amc23-24", "amc23-29"]
    assert ba["both"] == 28 and ba["neither"] == 6
    assert ba["mcnemar"] == {"b": 2, "c": 4, "discordant": 6,
                             "p_value": pytest.approx(2 * (1 + 6 + 15) / 64)}
    ga = pairs[("grpo", "amir")]  # amir-only 101 (4) + 001 (3); grpo-only 110 (1) + 010 (0)
    assert (ga["n_gains"], ga["n_losses"]) == (7, 1)
    assert ga["mcnemar"]["p_value"] == pytest.approx(2 * (1 + 8) / 256)


def test_base_option_puts_run_first(tmp_path):
    base, grpo, amir = table2_runs(tmp_path)
    res = coverage([base, grpo, amir], base=amir, resamples=100)
    assert res["labels"] == ["amir", "base", "grpo"] and res["base"] == "amir"
    cells = {c["cell"]: c["count"] for c in res["benchmarks"]["amc23"]["partition"]}
    # Table 2 cells re-keyed in (amir, base, grpo) order
    assert cells == {"111": 24, "011": 1, "110": 4, "010": 1, "101": 1, "001": 0, "100": 3,
                     "000": 6}
    # a label works as well as a path; a run not among RUNS is added first
    assert coverage([base, grpo, amir], base="grpo", resamples=50)["labels"][0] == "grpo"
    assert coverage([base, grpo], base=amir, resamples=50)["labels"] == ["amir", "base", "grpo"]
    with pytest.raises(UserError, match="--base"):
        coverage([base, grpo], base=tmp_path / "nope", resamples=50)


def test_bootstrap_diffs_match_metrics(tmp_path):
    a = make_run(tmp_path / "a", {"p1": 0, "p2": 1, "p3": 2, "p4": 4, "p5": 3}, n=4)
    b = make_run(tmp_path / "b", {"p1": 1, "p2": 3, "p3": 2, "p4": 4, "p5": 4}, n=4)
    res = coverage([a, b], seed=0, resamples=2000)
    blk = res["benchmarks"]["amc23"]
    assert res["ks"] == [1, 2, 4]
    ma, mb = blk["metrics"]["a"], blk["metrics"]["b"]
    assert ma["avg@n"] == pytest.approx(10 / 20) and mb["avg@n"] == pytest.approx(14 / 20)
    ca, cb = [0, 1, 2, 4, 3], [1, 3, 2, 4, 4]
    for k in (1, 2, 4):
        assert ma[f"pass@{k}"] == pytest.approx(np.mean([pass_at_k(4, c, k) for c in ca]))
    d = blk["pairs"][0]["diff"]
    assert d["avg@n"]["estimate"] == pytest.approx(0.2)
    assert d["pass@4"]["estimate"] == pytest.approx(1 / 5)  # p1 newly solved
    assert d["avg@n"]["ci_low"] <= 0.2 <= d["avg@n"]["ci_high"]
    assert d["avg@n"]["ci_low"] >= 0.0  # b is never worse on any problem
    assert set(d) == {"avg@n", "pass@1", "pass@2", "pass@4", "solved_rate"}
    # seeded: same seed same CI, another seed another CI
    again = coverage([a, b], seed=0, resamples=2000)["benchmarks"]["amc23"]["pairs"][0]["diff"]
    assert again == d
    other = coverage([a, b], seed=1, resamples=2000)["benchmarks"]["amc23"]["pairs"][0]["diff"]
    assert other["avg@n"]["ci_low"] != d["avg@n"]["ci_low"] or \
        other["avg@n"]["ci_high"] != d["avg@n"]["ci_high"]


def test_criteria(tmp_path):
    a = make_run(tmp_path / "a", {"p1": 1, "p2": 2, "p3": 3, "p4": 0}, n=4)
    b = make_run(tmp_path / "b", {"p1": 4, "p2": 0, "p3": 1, "p4": 2}, n=4)
    solved = lambda crit: coverage([a, b], criterion=crit, resamples=20)[
        "benchmarks"]["amc23"]["solved"]
    assert solved("any") == {"a": [True, True, True, False], "b": [True, False, True, True]}
    assert solved("avg>=0.5") == {"a": [False, True, True, False],
                                  "b": [True, False, False, True]}
    assert solved("avg>=0.75")["a"] == [False, False, True, False]
    # majority vote is a plurality over answers: the factory's wrong answers all differ, so
    # one correct sample (seen first) wins a 1-1-1-1 tie
    assert solved("majority") == {"a": [True, True, True, False],
                                  "b": [True, False, True, True]}
    wrong7 = {"correct": False, "extracted": "7"}
    c = make_run(tmp_path / "c", {"p1": [True, wrong7, wrong7, False], "p2": 2, "p3": 0,
                                  "p4": [wrong7, True, True, wrong7]}, n=4)
    got = coverage([a, c], criterion="majority", resamples=20)["benchmarks"]["amc23"]["solved"]
    assert got["c"] == [False, True, False, False]  # p4: 2-2 tie, wrong "7" seen first wins
    assert parse_criterion(" AVG >= .5 ") == ("avg", 0.5)
    for bad in ("most", "avg>=0", "avg>=1.5", "avg>x"):
        with pytest.raises(UserError, match="criterion"):
            parse_criterion(bad)


def test_majority_agrees_with_summary_maj_at_n(tmp_path):
    """Coverage's majority criterion is the summary's maj@n, problem by problem."""
    same_wrong = [{"correct": False, "extracted": "7"}] * 3 + [{"correct": True}] * 2
    tie_first_wrong = [{"correct": False, "extracted": "9"}, {"correct": False, "extracted": "9"},
                       {"correct": True}, {"correct": True}, {"correct": False, "extracted": "1"}]
    tie_first_right = [{"correct": True}, {"correct": True}, {"correct": False, "extracted": "9"},
                       {"correct": False, "extracted": "9"}, {"correct": False, "extracted": "1"}]
    no_answer = [{"correct": False, "extracted": None}] * 4 + [{"correct": True}]
    spec = {"q1": same_wrong, "q2": tie_first_wrong, "q3": tie_first_right, "q4": no_answer}
    a = make_run(tmp_path / "a", spec, n=5)
    b = make_run(tmp_path / "b", {"q1": 5, "q2": 0, "q3": 5, "q4": 5}, n=5)
    res = coverage([a, b], criterion="majority", resamples=20)["benchmarks"]["amc23"]
    assert res["solved"]["a"] == [False, False, True, True]
    maj = summarize(load_run(a).samples, 5)["amc23"]["maj@5"]
    assert np.mean(res["solved"]["a"]) == pytest.approx(maj)


def test_multiple_benchmarks_and_overall(tmp_path):
    recs_a = [{"benchmark": "aime24", "problem_id": f"x{i}", "sample_idx": j,
               "correct": (i + j) % 3 == 0} for i in range(6) for j in range(2)]
    recs_b = [{"benchmark": "aime24", "problem_id": f"x{i}", "sample_idx": j,
               "correct": i < 4} for i in range(6) for j in range(2)]
    a = make_run(tmp_path / "a", {"p1": 0, "p2": 2}, n=2, records=recs_a)
    b = make_run(tmp_path / "b", {"p1": 1, "p2": 2}, n=2, records=recs_b)
    res = coverage([a, b], resamples=500)
    assert sorted(res["benchmarks"]) == ["aime24", "amc23"]
    ov = res["overall"]
    assert ov["problems"] == 8
    assert sum(c["count"] for c in ov["partition"]) == 8
    for cell in ov["partition"]:
        assert cell["count"] == sum(
            {c["cell"]: c["count"] for c in blk["partition"]}[cell["cell"]]
            for blk in res["benchmarks"].values())
    gains = ov["pairs"][0]["gains"]
    assert "amc23/p1" in gains and all("/" in g for g in gains)
    # pooled estimate = problem-weighted mean of the benchmarks' estimates
    est = [blk["pairs"][0]["diff"]["avg@n"]["estimate"] * blk["problems"]
           for blk in res["benchmarks"].values()]
    assert ov["pairs"][0]["diff"]["avg@n"]["estimate"] == pytest.approx(sum(est) / 8)


def test_incomparable_runs_are_one_line_errors(tmp_path):
    a = make_run(tmp_path / "a", {"p1": 1, "p2": 0}, n=4)
    other_rows = make_run(tmp_path / "b", {"p1": 1, "p2": 0}, n=4, sha="different")
    with pytest.raises(UserError, match="different amc23 rows.*sha256") as e:
        coverage([a, other_rows], resamples=10)
    assert "\n" not in str(e.value)
    other_n = make_run(tmp_path / "c", {"p1": 1, "p2": 0}, n=2)
    with pytest.raises(UserError, match=r"differ in samples per problem \(a n=4, c n=2\)"):
        coverage([a, other_n], resamples=10)
    other_bench = make_run(tmp_path / "d", {"p1": 1, "p2": 0}, n=4, benchmark="aime24")
    with pytest.raises(UserError, match="benchmark aime24 is in d but not in a"):
        coverage([a, other_bench], resamples=10)
    with pytest.raises(UserError, match="at least 2 run directories"):
        coverage([a], resamples=10)
    with pytest.raises(UserError, match="given twice"):
        coverage([a, tmp_path / "a" / "."], resamples=10)


def test_force_intersects_problem_sets(tmp_path):
    a = make_run(tmp_path / "a", {"p1": 1, "p2": 0, "p3": 2, "p4": 1}, n=4)
    b = make_run(tmp_path / "b", {"p1": 1, "p2": 4, "p3": 2}, n=4, sha="subset")
    with pytest.raises(UserError, match="different amc23 rows"):
        coverage([a, b], resamples=10)
    res = coverage([a, b], force=True, resamples=100)
    blk = res["benchmarks"]["amc23"]
    assert res["forced"] is True
    assert blk["problem_ids"] == ["p1", "p2", "p3"]
    assert blk["kept"] == {"kept": 3, "total": 4}
    assert any("kept 3 of 4 problems" in n for n in res["notes"])
    assert blk["pairs"][0]["gains"] == ["p2"]


def test_incomplete_run_needs_force(tmp_path):
    a = make_run(tmp_path / "a", {"p1": 1, "p2": 0, "p3": 1}, n=4)
    # b: p3 has only 2 of 4 samples, p2 is listed in the manifest but has no samples
    b = make_run(tmp_path / "b", {"p1": 2, "p3": [True, False]}, n=4,
                 manifest_ids={"amc23": ["p1", "p2", "p3"]})
    with pytest.raises(UserError, match=r"b: amc23 is incomplete \(1 problem\(s\) without "
                                        r"exactly n=4 samples; 1 problem\(s\) of the manifest"):
        coverage([a, b], resamples=10)
    res = coverage([a, b], force=True, resamples=10)
    assert res["benchmarks"]["amc23"]["problem_ids"] == ["p1"]


def test_different_n_with_force_limits_k(tmp_path):
    a = make_run(tmp_path / "a", {"p1": 1, "p2": 3}, n=4)
    b = make_run(tmp_path / "b", {"p1": 1, "p2": 0}, n=2)
    res = coverage([a, b], force=True, resamples=10)
    assert res["n"] == [4, 2] and res["ks"] == [1, 2]
    m = res["benchmarks"]["amc23"]["metrics"]
    assert m["a"]["avg@n"] == pytest.approx((0.25 + 0.75) / 2)
    assert m["b"]["avg@n"] == pytest.approx(0.25)
    assert any("differ in n" in n for n in res["notes"])


def test_duplicate_samples_are_ignored_with_a_note(tmp_path):
    a = make_run(tmp_path / "a", {"p1": 1, "p2": 0}, n=2,
                 records=[{"problem_id": "p1", "sample_idx": 0, "correct": False}])
    b = make_run(tmp_path / "b", {"p1": 0, "p2": 0}, n=2)
    res = coverage([a, b], resamples=10)
    assert res["benchmarks"]["amc23"]["correct"]["a"] == [1, 0]  # first record kept
    assert any("1 duplicate" in n for n in res["notes"])
