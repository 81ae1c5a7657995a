"""perf/gpu_check.py on CPU: stage skipping, time limits, the JSON it writes, the parsers of the
perf scripts' output, the endpoint command it builds, and its --dry-run (no GPU anywhere)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "perf" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod
    spec.loader.exec_module(mod)
    return mod


gc = _load()


def _check(tmp_path: Path, stages, budget: float = 120.0, limits=None):
    s = gc.Settings(out=tmp_path / "out", work=tmp_path / "work", budget_s=budget,
                    limits=limits or {})
    return gc.Check(s, list(stages))


def _alive(pid: int) -> bool:
    """True for a live process (a zombie awaiting its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_failed_stage_skips_its_dependents_and_the_rest_still_runs(tmp_path):
    stages = [
        gc.Stage("a", "fails", 30, lambda c: c.sh(["false"], "a-false") and {}),
        gc.Stage("b", "needs a", 30, lambda c: {"ran": True}, requires=("a",)),
        gc.Stage("c", "independent", 30, lambda c: {"rc": c.sh(["true"], "c-true").rc, "x": 1.5}),
    ]
    report = _check(tmp_path, stages).run()
    st = report["stages"]
    assert st["a"]["status"] == "failed" and "`a-false` exited 1" in st["a"]["reason"]
    assert st["b"]["status"] == "skipped"
    assert st["b"]["reason"].startswith("needs a, which failed: `a-false` exited 1")
    assert st["c"] == {**st["c"], "status": "ok", "numbers": {"rc": 0, "x": 1.5}}
    on_disk = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert on_disk["stages"] == json.loads(json.dumps(st))
    table = (tmp_path / "out" / "gpu_check_table.txt").read_text()
    assert "x=1.5" in table and "needs a, which failed" in table
    logs = (tmp_path / "out" / "gpu_check_logs.txt").read_text()
    assert "===== a-false.log" in logs and "$ false" in logs


def test_a_stage_past_its_limit_is_killed_with_its_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    cmd = ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"]
    stages = [gc.Stage("slow", "sleeps", 2, lambda c: c.sh(cmd, "slow-sleep")),
              gc.Stage("after", "needs slow", 30, lambda c: {}, requires=("slow",))]
    check = _check(tmp_path, stages)
    report = check.run()
    slow = report["stages"]["slow"]
    assert slow["status"] == "timeout" and "`slow-sleep` ran past" in slow["reason"]
    assert report["stages"]["after"]["reason"].startswith("needs slow, which timeout")
    assert not check.procs
    assert not _alive(int(pidfile.read_text()))  # the background child died with the group


def test_stage_limit_override_and_global_budget(tmp_path):
    stages = [gc.Stage("quick", "", 300, lambda c: {"left": c.remaining() <= 5})]
    report = _check(tmp_path, stages, limits={"quick": 5}).run()
    assert report["stages"]["quick"]["numbers"] == {"left": True}
    assert report["stages"]["quick"]["limit_s"] == 5
    report = _check(tmp_path, stages, budget=gc.MIN_STAGE_S - 1).run()
    assert report["stages"]["quick"]["status"] == "skipped"
    assert "global budget exhausted" in report["stages"]["quick"]["reason"]


def test_a_crashing_stage_keeps_its_partial_numbers(tmp_path):
    def body(c):
        c.numbers["measured"] = 3
        raise ValueError("parser broke")

    stages = [gc.Stage("crash", "", 30, body), gc.Stage("next", "", 30, lambda c: {"ok": 1})]
    st = _check(tmp_path, stages).run()["stages"]
    assert st["crash"]["status"] == "failed" and st["crash"]["reason"] == "ValueError: parser broke"
    assert st["crash"]["numbers"] == {"measured": 3}
    assert st["next"]["status"] == "ok"


def test_precheck_reason_skips_and_unselected_stages_are_reported(tmp_path):
    stages = [gc.Stage("gpu", "", 30, lambda c: {}, precheck=lambda c: "no CUDA device"),
              gc.Stage("other", "", 30, lambda c: {})]
    st = _check(tmp_path, stages).run(only={"gpu"})["stages"]
    assert st["gpu"] == {**st["gpu"], "status": "skipped", "reason": "no CUDA device"}
    assert st["other"]["reason"] == "not selected (--stages)"


def test_env_precheck_names_what_is_missing(tmp_path):
    check = _check(tmp_path, [])
    check.results["env"] = {"status": "ok", "numbers": {"cuda": False, "executable": "py"}}
    assert gc.env_precheck("trl")(check) == "no CUDA device visible to py"
    check.results["env"]["numbers"].update(cuda=True, trl=None, torch="2.11")
    assert gc.env_precheck("torch", "trl")(check) == "missing in py: trl"
    check.results["env"]["numbers"]["trl"] = "1.16.0"
    assert gc.env_precheck("torch", "trl")(check) is None


def test_parse_eval_throughput_reads_the_summary_lines():
    text = textwrap.dedent("""\
        device: NVIDIA H200; problems=32 n=8 max_new_tokens=256 torch threads=16
          repeat 0: one-problem-per-call     41.0 samples/s | amir-bench run    612.5 samples/s
        one problem per call (num_return_sequences=8): 41.0 samples/s
        amir-bench run (batched across problems):      612.5 samples/s
        speedup: 14.94x
        """)
    assert gc.parse_eval_throughput(text) == {"baseline_samples_per_s": 41.0,
                                              "amir_samples_per_s": 612.5, "speedup": 14.94,
                                              "device": "NVIDIA H200"}
    with pytest.raises(gc.StageFailed, match="printed no speedup.*CUDA out of memory"):
        gc.parse_eval_throughput(text.split("speedup")[0] + "RuntimeError: CUDA out of memory\n")


def test_junit_counts_from_a_real_pytest_report(tmp_path):
    (tmp_path / "test_x.py").write_text(textwrap.dedent("""\
        import pytest
        def test_ok(): assert True
        @pytest.mark.skip(reason="needs a GPU")
        def test_gpu(): pass
        def test_bad(): assert 1 == 2
        """))
    xml = tmp_path / "r.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path),
                    f"--junitxml={xml}"], cwd=tmp_path, capture_output=True)
    c = gc.junit_counts(xml)
    assert (c["tests"], c["passed"], c["failures"], c["skipped"]) == (3, 1, 1, 1)
    assert c["skipped_tests"] == {"test_gpu": "needs a GPU"}


