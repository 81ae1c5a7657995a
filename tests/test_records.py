"""The one run reader (amir_bench.records): loading, n per benchmark, labels, the frame,
duplicates, bad input as file:line errors, and the permissions of what the run store writes."""

from __future__ import annotations

import json
import os
import stat

import pytest
from runfactory import make_run

from amir_bench.errors import UserError
from amir_bench.records import (SAMPLE_COLUMNS, load_run, load_runs, read_samples, read_scores,
                                run_labels)


def test_load_run_frame_and_n(tmp_path):
    run = load_run(make_run(tmp_path / "r", {"p1": 1, "p2": 3}, n=4))
    df = run.to_frame()
    assert list(df.columns) == list(SAMPLE_COLUMNS) and len(df) == 8
    assert df["correct"].dtype == bool and df["sample_idx"].dtype == "int64"
    assert int(df["correct"].sum()) == 4
    assert run.to_frame() is df  # built once
    assert run.n == 4 and run.ns == {"amc23": 4} and run.label == "r"


def test_n_per_benchmark_manifest_then_decoding_then_samples(tmp_path):
    recs = [{"benchmark": "aime24", "problem_id": "q", "sample_idx": j} for j in range(2)]
    d = make_run(tmp_path / "r", {"p1": 1}, n=4, records=recs,
                 manifest={"benchmarks": {"aime24": {"n": 2, "sha256": "x"}}})
    run = load_run(d)
    assert run.ns == {"aime24": 2, "amc23": 4}  # per-benchmark entry wins over decoding.n
    assert run.describe()["n_per_benchmark"] == {"aime24": 2, "amc23": 4}
    m = json.loads((d / "manifest.json").read_text())
    del m["decoding"]["n"]
    (d / "manifest.json").write_text(json.dumps(m))
    assert load_run(d).n_for("amc23") == 4  # largest sample_idx + 1
    m["decoding"]["n"] = "many"
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match="manifest decoding.n is not an integer"):
        load_run(d).n_for("amc23")


def test_duplicates_are_dropped_and_counted(tmp_path):
    d = make_run(tmp_path / "r", {"p1": 1}, n=2)
    lines = (d / "samples.jsonl").read_text().splitlines(keepends=True)
    (d / "samples.jsonl").write_text("".join(lines + lines[:1]))
    run = load_run(d)
    assert len(run.samples) == 2 and run.duplicates_dropped == 1
    assert len(read_samples(d / "samples.jsonl")) == 3  # the raw reader keeps everything


def test_labels_names_and_errors(tmp_path):
    a = make_run(tmp_path / "x" / "final", {"p1": 1})
    b = make_run(tmp_path / "y" / "final", {"p1": 0})
    assert run_labels([a, b]) == ["x/final", "y/final"]
    assert load_runs([a, b]).labels == ["x/final", "y/final"]
    assert load_runs([a, b], ["A", "B"]).labels == ["A", "B"]
    with pytest.raises(UserError, match="names must be unique"):
        load_runs([a, b], ["A", "A"])
    with pytest.raises(UserError, match="given twice"):
        load_runs([a, tmp_path / "x" / "final" / "."])
    with pytest.raises(UserError, match="no run directories"):
        load_runs([])


@pytest.mark.parametrize("edit,match", [
    (lambda t: t[:-30], r"samples.jsonl:2: not valid JSON: samples.jsonl:2: last line is cut off"),
    (lambda t: t.replace('"correct": true', '"correct": "yes"', 1),
     r"samples.jsonl:\d: not a SampleRecord \(correct must be true or false"),
    (lambda t: t.replace('"sample_idx": 1', '"sample_idx": 1.5', 1),
     r"samples.jsonl:2: not a SampleRecord \(sample_idx must be an integer"),
    (lambda t: "[1]\n" + t, r"samples.jsonl:1: expected a JSON object"),
])
def test_bad_samples_are_file_line_errors(tmp_path, edit, match):
    d = make_run(tmp_path / "r", {"p1": 2}, n=2)
    p = d / "samples.jsonl"
    p.write_text(edit(p.read_text()))
    with pytest.raises(UserError, match=match):
        load_run(d)


def test_whole_number_floats_are_integers_and_tail_can_be_tolerated(tmp_path):
    d = make_run(tmp_path / "r", {"p1": 2}, n=2)
    p = d / "samples.jsonl"
    p.write_text(p.read_text().replace('"sample_idx": 1', '"sample_idx": 1.0'))
    assert [r.sample_idx for r in load_run(d).samples] == [0, 1]
    p.write_text(p.read_text()[:-30])
    assert len(read_samples(p, tolerate_truncated_tail=True)) == 1


def test_scores_reader(tmp_path):
    d = make_run(tmp_path / "r", {"p1": 1}, n=2, scores=True)
    assert [s.sample_idx for s in read_scores(d)] == [0, 1]
    run = load_runs([d], scores=True).runs[0]
    assert list(run.scores["logprob_mean"]) == pytest.approx([-0.48, -0.5])
    (d / "scores.jsonl").write_text('{"benchmark": "amc23", "problem_id": "p1"}\n')
    with pytest.raises(UserError, match=r"scores.jsonl:1: not a score record \(missing"):
        read_scores(d)


def test_manifest_and_summary_are_world_readable(tmp_path):
    from amir_bench.jsonio import atomic_write_json
    from amir_bench.runstore import write_summary

    old = os.umask(0o022)
    try:
        d = make_run(tmp_path / "r", {"p1": 1}, n=2)
        atomic_write_json(d / "manifest.json", json.loads((d / "manifest.json").read_text()))
        write_summary(d)
    finally:
        os.umask(old)
    for name in ("manifest.json", "summary.json"):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o644
