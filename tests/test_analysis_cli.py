"""`amir-bench coverage | length | margin` through the real CLI: output files, tables, and
bad input (one-line error, exit 2, no file written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runfactory import make_run, table2_runs

from amir_bench.cli import main


@pytest.fixture
def two_runs(tmp_path, monkeypatch):
    """grpo/ and amir/ in the current directory, scored."""
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "grpo", {"p1": 1, "p2": 0, "p3": 4, "p4": 2}, n=4, scores=True)
    make_run(tmp_path / "amir", {"p1": 2, "p2": 1, "p3": 4, "p4": 0}, n=4, scores=True)
    return tmp_path


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".json", ".tmp"))


def test_coverage_as_typed(two_runs, capsys):
    rc = main(["coverage", "grpo/", "amir/"])
    out = capsys.readouterr().out
    assert rc == 0
    res = json.loads((two_runs / "coverage.json").read_text())
    assert res["kind"] == "coverage" and res["labels"] == ["grpo", "amir"]
    assert res["benchmarks"]["amc23"]["pairs"][0]["gains"] == ["p2"]
    assert res["benchmarks"]["amc23"]["pairs"][0]["losses"] == ["p4"]
    assert "coverage partition" in out and "grpo → amir" in out and "wrote coverage.json" in out


def test_coverage_options(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base, grpo, amir = table2_runs(tmp_path)
    out = tmp_path / "reports" / "cov.json"
    rc = main(["coverage", str(base), str(grpo), str(amir), "--base", str(amir),
               "--criterion", "avg>=0.5", "--seed", "3", "--resamples", "300", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    assert res["labels"] == ["amir", "base", "grpo"]
    assert (res["criterion"], res["seed"], res["resamples"]) == ("avg>=0.5", 3, 300)
    assert not (tmp_path / "coverage.json").exists()


def test_length_and_margin_write_their_files(two_runs, capsys):
    assert main(["length", "grpo", "amir", "--resamples", "200"]) == 0
    assert main(["margin", "grpo", "amir", "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "length bias" in out and "log-prob margin" in out
    ln = json.loads((two_runs / "length.json").read_text())
    mg = json.loads((two_runs / "margin.json").read_text())
    assert ln["kind"] == "length" and set(ln["per_run"]) == {"grpo", "amir"}
    # amir: p1 has 2 correct x 2 incorrect pairs, p2 1 x 3; p3 and p4 are not mixed
    assert mg["kind"] == "margin"
    assert mg["per_run"]["amir"]["benchmarks"]["amc23"]["pairs"]["count"] == 2 * 2 + 1 * 3
    assert main(["length", "grpo", "--out", "one.json"]) == 0  # one run is enough here
    assert json.loads((two_runs / "one.json").read_text())["pairs"] == []


# ---------------------------------------------------------------- bad input


def test_not_a_run_directory(two_runs, capsys):
    (two_runs / "empty").mkdir()
    assert main(["coverage", "grpo", "empty"]) == 2
    _one_line_error(capsys, "empty", "not a run directory")
    assert main(["length", "nowhere"]) == 2
    _one_line_error(capsys, "nowhere", "not a directory")
    assert _leftovers(two_runs) == []


def test_truncated_samples_file(two_runs, capsys):
    spath = two_runs / "amir" / "samples.jsonl"
    text = spath.read_text()
    spath.write_text(text[: len(text) - 40])  # killed writer: last line cut mid-object
    for cmd in ("coverage", "length", "margin"):
        assert main([cmd, "grpo", "amir"]) == 2
        _one_line_error(capsys, "samples.jsonl:16: last line is cut off", "--resume")
    assert _leftovers(two_runs) == []


def test_malformed_middle_line(two_runs, capsys):
    spath = two_runs / "amir" / "samples.jsonl"
    lines = spath.read_text().splitlines()
    lines[4] = lines[4][:30]
    spath.write_text("\n".join(lines) + "\n")
    assert main(["coverage", "grpo", "amir"]) == 2
    _one_line_error(capsys, "samples.jsonl:5", "not valid JSON")


def test_missing_field_in_samples(two_runs, capsys):
    spath = two_runs / "amir" / "samples.jsonl"
    lines = spath.read_text().splitlines()
    rec = json.loads(lines[2])
    del rec["correct"]
    lines[2] = json.dumps(rec)
    spath.write_text("\n".join(lines) + "\n")
    assert main(["coverage", "grpo", "amir"]) == 2
    _one_line_error(capsys, "samples.jsonl:3", "correct")


def test_missing_samples_file(two_runs, capsys):
    (two_runs / "amir" / "samples.jsonl").unlink()
    assert main(["coverage", "grpo", "amir"]) == 2
    _one_line_error(capsys, "amir", "no samples.jsonl")


@pytest.mark.parametrize("kind", ["sha", "n"])
def test_incompatible_runs(tmp_path, monkeypatch, capsys, kind):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "grpo", {"p1": 1, "p2": 0}, n=4)
    if kind == "sha":
        make_run(tmp_path / "amir", {"p1": 1, "p2": 0}, n=4, sha="other")
        needles = ("different amc23 rows", "sha256", "--force")
    else:
        make_run(tmp_path / "amir", {"p1": 1, "p2": 0}, n=8)
        needles = ("grpo n=4", "amir n=8", "--force")
    (tmp_path / "coverage.json").write_text('{"old": true}\n')
    assert main(["coverage", "grpo", "amir"]) == 2
    _one_line_error(capsys, *needles)
    # nothing half-written: an earlier file is untouched, no temp file is left
    assert (tmp_path / "coverage.json").read_text() == '{"old": true}\n'
    assert _leftovers(tmp_path) == ["coverage.json"]


def test_force_compares_shared_problems(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "grpo", {"p1": 1, "p2": 0, "p3": 2}, n=4)
    make_run(tmp_path / "amir", {"p1": 1, "p2": 3}, n=4, sha="other")
    assert main(["coverage", "grpo", "amir", "--force"]) == 0
    out = capsys.readouterr().out
    assert "kept 2 of 3 problems" in out
    res = json.loads((tmp_path / "coverage.json").read_text())
    assert res["forced"] and res["benchmarks"]["amc23"]["kept"] == {"kept": 2, "total": 3}


def test_single_run_where_two_needed(two_runs, capsys):
    assert main(["coverage", "grpo"]) == 2
    _one_line_error(capsys, "at least 2 run directories", "got 1")
    assert not (two_runs / "coverage.json").exists()


def test_margin_without_scores(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "grpo", {"p1": 1, "p2": 0}, n=4, scores=True)
    make_run(tmp_path / "amir", {"p1": 1, "p2": 0}, n=4)
    assert main(["margin", "grpo", "amir"]) == 2
    _one_line_error(capsys, "amir", "run `amir-bench score amir` first")
    assert _leftovers(tmp_path) == []


def test_bad_options(two_runs, capsys):
    assert main(["coverage", "grpo", "amir", "--criterion", "most"]) == 2
    _one_line_error(capsys, "--criterion")
    assert main(["coverage", "grpo", "amir", "--base", "elsewhere"]) == 2
    _one_line_error(capsys, "--base elsewhere")
    assert main(["length", "grpo", "--resamples", "0"]) == 2
    _one_line_error(capsys, "--resamples")
    assert _leftovers(two_runs) == []


def test_empty_or_binary_samples_and_bad_out(two_runs, capsys):
    (two_runs / "amir" / "samples.jsonl").write_text("")
    assert main(["coverage", "grpo", "amir"]) == 2
    _one_line_error(capsys, "amir", "holds no samples")
    (two_runs / "amir" / "samples.jsonl").write_bytes(b"\xff\xfe{}\n")
    assert main(["length", "amir"]) == 2
    _one_line_error(capsys, "samples.jsonl", "not UTF-8")
    (two_runs / "outdir").mkdir()
    assert main(["length", "grpo", "--out", "outdir"]) == 2
    _one_line_error(capsys, "--out outdir is a directory")
    assert _leftovers(two_runs) == []
    assert list((two_runs / "outdir").iterdir()) == []


def test_shard_runs_get_a_merge_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "full", {"p1": 1, "p2": 0, "p3": 1, "p4": 2}, n=4)
    make_run(tmp_path / "half", {"p1": 1, "p2": 0}, n=4, manifest={"shard": "0/2"})
    assert main(["coverage", "full", "half"]) == 2
    _one_line_error(capsys, "runs cover different amc23 problems (full 4, half 2; 2 shared)",
                    "amir-bench merge")


def test_synthetic_runs_go_through_all_commands(tmp_path, monkeypatch, capsys):
    from analysis.synthetic import make_synthetic_runs

    monkeypatch.chdir(tmp_path)
    paths = make_synthetic_runs(tmp_path / "syn", n_runs=3, n_records=3000, seed=0)
    assert [p.name for p in paths] == ["run0", "run1", "run2"]
    total = sum(len((p / "samples.jsonl").read_text().splitlines()) for p in paths)
    assert total == 3000 // 48 * 48
    args = [str(p) for p in paths]
    for cmd in ("coverage", "length", "margin"):
        assert main([cmd, *args, "--resamples", "500"]) == 0, capsys.readouterr().err
    mg = json.loads((tmp_path / "margin.json").read_text())["per_run"]
    assert mg["run2"]["overall"]["mean_margin"] > mg["run0"]["overall"]["mean_margin"] > 0
    cov = json.loads((tmp_path / "coverage.json").read_text())
    assert cov["overall"]["problems"] == 3000 // 48