def test_run_stats_and_texts_tolerate_a_torn_tail(tmp_path):
    rec = lambda pid, s, **kw: json.dumps({"benchmark": "arith", "problem_id": pid,  # noqa: E731
                                           "sample_idx": s, "completion": f"{pid}/{s}",
                                           "finish_reason": "length", "num_tokens": 4,
                                           "gen_logprob_sum": -1.0, **kw})
    (tmp_path / "samples.jsonl").write_text(
        "\n".join([rec("p0", 0), rec("p0", 1, gen_logprob_sum=None, finish_reason="stop"),
                   rec("p0", 1)]) + '\n{"benchmark": "ari')
    stats = gc.run_stats(tmp_path)
    assert stats == {"records": 3, "unique_keys": 2, "duplicates": 1, "truncated_frac": 2 / 3,
                     "logprob_frac": 2 / 3, "mean_tokens": 4.0}
    assert gc.run_texts(tmp_path) == {("arith", "p0", 0): "p0/0", ("arith", "p0", 1): "p0/1"}
    assert gc.run_stats(tmp_path / "missing")["records"] == 0


def test_endpoint_command_follows_the_flags_the_cli_has(tmp_path):
    check = _check(tmp_path, [])
    full = "--endpoint URL  --model NAME  --api chat|completions  --concurrency K  --tokenizer P"
    cmd = gc.endpoint_cmd(check, full, "http://127.0.0.1:9/v1", tmp_path / "r", "chat", 8)
    assert cmd[cmd.index("--endpoint") + 1] == "http://127.0.0.1:9/v1"
    model = str(tmp_path / "work" / "model")  # the served name is the model folder's path
    assert cmd[cmd.index("--api") + 1] == "chat"
    assert [cmd[cmd.index(f) + 1] for f in ("--ckpt", "--model", "--tokenizer")] == [model] * 3
    assert cmd[cmd.index("--concurrency") + 1] == "8" and "--request-timeout" not in cmd
    bare = gc.endpoint_cmd(check, "--endpoint URL --model-name X", "u", tmp_path / "r", "chat", 1,
                           resume=True)
    assert "--model" not in bare and "--api" not in bare and bare[-1] == "--resume"


def test_serve_stage_skips_without_the_endpoint_flag(tmp_path, monkeypatch):
    check = _check(tmp_path, [])
    monkeypatch.setattr(gc, "cli_help", lambda c, *cmd: "--ckpt TEXT  --backend TEXT")
    assert "lists no --endpoint" in gc.endpoint_precheck(check)
    monkeypatch.setattr(gc, "cli_help", lambda c, *cmd: "--backend TEXT  --endpoint TEXT")
    assert gc.endpoint_precheck(check) is None


