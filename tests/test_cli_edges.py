"""The command line at its edges: usage errors, --version, one writer per run, unwritable dirs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from amir_bench.cli import main
from amir_bench.errors import UserError
from amir_bench.runlock import LOCK_NAME, RunLock, ensure_writable

AMIR = [sys.executable, "-m", "amir_bench.cli"]


@pytest.mark.parametrize("argv, needle", [
    (["run"], "--ckpt"),
    (["run", "--ckpt", "x", "--n", "abc"], "--n"),
    (["run", "--ckpt", "x", "--bogus"], "--bogus"),
    (["no-such-command"], "no-such-command"),
    (["summary"], "'run'"),
])
def test_usage_errors_are_one_line_and_exit_2(argv, needle, capsys):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[0].startswith("Usage: amir-bench"), err
    assert lines[-1].startswith("error: ") and needle in lines[-1], err
    assert len(lines) <= 3, err


def test_bare_command_shows_help_and_exits_2(capsys):
    rc = main([])
    captured = capsys.readouterr()
    assert rc == 2
    assert "Traceback" not in captured.err
    assert "run" in captured.out + captured.err


def test_version_and_help(capsys):
    from amir_bench import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"amir-bench {__version__}"
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--ckpt" in out and "--temperature" in out


def test_console_script_usage_error_in_a_real_process():
    p = subprocess.run(AMIR + ["run", "--n", "abc"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("error: ")


def test_lock_refuses_a_second_writer_in_another_process(tmp_path):
    holder = textwrap.dedent(f"""
        import sys, time
        from amir_bench.runlock import RunLock
        with RunLock({str(tmp_path)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=rf"in use by pid {proc.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        proc.kill()
        proc.wait()
    # the holder died without releasing: its lock file is stale and is taken over with a note
    notes: list[str] = []
    with RunLock(tmp_path, note=notes.append):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert notes and f"pid {proc.pid}" in notes[0]
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_is_reentrant_after_release(tmp_path):
    with RunLock(tmp_path):
        pass
    with RunLock(tmp_path):
        pass


def test_unwritable_output_folder_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=r"^cannot write .*file/run \(Not a directory\)$"):
        ensure_writable(blocker / "run")
    if os.geteuid() != 0:  # root writes anywhere; the path-under-a-file case covers it
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(UserError, match="Permission denied"):
            ensure_writable(ro / "run")


def test_ls_lists_runs_and_json(tmp_path, capsys):
    import json

    from runfactory import make_run

    make_run(tmp_path / "a", {"p1": [True, False], "p2": [True, True]})
    make_run(tmp_path / "b", {"p1": [False, False], "p2": [False, True]})
    (tmp_path / "not-a-run").mkdir()
    assert main(["ls", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [Path(r["run"]).name for r in rows] == ["a", "b"]
    assert rows[0]["records"] == 4 and rows[1]["records"] == 4
    assert rows[0]["accuracy"] == pytest.approx(0.75)
    assert rows[1]["accuracy"] == pytest.approx(0.25)
    assert main(["ls", str(tmp_path / "missing")]) == 2


# --------------------------------------------------------------------- the run command's edges

RUN_ARGS = ["--benchmarks", "arith", "--n", "4", "--limit", "60", "--max-new-tokens", "48",
            "--temperature", "1.0", "--batch-size", "4"]


def _start_run(ckpt: Path, out: Path, *extra: str) -> subprocess.Popen:
    """A `run` in a child process, with SIGINT at its default disposition even when the tests
    themselves run as a background job (a shell starts those with SIGINT ignored, and an
    ignored signal stays ignored across exec)."""
    import signal

    cmd = AMIR + ["run", "--ckpt", str(ckpt), "--out", str(out), *RUN_ARGS, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_records(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    import time

    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and path.stat().st_size > 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"no records appeared (exit {proc.poll()})")


@pytest.mark.slow
def test_ctrl_c_keeps_records_says_so_and_exits_130(tiny_ckpt, tmp_path):
    import signal

    from amir_bench.records import read_samples

    out = tmp_path / "run"
    proc = _start_run(tiny_ckpt, out)
    _wait_for_records(out / "samples.jsonl", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    kept = len(read_samples(out / "samples.jsonl"))
    assert 0 < kept < 240
    assert f"interrupted; {kept} records kept in {out} — re-run with --resume" in err
    assert not (out / LOCK_NAME).exists()
    assert main(["run", "--ckpt", str(tiny_ckpt), "--out", str(out), *RUN_ARGS,
                 "--resume"]) == 0
    recs = read_samples(out / "samples.jsonl")
    assert len(recs) == len({r.key for r in recs}) == 240


@pytest.mark.slow
def test_a_second_writer_is_refused_while_the_first_runs(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "run"
    first = _start_run(tiny_ckpt, out)
    try:
        _wait_for_records(out / "samples.jsonl", first)
        rc = main(["run", "--ckpt", str(tiny_ckpt), "--out", str(out), *RUN_ARGS,
                   "--temperature", "0.7", "--resume"])
        err = capsys.readouterr().err
        assert rc == 2
        assert f"error: {out} is in use by pid {first.pid}" in err
    finally:
        first.communicate(timeout=300)
    assert first.returncode == 0
    from amir_bench.records import read_samples
    recs = read_samples(out / "samples.jsonl")
    assert len(recs) == len({r.key for r in recs}) == 240


@pytest.mark.parametrize("flag, value, needle", [
    ("--temperature", "nan", "--temperature must be a finite number >= 0"),
    ("--temperature", "inf", "--temperature must be a finite number >= 0"),
    ("--top-p", "nan", "--top-p must be in (0, 1]"),
    ("--top-k", "-5", "--top-k must be >= 0"),
    ("--batch-size", "0", "--batch-size must be >= 1"),
    ("--grade-timeout", "0", "--grade-timeout must be > 0"),
    ("--limit", "0", "--limit must be >= 1"),
])
def test_bad_numbers_are_refused_before_anything_is_written(flag, value, needle, tiny_ckpt,
                                                            tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["run", "--ckpt", str(tiny_ckpt), "--out", str(out), "--benchmarks", "arith",
               "--n", "2", flag, value])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert needle in err and "Traceback" not in err
    assert not (out / "manifest.json").exists()
    assert not list(out.glob("*.json*")) if out.exists() else True


def test_run_into_an_unwritable_folder_fails_before_loading(tiny_ckpt, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["run", "--ckpt", str(tiny_ckpt), "--out", str(blocker / "run"),
               "--benchmarks", "arith", "--n", "1", "--temperature", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == f"error: cannot write {blocker / 'run'} (Not a directory)"


def test_summary_counts_duplicate_keys_once_and_says_so(tmp_path, capsys):
    import json

    from runfactory import make_run

    run = make_run(tmp_path / "r", {"p1": [True, False], "p2": [False, False]})
    lines = (run / "samples.jsonl").read_text().splitlines()
    dup = json.loads(lines[1])
    dup["correct"] = True  # a second writer's different verdict for the same key
    (run / "samples.jsonl").write_text("\n".join(lines + [json.dumps(dup)]) + "\n")
    assert main(["summary", str(run), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["amc23"]["samples"] == 4
    assert summary["amc23"]["avg@n"] == pytest.approx(0.25)
    assert main(["summary", str(run)]) == 0
    assert "1 duplicate (problem, sample) records" in capsys.readouterr().err


def test_import_refuses_negative_sample_idx_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "gens.jsonl"
    src.write_text('{"problem_id": "arith-test-00000", "sample_idx": -1, "completion": "x", '
                   '"num_tokens": 5}\n')
    out = tmp_path / "imp"
    rc = main(["import", str(src), "--benchmark", "arith", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "gens.jsonl:1: sample_idx must be a whole number >= 0, got -1" in err
    assert not out.exists()


def test_length_without_a_shared_benchmark_says_so(tmp_path, capsys):
    import json

    from runfactory import make_run

    a = make_run(tmp_path / "a", {"p1": [True, False]}, benchmark="amc23")
    b = make_run(tmp_path / "b", {"p1": [True, True]}, benchmark="aime24")
    out = tmp_path / "length.json"
    assert main(["length", str(a), str(b), "--out", str(out)]) == 0
    assert "no benchmark problems in common" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["pairs"] == [] and any("in common" in n for n in res["notes"])


@pytest.mark.parametrize("command", ["report", "grade", "coverage"])
def test_unwritable_outputs_of_other_commands(command, tmp_path, capsys):
    from runfactory import make_run

    a = make_run(tmp_path / "a", {"p1": [True, False]}, n=2)
    b = make_run(tmp_path / "b", {"p1": [True, True]}, n=2)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"pred": "\\\\boxed{1}", "gold": "1"}\n')
    argv = {"report": ["report", str(a), str(b), "--out", str(blocker / "rep")],
            "grade": ["grade", str(preds), "--out", str(blocker / "g.jsonl")],
            "coverage": ["coverage", str(a), str(b), "--out", str(blocker / "c.json")]}[command]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "cannot write" in err


def test_coverage_json_goes_to_stdout(tmp_path, capsys):
    import json

    from runfactory import make_run

    a = make_run(tmp_path / "a", {"p1": [True, False], "p2": [False, False]}, n=2)
    b = make_run(tmp_path / "b", {"p1": [True, True], "p2": [True, False]}, n=2)
    rc = main(["coverage", str(a), str(b), "--json", "--resamples", "200",
               "--out", str(tmp_path / "c.json")])
    captured = capsys.readouterr()
    assert rc == 0
    res = json.loads(captured.out)
    assert res["kind"] == "coverage" and res["labels"] == ["a", "b"]
    assert json.loads((tmp_path / "c.json").read_text()) == res
