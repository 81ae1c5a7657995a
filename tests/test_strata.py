"""Strata by subject / level / difficulty add up to the unstratified coverage partition."""

from __future__ import annotations

import random

import numpy as np
import pytest

from amir_bench.errors import UserError
from analysis.coverage import coverage
from analysis.strata import (DIFFICULTY_BINS, difficulty_bin, problem_metadata, reference_rates,
                             strata)
from runfactory import make_run


def _runs(tmp_path, n=4):
    """Three runs on two benchmarks, 30 + 20 problems, random correct counts."""
    rng = random.Random(0)
    out = []
    for r in range(3):
        recs = []
        for b, size in (("math500", 30), ("amc23", 20)):
            for p in range(size):
                c = min(n, max(0, rng.randint(-1, n) + (r if p % 3 == 0 else 0)))
                for j in range(n):
                    recs.append({"benchmark": b, "problem_id": f"{b}-{p}", "sample_idx": j,
                                 "correct": j < c})
        out.append(make_run(tmp_path / f"r{r}", records=recs, n=n))
    return out


def _metadata(cov):
    return {(b, pid): {"subject": ["Algebra", "Geometry", None][i % 3], "level": 1 + i % 5}
            for b, blk in cov["benchmarks"].items() for i, pid in enumerate(blk["problem_ids"])}


SUMMED = ("n_gains", "n_losses", "both", "neither")


def _check_sums(cov, st, scope_blocks, full):
    parts = list(scope_blocks.values())
    assert sum(p["problems"] for p in parts) == full["problems"]
    assert sum(p["union_solved"] for p in parts) == full["union_solved"]
    for i, cell in enumerate(full["partition"]):
        assert sum(p["partition"][i]["count"] for p in parts) == cell["count"]
    for lab in cov["labels"]:
        assert sum(p["metrics"][lab]["solved"] for p in parts) == full["metrics"][lab]["solved"]
        weighted = sum(p["metrics"][lab]["avg@n"] * p["problems"] for p in parts)
        assert weighted / full["problems"] == pytest.approx(full["metrics"][lab]["avg@n"])
    for j, pair in enumerate(full["pairs"]):
        for key in SUMMED:
            assert sum(p["pairs"][j][key] for p in parts) == pair[key]
        assert sorted(g for p in parts for g in p["pairs"][j]["gains"]) == sorted(pair["gains"])


@pytest.mark.parametrize("by", ["subject", "level", "difficulty"])
def test_strata_sum_to_the_unstratified_counts(tmp_path, by):
    cov = coverage(_runs(tmp_path), resamples=200)
    st = strata(cov, by, metadata=_metadata(cov), ref_rates=reference_rates(cov),
                reference=cov["labels"][0], resamples=200)
    for b, full in cov["benchmarks"].items():
        _check_sums(cov, st, st["benchmarks"][b], full)
    _check_sums(cov, st, st["overall"], cov["overall"])
    if by == "subject":
        assert st["strata"] == ["Algebra", "Geometry", "(none)"]
    if by == "level":
        assert st["strata"] == ["1", "2", "3", "4", "5"]
    if by == "difficulty":
        assert set(st["strata"]) <= set(DIFFICULTY_BINS)
        assert st["notes"] and "regress to the mean" in st["notes"][0]


def test_difficulty_bins_edges():
    got = difficulty_bin([0.0, 0.01, 0.25, 0.2501, 0.5, 0.75, 0.76, 0.999, 1.0])
    assert [DIFFICULTY_BINS[i] for i in got] == ["0", "(0, .25]", "(0, .25]", "(.25, .5]",
                                                 "(.25, .5]", "(.5, .75]", "(.75, 1)",
                                                 "(.75, 1)", "1"]


def test_difficulty_bins_follow_the_reference_rates(tmp_path):
    """Hand-built: the reference solves p0 0/4, p1 1/4, p2 3/4, p3 4/4."""
    base = make_run(tmp_path / "base", {"p0": 0, "p1": 1, "p2": 3, "p3": 4})
    rl = make_run(tmp_path / "rl", {"p0": 2, "p1": 0, "p2": 4, "p3": 4})
    cov = coverage([base, rl], resamples=100)
    st = strata(cov, "difficulty", ref_rates=reference_rates(cov), reference="base",
                resamples=100)
    blocks = st["benchmarks"]["amc23"]
    assert st["strata"] == ["0", "(0, .25]", "(.5, .75]", "1"]
    assert blocks["0"]["pairs"][0]["gains"] == ["p0"]
    assert blocks["(0, .25]"]["pairs"][0]["losses"] == ["p1"]
    assert blocks["1"]["pairs"][0]["n_gains"] == 0
    diff = blocks["(.5, .75]"]["pairs"][0]["diff"]["avg@n"]["estimate"]
    assert diff == pytest.approx(0.25)
    # an independent reference: another run's per-sample frame
    import pandas as pd

    frame = pd.DataFrame({"benchmark": "amc23", "problem_id": ["p0", "p1", "p2", "p3"],
                          "correct": [True, True, False, False]})
    rates = reference_rates(cov, frame=frame)
    assert rates == {"amc23": {"p0": 1.0, "p1": 1.0, "p2": 0.0, "p3": 0.0}}


def test_missing_inputs_are_user_errors(tmp_path):
    base = make_run(tmp_path / "base", {"p0": 0, "p1": 1})
    rl = make_run(tmp_path / "rl", {"p0": 2, "p1": 0})
    cov = coverage([base, rl], resamples=50)
    with pytest.raises(UserError, match="--by 'topic'"):
        strata(cov, "topic")
    with pytest.raises(UserError, match="reference run"):
        strata(cov, "difficulty")
    with pytest.raises(UserError, match="metadata"):
        strata(cov, "level")
    with pytest.raises(UserError, match="not one of the runs"):
        reference_rates(cov, "other")


def test_metadata_comes_from_the_benchmark_rows(data_dir):
    from benchmarks.loaders import benchmark_source, load_problems, rows_sha256
    from benchmarks.specs import get_spec

    probs = load_problems("math500", data_dir=data_dir)[:5]
    manifest = {"benchmarks": {"math500": {
        "source": benchmark_source(get_spec("math500"), data_dir),
        "sha256": rows_sha256(probs), "count": 5, "problem_ids": [p.id for p in probs]}}}
    meta = problem_metadata([manifest])
    assert len(meta) == 5
    first = meta[("math500", probs[0].id)]
    assert first == {"subject": probs[0].subject, "level": probs[0].level}
    assert isinstance(first["level"], int) and first["subject"]
    assert np.all([("math500", p.id) in meta for p in probs])


def test_arith_levels_come_from_the_builtin_generator():
    """The demo's benchmark: levels 1-3 of the built-in arith rows, looked up via its
    `builtin:arith` source."""
    from benchmarks.loaders import load_problems, rows_sha256

    probs = load_problems("arith", limit=9)
    manifest = {"benchmarks": {"arith": {"source": "builtin:arith", "sha256": rows_sha256(probs),
                                         "count": 9, "problem_ids": [p.id for p in probs]}}}
    meta = problem_metadata([manifest])
    assert [meta[("arith", p.id)]["level"] for p in probs] == [1, 2, 3] * 3