def test_padded_tokenizer_decodes_every_id():
    tok = gc.padded_tokenizer(1000)
    assert gc.check_tokenizer(tok, 1000)["vocab"] == 1000
    assert tok.decode([999, 998]) == "~999~~998~"
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True).endswith("assistant\n")


def test_wheels_report_names_gaps_and_duplicates(tmp_path):
    for name in ("vllm-0.33.0-cp38-abi3-x.whl", "torch-2.14.0-cp312-x.whl",
                 "torch-2.13.0-cp312-x.whl", "wheel-0.45.0-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"")
    ok, detail = gc.wheels_report(tmp_path)
    assert not ok and detail == "4 wheels; missing setuptools; two versions of torch"


def test_bad_flags_are_one_line_errors(capsys, tmp_path):
    assert gc.main(["--stages", "env,gpu_burn", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith("error: unknown stage(s) gpu_burn")
    assert gc.main(["--limit", "venv=soon", "--out", str(tmp_path)]) == 2
    assert "--limit wants STAGE=SECONDS" in capsys.readouterr().err


def test_sigterm_keeps_the_numbers_and_kills_the_running_command(tmp_path):
    pidfile = tmp_path / "child.pid"
    runner = tmp_path / "runner.py"
    runner.write_text(textwrap.dedent(f"""\
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("gpu_check", {str(SCRIPT)!r})
        gc = importlib.util.module_from_spec(spec)
        sys.modules["gpu_check"] = gc
        spec.loader.exec_module(gc)
        stages = (gc.Stage("first", "", 30, lambda c: {{"value": 7}}),
                  gc.Stage("hang", "", 300, lambda c: c.sh(
                      ["sh", "-c", "sleep 300 & echo $! > {pidfile}; wait"], "hang")))
        sys.exit(gc.main(["--out", {str(tmp_path / 'out')!r}, "--work", {str(tmp_path / 'w')!r}],
                         stages))
        """))
    proc = subprocess.Popen([sys.executable, str(runner)], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    st = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["stages"]
    assert st["first"]["numbers"] == {"value": 7} and st["hang"]["status"] == "interrupted"
    assert not _alive(int(pidfile.read_text()))


@pytest.mark.slow
def test_dry_run_prints_the_plan_and_checks_prerequisites(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path / "o"),
                           "--work", str(tmp_path / "w")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for stage in gc.STAGES:
        assert f"  {stage.name} " in proc.stdout
    assert '"vocab": 151936' in proc.stdout
    assert "[ok  ] perf/train_step_ratio.py --gpu-shape --help" in proc.stdout
    assert "nvidia-smi" in proc.stdout and proc.stdout.rstrip().endswith("dry run: ready")
    assert not (tmp_path / "o").exists()  # a dry run writes no result files


@pytest.mark.slow
def test_real_stages_on_cpu_fail_and_skip_with_reasons(tmp_path):
    """The real env and venv stages on this CPU machine: env measures, an empty wheel folder makes
    the venv stage fail with pip's reason, and everything that needs a GPU or the venv is skipped."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    rc = gc.main(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "w"), "--wheels",
                  str(wheels), "--stages", "env,venv,model,vllm_run,serve,eval_throughput"])
    st = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["stages"]
    assert rc == 1
    env = st["env"]
    assert env["status"] == "ok" and env["numbers"]["torch"].startswith("2.13")
    assert env["numbers"]["cuda"] is False and "nvidia_smi" in env["numbers"]
    assert st["venv"]["status"] == "failed"
    assert st["venv"]["reason"].startswith("pip could not install the vllm extra")
    assert st["venv"]["numbers"]["install_s"] >= 0
    for name in ("model", "vllm_run", "serve"):
        assert st[name]["reason"].startswith("needs venv, which failed: pip could not install")
    assert st["eval_throughput"]["reason"] == f"no CUDA device visible to {sys.executable}"
    assert st["train_step"]["reason"] == "not selected (--stages)"


@pytest.mark.parametrize("text, line", [
    ("Collecting x\n      ERROR: Could not find a version that satisfies the requirement setuptools>=68\n"
     "      ERROR: No matching distribution found for setuptools>=68\nerror: subprocess-exited-with-error\n"
     "note: This error originates from a subprocess",
     "ERROR: Could not find a version that satisfies the requirement setuptools>=68"),
    ("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
     "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n",
     "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
    ("loading\nerror: --endpoint http://x: connection refused\n",
     "error: --endpoint http://x: connection refused"),
    ("step 1\nstep 2\n", "step 2"),
    ("", "(no output)"),
])
def test_last_error_line_picks_the_reason(text, line):
    assert gc.last_error_line(text) == line
