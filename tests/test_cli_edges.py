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
