"""`amir-bench run` end to end on the tiny model: records, manifest, summary, shards, resume,
and every bad input a one-line error with exit code 2 that leaves written files untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amir_bench.cli import main
from amir_bench.records import read_samples

BASE = ["--benchmarks", "arith", "--n", "2", "--limit", "6", "--max-new-tokens", "16",
        "--temperature", "1.0", "--grade-timeout", "5"]


def _run(capsys, *args) -> tuple[int, str, str]:
    rc = main(["run", *args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _snapshot(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())} if d.exists() else {}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, tiny_ckpt):
    out = tmp_path_factory.mktemp("runs") / "base"
    assert main(["run", "--ckpt", str(tiny_ckpt), "--out", str(out), *BASE]) == 0
    return out


def test_run_writes_records_manifest_and_summary(base_run, tiny_ckpt, capsys):
    recs = read_samples(base_run / "samples.jsonl")
    assert len(recs) == 12
    assert {(r.problem_id, r.sample_idx) for r in recs} == \
        {(f"arith-test-{i:05d}", s) for i in range(6) for s in range(2)}
    for r in recs:
        assert r.benchmark == "arith" and r.finish_reason in ("stop", "length")
        assert r.grade_status in ("ok", "no_answer") and isinstance(r.correct, bool)
        assert 1 <= r.num_tokens <= 16 and r.gen_logprob_sum <= 0
        assert r.gold.isdigit()
    m = json.loads((base_run / "manifest.json").read_text())
    assert m["checkpoint"]["path"] == str(tiny_ckpt) and len(m["checkpoint"]["sha256"]) == 64
    assert m["decoding"] == {"n": 2, "temperature": 1.0, "top_p": 1.0, "top_k": 0,
                             "max_new_tokens": 16, "seed": 0}
    assert m["backend"] == "hf" and m["template"] == "boxed" and m["shard"] == "0/1"
    b = m["benchmarks"]["arith"]
    assert b["count"] == 6 and len(b["sha256"]) == 64 and len(b["problem_ids"]) == 6
    assert "torch" in m["package_versions"] and m["amir_bench_version"]
    summary = json.loads((base_run / "summary.json").read_text())
    s = summary["arith"]
    assert s["problems"] == 6 and s["samples"] == 12 and "pass@2" in s and "maj@2" in s
    acc = sum(r.correct for r in recs) / 12
    assert abs(s["avg@n"] - acc) < 1e-12
    # `summary` recomputes the same file from samples + manifest
    (base_run / "summary.json").unlink()
    assert main(["summary", str(base_run)]) == 0
    assert json.loads((base_run / "summary.json").read_text()) == summary
    assert "arith" in capsys.readouterr().out


def test_same_seed_same_records_and_shards_merge_to_the_same_run(base_run, tiny_ckpt, tmp_path,
                                                                 capsys):
    shards = []
    for i in range(2):
        d = tmp_path / f"shard{i}"
        assert main(["run", "--ckpt", str(tiny_ckpt), "--out", str(d), "--shard", f"{i}/2",
                     "--batch-size", "3", *BASE]) == 0
        shards.append(d)
    merged = tmp_path / "merged"
    assert main(["merge", *map(str, shards), "--out", str(merged)]) == 0
    key = lambda r: r.key  # noqa: E731
    a = sorted(read_samples(base_run / "samples.jsonl"), key=key)
    b = sorted(read_samples(merged / "samples.jsonl"), key=key)
    assert [(r.key, r.completion, r.correct) for r in a] == \
        [(r.key, r.completion, r.correct) for r in b]
    assert json.loads((merged / "summary.json").read_text()) == \
        json.loads((base_run / "summary.json").read_text())
    # overlapping and missing shards
    rc = main(["merge", str(shards[0]), str(shards[0]), "--out", str(tmp_path / "m2")])
    assert rc == 2 and "overlapping shards" in capsys.readouterr().err
    rc = main(["merge", str(shards[0]), "--out", str(tmp_path / "m3")])
    assert rc == 2 and "missing shard(s) 1/2" in capsys.readouterr().err
    assert not (tmp_path / "m2").exists() and not (tmp_path / "m3").exists()


def test_bad_inputs_are_one_line_errors(tmp_path, tiny_ckpt, capsys, base_run):
    cases = [
        (["--ckpt", str(tmp_path / "nope")], "checkpoint not found"),
        (["--ckpt", str(tiny_ckpt), "--benchmarks", "nosuch"], "unknown benchmark"),
        (["--ckpt", str(tiny_ckpt), "--template", "fancy"], "unknown template"),
        (["--ckpt", str(tiny_ckpt), "--shard", "3/2"], "--shard"),
    ]
    for extra, msg in cases:
        out = tmp_path / "o"
        rc, _, err = _run(capsys, "--out", str(out), *BASE, *extra)
        assert rc == 2, extra
        assert msg in err and err.count("\n") == 1 and "Traceback" not in err
        assert not out.exists()
    # a checkpoint without a tokenizer
    notok = tmp_path / "notok"
    notok.mkdir()
    for f in ("config.json", "model.safetensors"):
        (notok / f).write_bytes((tiny_ckpt / f).read_bytes())
    rc, _, err = _run(capsys, "--ckpt", str(notok), "--out", str(tmp_path / "o2"), *BASE)
    assert rc == 2 and "has no tokenizer" in err
    # a malformed data line
    data = tmp_path / "data"
    data.mkdir()
    (data / "aime24.jsonl").write_text('{"id": "1", "problem": "x", "answer": "2"}\n{oops\n')
    rc, _, err = _run(capsys, "--ckpt", str(tiny_ckpt), "--out", str(tmp_path / "o3"),
                      "--benchmarks", "aime24", "--data-dir", str(data), "--n", "1")
    assert rc == 2 and f"{data / 'aime24.jsonl'}:2: not valid JSON" in err
    # --out holding a different run, and --resume with a changed config: nothing changes
    before = _snapshot(base_run)
    rc, _, err = _run(capsys, "--ckpt", str(tiny_ckpt), "--out", str(base_run), *BASE,
                      "--seed", "5")
    assert rc == 2 and "different manifest" in err and "decoding.seed" in err
    rc, _, err = _run(capsys, "--ckpt", str(tiny_ckpt), "--out", str(base_run), *BASE,
                      "--seed", "5", "--top-p", "0.9", "--resume")
    assert rc == 2 and "changed configuration" in err
    assert "decoding.seed" in err and "decoding.top_p" in err
    rc, _, err = _run(capsys, "--ckpt", str(tiny_ckpt), "--out", str(base_run), *BASE)
    assert rc == 2 and "--resume" in err
    assert _snapshot(base_run) == before


def test_resume_after_a_truncated_line_fills_exactly_the_gaps(base_run, tiny_ckpt, tmp_path):
    run = tmp_path / "partial"
    run.mkdir()
    lines = (base_run / "samples.jsonl").read_text().splitlines(keepends=True)
    (run / "manifest.json").write_bytes((base_run / "manifest.json").read_bytes())
    (run / "samples.jsonl").write_text("".join(lines[:5]) + lines[5][:40])  # killed mid-write
    assert main(["run", "--ckpt", str(tiny_ckpt), "--out", str(run), *BASE, "--resume"]) == 0
    got = read_samples(run / "samples.jsonl")
    want = read_samples(base_run / "samples.jsonl")
    assert len(got) == len({r.key for r in got}) == 12
    assert {r.key: r.completion for r in got} == {r.key: r.completion for r in want}
    # resuming a complete run generates nothing and keeps the file byte for byte
    before = (run / "samples.jsonl").read_bytes()
    assert main(["run", "--ckpt", str(tiny_ckpt), "--out", str(run), *BASE, "--resume"]) == 0
    assert (run / "samples.jsonl").read_bytes() == before


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(tiny_ckpt, tmp_path):
    args = ["--ckpt", str(tiny_ckpt), "--benchmarks", "arith", "--n", "4", "--limit", "40",
            "--max-new-tokens", "48", "--temperature", "1.0", "--batch-size", "8"]
    full = tmp_path / "full"
    assert main(["run", "--out", str(full), *args]) == 0
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "amir_bench.cli", "run", "--out", str(killed), *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    samples = killed / "samples.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if samples.exists() and samples.stat().st_size > 0:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = len(samples.read_text().splitlines()) if samples.exists() else 0
    assert n_before < 160, "the run finished before it could be killed"
    assert main(["run", "--out", str(killed), *args, "--resume"]) == 0
    a = read_samples(full / "samples.jsonl")
    b = read_samples(killed / "samples.jsonl")
    assert len(b) == len({r.key for r in b}) == 160
    assert {r.key: (r.completion, r.correct, r.num_tokens) for r in a} == \
        {r.key: (r.completion, r.correct, r.num_tokens) for r in b}
