"""One prepared GPU check: what only a CUDA GPU can show, stage by stage, into one JSON file.

    python perf/gpu_check.py --dry-run                   # the plan + this script's prerequisites
    python perf/gpu_check.py --out "$OUT" --budget 540   # on one CUDA GPU, no Hub access
    python perf/gpu_check.py --wheels .whl/vllm ...      # install the vllm extra from local wheels

Stages (each with its own time limit; a stage whose prerequisite did not pass is skipped with
the reason, so a partial run still returns numbers):
  env              python / torch / CUDA / package versions of the interpreter that runs the check
  venv             a separate venv with the `vllm` extra (timed; or --vllm-python: an existing one)
  model            a random model of Qwen2.5-0.5B's shape (vocab 151,936), tokenizer padded to it
  vllm_tests       tests/test_backend_vllm.py inside that venv
  vllm_run         `amir-bench run --backend vllm`: 64 arith problems, n = 8, 256 new tokens
  serve            `vllm serve` on loopback; the endpoint backend against it (completions, chat,
                   n > 1, seed, logprobs, prompt_logprobs scoring, kill-and-resume)
  eval_throughput  perf/eval_throughput.py --gpu-shape (HF bf16 batched vs one problem per call)
  train_step       perf/train_step_ratio.py --gpu-shape (AMIR-GRPO / GRPO step time, peak memory)
Every number goes to OUT/gpu_check.json (rewritten after each stage); OUT/gpu_check_table.txt
holds the printed table and OUT/gpu_check_logs.txt the tail of every command's log.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from amir_bench.jsonio import atomic_write_json, atomic_write_text, iter_jsonl  # noqa: E402

QWEN05B_VOCAB = 151_936
MIN_STAGE_S = 15.0  # a stage is not started with less of the global budget left than this
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "OMP_WAIT_POLICY": "PASSIVE",
               "PYTHONUNBUFFERED": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
WHEEL_DOWNLOAD = ("python3 -m pip download --only-binary=:all: --python-version 3.12 "
                  "--implementation cp --platform manylinux_2_28_x86_64 --platform "
                  "manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl/vllm "
                  "'.[vllm,dev]' setuptools wheel")


class StageFailed(Exception):
    """A stage could not produce its numbers; the message is the one-line reason."""


class StageTimeout(StageFailed):
    """A command ran past the stage's time limit (its process group was killed)."""


@dataclass
class Stage:
    """One step of the check: its body returns the numbers it measured (a flat-ish dict)."""

    name: str
    title: str
    limit_s: float
    body: Callable[["Check"], dict]
    requires: tuple[str, ...] = ()
    precheck: Callable[["Check"], str | None] | None = None  # a reason to skip, or None


@dataclass
class Settings:
    """What the command line decides; everything else is derived from it."""

    out: Path
    work: Path
    python: str = sys.executable
    wheels: Path | None = None
    vllm_python: str | None = None
    budget_s: float = 540.0
    limits: dict[str, float] = field(default_factory=dict)
    problems: int = 64
    eval_problems: int = 32
    train_steps: int = 4
    serve_gpu_memory: float = 0.5
    endpoint_shape: tuple[int, int, int] = (32, 4, 128)  # problems, n, max new tokens per run

    @property
    def venv_python(self) -> str:
        """The interpreter that has vllm: --vllm-python, else the venv this check creates."""
        return self.vllm_python or str(self.work / "vllm-venv" / "bin" / "python")


@dataclass
class Cmd:
    """A finished command: exit code, wall time, the tail of its log, the log's path."""

    rc: int
    wall_s: float
    tail: str
    log: Path


def tail_lines(path: Path, n: int = 40) -> str:
    """The last `n` lines of a log file ('' when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


ERROR_LINES = (  # most telling first: pip's reason, a Python exception, a one-line CLI error
    (re.compile(r"^ERROR: "), "first"),
    (re.compile(r"^[\w.]*(Error|Exception|Interrupt)\b.*: "), "last"),
    (re.compile(r"^error: (?!subprocess-exited)"), "last"),
)


def last_error_line(text: str) -> str:
    """The most telling line of a failed command's output, else its last line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for pattern, which in ERROR_LINES:
        hits = [ln for ln in lines if pattern.search(ln)]
        if hits:
            return (hits[0] if which == "first" else hits[-1])[:300]
    plain = [ln for ln in lines if not ln.startswith("note:")]
    return plain[-1][:300] if plain else "(no output)"


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to a process group that may already be gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(proc: subprocess.Popen) -> bool:
    """True while any process of the command's group exists (the leader is reaped first)."""
    proc.poll()
    try:
        os.killpg(proc.pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class Check:
    """Runs stages in order under one global budget; writes the JSON after every stage."""

    def __init__(self, settings: Settings, stages: list[Stage]):
        self.s = settings
        self.stages = stages
        self.results: dict[str, dict] = {}
        self.started = time.time()
        self.deadline = time.monotonic() + settings.budget_s
        self.stage_deadline = self.deadline
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.numbers: dict = {}  # the running stage's numbers so far (kept if it fails)
        self.current: str | None = None
        (settings.work / "logs").mkdir(parents=True, exist_ok=True)
        settings.out.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ processes

    def env(self, venv: bool = False) -> dict[str, str]:
        """Offline, quiet environment; the venv gets no inherited PYTHONPATH (carried wheels)."""
        env = {**os.environ, **OFFLINE_ENV}
        inherited = "" if venv else os.environ.get("PYTHONPATH", "")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), inherited) if p)
        return env

    def remaining(self) -> float:
        """Seconds left in the running stage (its limit, capped by the global budget)."""
        return self.stage_deadline - time.monotonic()

    def spawn(self, cmd: list[str], log: str, venv: bool = False) -> tuple[subprocess.Popen, Path]:
        """Start a command in its own process group (killed as a whole), output to a log file."""
        path = self.s.work / "logs" / f"{log}.log"
        self.logs.append(path)
        with open(path, "ab") as fh:
            fh.write(f"$ {' '.join(cmd)}\n".encode())
            fh.flush()
            proc = subprocess.Popen(cmd, cwd=REPO, env=self.env(venv), stdout=fh,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=os.setpgrp)
        self.procs.append(proc)
        return proc, path

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL, grace_s: float = 10.0) -> None:
        """Signal a spawned command's process group; SIGKILL what is left after `grace_s`."""
        if proc not in self.procs:
            return
        signal_group(proc.pid, sig)
        end = time.monotonic() + grace_s
        while group_alive(proc) and time.monotonic() < end:
            time.sleep(0.2)
        signal_group(proc.pid, signal.SIGKILL)  # children (vLLM's engine) can outlive the leader
        end = time.monotonic() + 5.0  # bounded: an unreaped zombie must not hang the check
        while group_alive(proc) and time.monotonic() < end:
            time.sleep(0.1)
        self.procs.remove(proc)

    def sh(self, cmd: list[str], log: str, venv: bool = False, timeout: float | None = None,
           ok: tuple[int, ...] | None = (0,)) -> Cmd:
        """Run a command to completion within the stage's limit; a non-`ok` exit fails the stage."""
        limit = self.remaining() if timeout is None else min(timeout, self.remaining())
        if limit <= 0:
            raise StageTimeout(f"no time left in the stage for `{log}`")
        t0 = time.monotonic()
        proc, path = self.spawn(cmd, log, venv)
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            raise StageTimeout(f"`{log}` ran past {limit:.0f}s and was killed") from None
        self.kill(proc)  # whatever it left behind in its process group
        res = Cmd(rc, time.monotonic() - t0, tail_lines(path), path)
        if ok is not None and rc not in ok:
            raise StageFailed(f"`{log}` exited {rc}: {last_error_line(res.tail)}")
        return res

    def cleanup(self) -> None:
        """Kill every command still running (a stage's end, an interrupt)."""
        for proc in list(self.procs):
            self.kill(proc, grace_s=5.0)

    # ------------------------------------------------------------------ stages

    def skip_reason(self, stage: Stage) -> str | None:
        """Why a stage must not run: a needed stage did not pass, no budget, or its precheck."""
        for need in stage.requires:
            r = self.results.get(need)
            if r is None:
                return f"needs {need}, which did not run"
            if r["status"] != "ok":
                return f"needs {need}, which {r['status']}: {r.get('reason') or ''}".rstrip(": ")
        left = self.deadline - time.monotonic()
        if left < MIN_STAGE_S:
            return f"global budget exhausted ({left:.0f}s of {self.s.budget_s:.0f}s left)"
        return stage.precheck(self) if stage.precheck else None

    def run_stage(self, stage: Stage) -> dict:
        """Run one stage under its limit; its status, reason, numbers (partial on failure), logs."""
        limit = self.s.limits.get(stage.name, stage.limit_s)
        res: dict = {"title": stage.title, "limit_s": limit, "numbers": {}}
        reason = self.skip_reason(stage)
        if reason:
            return {**res, "status": "skipped", "reason": reason, "wall_s": 0.0}
        effective = min(limit, self.deadline - time.monotonic())
        self.stage_deadline = time.monotonic() + effective
        first_log = len(self.logs)
        t0 = time.monotonic()
        self.numbers = {}
        try:
            self.numbers.update(stage.body(self) or {})
            res["status"], res["reason"] = "ok", None
        except StageTimeout as e:
            res["status"], res["reason"] = "timeout", f"{e} (stage limit {effective:.0f}s)"
        except StageFailed as e:
            res["status"], res["reason"] = "failed", str(e)
        except Exception as e:  # a bug in the stage itself must not lose the other stages
            res["status"], res["reason"] = "failed", f"{type(e).__name__}: {e}"
        finally:
            self.cleanup()
            self.stage_deadline = self.deadline
        res["numbers"] = self.numbers
        res["wall_s"] = round(time.monotonic() - t0, 2)
        res["logs"] = [str(p) for p in self.logs[first_log:]]
        return res

    def run(self, only: set[str] | None = None) -> dict:
        """Run the stages in order (only the selected ones), rewriting the outputs after each."""
        for stage in self.stages:
            if only is not None and stage.name not in only:
                self.results[stage.name] = {"title": stage.title, "status": "skipped",
                                            "reason": "not selected (--stages)", "numbers": {},
                                            "wall_s": 0.0, "limit_s": stage.limit_s}
            else:
                print(f"[gpu_check] {stage.name}: {stage.title} ...", flush=True)
                self.current = stage.name
                self.results[stage.name] = self.run_stage(stage)
                self.current = None
                r = self.results[stage.name]
                print(f"[gpu_check] {stage.name}: {r['status']} in {r['wall_s']:.1f}s"
                      + (f" ({r['reason']})" if r.get("reason") else ""), flush=True)
            self.write()
        return self.report()

    # ------------------------------------------------------------------ output

    def report(self) -> dict:
        """The whole result: when, how long, the arguments, every stage."""
        return {"script": "perf/gpu_check.py", "started_at": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                "wall_s": round(time.time() - self.started, 2), "budget_s": self.s.budget_s,
                "argv": sys.argv[1:], "stages": self.results}

    def write(self) -> None:
        """Rewrite the JSON, the table and the log tails (a killed run keeps what it measured)."""
        atomic_write_json(self.s.out / "gpu_check.json", self.report())
        atomic_write_text(self.s.out / "gpu_check_table.txt", format_table(self.results) + "\n")
        parts = [f"===== {p.name}\n{tail_lines(p, 120)}" for p in self.logs]
        atomic_write_text(self.s.out / "gpu_check_logs.txt", "\n".join(parts) + "\n")


def flat_numbers(numbers: dict, prefix: str = "") -> list[str]:
    """`key=value` strings of a stage's numbers (nested dicts dotted), for the table."""
    items = []
    for k, v in numbers.items():
        if isinstance(v, dict):
            items += flat_numbers(v, f"{prefix}{k}.")
        elif isinstance(v, float):
            items.append(f"{prefix}{k}={v:.4g}")
        elif isinstance(v, (int, str, bool)) or v is None:
            items.append(f"{prefix}{k}={v}")
    return items


def format_table(results: dict[str, dict]) -> str:
    """One row per stage: status, wall time, limit, and its numbers or the reason."""
    rows = [("stage", "status", "wall s", "limit s", "numbers / reason")]
    for name, r in results.items():
        detail = "; ".join(flat_numbers(r.get("numbers") or {}))
        if r.get("reason"):
            detail = (detail + " | " if detail else "") + r["reason"]
        rows.append((name, r["status"], f"{r.get('wall_s', 0):.1f}", f"{r.get('limit_s', 0):.0f}",
                     detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4]
                     for row in rows)


# ============================================================================ measuring helpers


def probe_code(modules: tuple[str, ...]) -> str:
    """Python source that prints one `GPU_CHECK_JSON {...}` line: versions, CUDA, the GPU."""
    return f"""
import importlib, json, platform, sys
out = {{"python": platform.python_version(), "executable": sys.executable}}
for m in {modules!r}:
    try:
        out[m] = getattr(importlib.import_module(m), "__version__", "present")
    except Exception as e:
        out[m] = None
        out.setdefault("missing", {{}})[m] = (type(e).__name__ + ": " + str(e))[:200]
try:
    import torch
    out["cuda"] = torch.cuda.is_available()
    if out["cuda"]:
        p = torch.cuda.get_device_properties(0)
        out.update(device=p.name, gpus=torch.cuda.device_count(), cuda_version=torch.version.cuda,
                   gpu_mem_gib=round(p.total_memory / 2**30, 1), bf16=torch.cuda.is_bf16_supported())
except Exception as e:
    out["cuda"] = False
    out["cuda_error"] = str(e)[:200]
print("GPU_CHECK_JSON " + json.dumps(out))
"""


def json_line(text: str, tag: str = "GPU_CHECK_JSON ") -> dict:
    """The JSON object a child printed on its tagged line (how children report numbers)."""
    for line in reversed(text.splitlines()):
        if line.startswith(tag):
            return json.loads(line[len(tag):])
    raise StageFailed(f"no `{tag.strip()}` line in the output: {last_error_line(text)}")


def probe(c: Check, python: str, modules: tuple[str, ...], log: str, venv: bool = False) -> dict:
    """Run `probe_code` under `python` (a subprocess, so a broken import cannot crash the check)."""
    r = c.sh([python, "-c", probe_code(modules)], log, venv=venv, timeout=120)
    return json_line(r.log.read_text(errors="replace"))


def run_stats(run: Path) -> dict:
    """Counts over a run's samples.jsonl: records, duplicate keys, truncation, logprob presence."""
    path = run / "samples.jsonl"
    if not path.exists():
        return {"records": 0, "unique_keys": 0, "duplicates": 0}
    recs = [r for _, r in iter_jsonl(path, tolerate_truncated_tail=True)]
    keys = {(r.get("benchmark"), r.get("problem_id"), r.get("sample_idx")) for r in recs}
    n = len(recs)
    return {"records": n, "unique_keys": len(keys), "duplicates": n - len(keys),
            "truncated_frac": sum(r.get("finish_reason") == "length" for r in recs) / n if n else None,
            "logprob_frac": sum(r.get("gen_logprob_sum") is not None for r in recs) / n if n else None,
            "mean_tokens": sum(r.get("num_tokens") or 0 for r in recs) / n if n else None}


def run_texts(run: Path) -> dict[tuple, str]:
    """(benchmark, problem, sample) -> completion, to compare two runs text by text."""
    path = run / "samples.jsonl"
    return {(r["benchmark"], r["problem_id"], r["sample_idx"]): r.get("completion", "")
            for _, r in iter_jsonl(path, tolerate_truncated_tail=True)} if path.exists() else {}


def summary_numbers(run: Path, benchmark: str = "arith") -> dict:
    """The headline numbers of a run's summary.json for one benchmark."""
    try:
        summ = json.loads((run / "summary.json").read_text())[benchmark]
    except (OSError, KeyError, ValueError):
        return {}
    keep = ("avg@n", "truncation_rate", "no_answer_rate", "mean_tokens")
    return {k: summ[k] for k in keep if k in summ}


EVAL_PATTERNS = {"baseline_samples_per_s": r"one problem per call .*?:\s*([\d.]+) samples/s",
                 "amir_samples_per_s": r"amir-bench run \(batched.*?:\s*([\d.]+) samples/s",
                 "speedup": r"speedup:\s*([\d.]+)x"}


def parse_eval_throughput(text: str) -> dict:
    """The numbers perf/eval_throughput.py prints (its last summary lines)."""
    out: dict = {}
    for key, pat in EVAL_PATTERNS.items():
        m = re.findall(pat, text)
        if m:
            out[key] = float(m[-1])
    dev = re.findall(r"^device: ([^;]+);", text, re.M)
    if dev:
        out["device"] = dev[-1]
    missing = [k for k in EVAL_PATTERNS if k not in out]
    if missing:
        raise StageFailed(f"eval_throughput printed no {', '.join(missing)}: {last_error_line(text)}")
    return out


def junit_counts(path: Path) -> dict:
    """Test counts from pytest's --junitxml file (skipped tests by name, with their reason)."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["skipped_tests"] = {tc.get("name"): (tc.find("skipped").get("message") or "")[:120]
                               for tc in root.iter("testcase") if tc.find("skipped") is not None}
    return counts


def has_flag(help_text: str, flag: str) -> bool:
    """Whether a help text lists `flag` as a whole option (`--model` is not `--model-name`)."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text) is not None


def cli_help(c: Check, *command: str) -> str:
    """`amir-bench COMMAND --help` as the venv's interpreter prints it (wide, no colour)."""
    env = {**c.env(venv=True), "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run([c.s.venv_python, "-m", "amir_bench.cli", *command, "--help"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    return proc.stdout + proc.stderr


def free_port() -> int:
    """A free loopback port for the server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, payload: dict | None = None, timeout: float = 60.0) -> dict:
    """One JSON request to the local server (a readiness/feature probe, not the client under test)."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode())


def pypi_reachable(timeout: float = 3.0) -> bool:
    """Whether PyPI answers at all (so an offline venv install fails in seconds, not minutes)."""
    try:
        socket.create_connection(("pypi.org", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


# ============================================================================ the stages


def env_precheck(*modules: str) -> Callable[[Check], str | None]:
    """Skip reason when the env stage saw no CUDA device or a needed module is missing."""
    def check(c: Check) -> str | None:
        env = c.results["env"]["numbers"]
        if not env.get("cuda"):
            return f"no CUDA device visible to {env.get('executable', 'python')}"
        missing = [m for m in modules if not env.get(m)]
        return f"missing in {env.get('executable')}: {', '.join(missing)}" if missing else None
    return check


def stage_env(c: Check) -> dict:
    """Versions, CUDA and the GPU as the interpreter running the HF and training stages sees them."""
    info = probe(c, c.s.python, ("torch", "transformers", "trl", "math_verify", "datasets",
                                 "accelerate", "peft"), "env-probe")
    smi = shutil.which("nvidia-smi")
    if smi:
        r = c.sh([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                 "env-nvidia-smi", timeout=30, ok=None)
        info["nvidia_smi"] = r.tail.splitlines()[-1].strip() if r.rc == 0 and r.tail else f"exit {r.rc}"
    else:
        info["nvidia_smi"] = "not found"
    return info


def stage_venv(c: Check) -> dict:
    """A fresh venv with the vllm extra from --wheels or PyPI (timed), or --vllm-python as is."""
    numbers = c.numbers
    if not c.s.vllm_python:
        if not c.s.wheels and not pypi_reachable():
            raise StageFailed("no --wheels folder and no route to PyPI: the vllm extra cannot be "
                              f"installed here (fill a folder with: {WHEEL_DOWNLOAD})")
        venv = c.s.work / "vllm-venv"
        c.sh([c.s.python, "-m", "venv", "--clear", str(venv)], "venv-create", timeout=120)
        src = (["--no-index", "--find-links", str(c.s.wheels)] if c.s.wheels
               else ["--retries", "1", "--timeout", "30"])
        r = c.sh([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                  "--no-input", *src, "-e", f"{REPO}[vllm,dev]"], "venv-pip-install", venv=True, ok=None)
        numbers["install_s"] = round(r.wall_s, 1)
        if r.rc:
            raise StageFailed(f"pip could not install the vllm extra (exit {r.rc} after "
                              f"{r.wall_s:.0f}s): {last_error_line(r.tail)}")
    info = probe(c, c.s.venv_python, ("vllm", "torch", "transformers", "pytest"), "venv-probe", venv=True)
    numbers.update({k: info.get(k) for k in ("python", "vllm", "torch", "transformers", "cuda", "device")})
    if not info.get("vllm"):
        raise StageFailed(f"vllm does not import in {c.s.venv_python}: {info['missing'].get('vllm')}")
    if not info.get("cuda"):
        raise StageFailed(f"torch in {c.s.venv_python} sees no CUDA device")
    return numbers


def stage_model(c: Check) -> dict:
    """Build the served model in a child process (its memory and time stay bounded)."""
    out = c.s.work / "model"
    shutil.rmtree(out, ignore_errors=True)
    r = c.sh([c.s.python, str(Path(__file__).resolve()), "--build-model", str(out)], "model-build")
    return {**json_line(r.log.read_text(errors="replace")), "build_s": round(r.wall_s, 1)}


def stage_vllm_tests(c: Check) -> dict:
    """The vLLM backend's tests in the venv; a pass needs at least one test run, none failed."""
    xml = c.s.work / "vllm-tests.xml"
    xml.unlink(missing_ok=True)
    r = c.sh([c.s.venv_python, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
              "tests/test_backend_vllm.py", f"--junitxml={xml}"], "vllm-tests", venv=True, ok=None)
    if not xml.exists():
        raise StageFailed(f"pytest wrote no report (exit {r.rc}): {last_error_line(r.tail)}")
    counts = junit_counts(xml)
    if r.rc or counts["failures"] or counts["errors"] or counts["passed"] == 0:
        raise StageFailed(f"vllm tests: {counts['passed']} passed, {counts['failures']} failed, "
                          f"{counts['errors']} errors, {counts['skipped']} skipped: "
                          f"{last_error_line(r.tail)}")
    return counts


def stage_vllm_run(c: Check) -> dict:
    """A real `amir-bench run --backend vllm`; every (problem, sample) must be recorded once."""
    out = c.s.work / "runs" / "vllm"
    shutil.rmtree(out, ignore_errors=True)
    n, problems = 8, c.s.problems
    r = c.sh([c.s.venv_python, "-m", "amir_bench.cli", "run", "--ckpt", str(c.s.work / "model"),
              "--backend", "vllm", "--benchmarks", "arith", "--limit", str(problems), "--n", str(n),
              "--max-new-tokens", "256", "--temperature", "1.0", "--seed", "0", "--out", str(out)],
             "vllm-run", venv=True)
    stats = run_stats(out)
    if stats["unique_keys"] != problems * n or stats["duplicates"]:
        raise StageFailed(f"expected {problems * n} records, found {stats}")
    return {"problems": problems, "n": n, "max_new_tokens": 256, "wall_s": round(r.wall_s, 1),
            "samples_per_s_incl_load": round(stats["records"] / r.wall_s, 1), **stats,
            "summary": summary_numbers(out)}


def stage_eval_throughput(c: Check) -> dict:
    """HF bf16 eval throughput, batched vs one problem per call, on the GPU shape."""
    r = c.sh([c.s.python, "perf/eval_throughput.py", "--gpu-shape", "--max-new-tokens", "256",
              "--problems", str(c.s.eval_problems), "--repeats", "1"], "eval-throughput")
    return {"problems": c.s.eval_problems, "n": 8, "max_new_tokens": 256,
            **parse_eval_throughput(r.log.read_text(errors="replace"))}


def stage_train_step(c: Check) -> dict:
    """AMIR-GRPO / GRPO step-time and peak-memory ratios on the GPU shape."""
    out = c.s.work / "train_step.json"
    out.unlink(missing_ok=True)
    c.sh([c.s.python, "perf/train_step_ratio.py", "--gpu-shape", "--steps", str(c.s.train_steps),
          "--repeats", "1", "--json", str(out)], "train-step")
    table = json.loads(out.read_text())["table"]
    keep = ("step_time", "step_time_ratio", "update_time", "update_time_ratio", "peak_mb",
            "peak_mb_ratio", "pairs_per_step", "completion_length")
    return {"steps": c.s.train_steps, **{row["variant"]: {k: row.get(k) for k in keep} for row in table}}


# ----------------------------------------------------------------------------- vllm serve


class Server:
    """`vllm serve` on loopback for the served random model; start, wait until ready, kill."""

    def __init__(self, c: Check, port: int):
        self.c, self.port, self.proc = c, port, None
        self.url = f"http://127.0.0.1:{port}/v1"
        script = Path(c.s.venv_python).parent / "vllm"
        self.model = str(c.s.work / "model")  # served under its path: a name and a local tokenizer
        self.cmd = [str(script) if script.exists() else "vllm", "serve", self.model,
                    "--host", "127.0.0.1", "--port", str(port), "--seed", "0", "--dtype", "bfloat16",
                    "--max-model-len", "2048", "--gpu-memory-utilization", str(c.s.serve_gpu_memory), "--enforce-eager"]

    def start(self, log: str) -> float:
        """Seconds until GET /v1/models answers; a server that exits or never answers fails."""
        t0 = time.monotonic()
        self.proc, path = self.c.spawn(self.cmd, log, venv=True)
        while self.c.remaining() > 0:
            if self.proc.poll() is not None:
                raise StageFailed(f"vllm serve exited {self.proc.returncode}: "
                                  f"{last_error_line(tail_lines(path, 80))}")
            try:
                http_json(f"{self.url}/models", timeout=5)
                return round(time.monotonic() - t0, 1)
            except (OSError, ValueError):  # not listening yet, or answering before it is ready
                time.sleep(1.0)
        raise StageTimeout("vllm serve did not answer before the stage's limit")

    def kill(self) -> None:
        if self.proc is not None:
            self.c.kill(self.proc)
            self.proc = None


def feature(fn: Callable[[], object]) -> object:
    """A server feature probe's value, or the one-line error that says why it is missing."""
    try:
        return fn()
    except Exception as e:
        return f"error: {type(e).__name__}: {str(e)[:150]}"


def probe_server(url: str, model: str) -> dict:
    """What the server itself supports: n, seed, logprobs, echo, prompt_logprobs, chat, version."""
    prompt = "What is 2 plus 2?"
    comp = lambda **kw: http_json(f"{url}/completions", {"model": model, "prompt": prompt,  # noqa: E731
                                                         "temperature": 1.0, **kw})
    seeded = lambda: [ch["text"] for ch in comp(n=2, seed=7, max_tokens=8)["choices"]]  # noqa: E731
    first = feature(seeded)
    return {
        "n2_choices": feature(lambda: len(comp(n=2, max_tokens=4)["choices"])),
        "seed_repeats": feature(lambda: seeded() == first) if isinstance(first, list) else first,
        "logprobs": feature(lambda: len(comp(max_tokens=4, logprobs=1)["choices"][0]["logprobs"]
                                        ["token_logprobs"]) == 4),
        "echo_logprobs": feature(lambda: len(comp(max_tokens=1, echo=True, logprobs=0)["choices"][0]
                                             ["logprobs"]["token_logprobs"]) > 2),
        "prompt_logprobs": feature(lambda: comp(max_tokens=1, prompt_logprobs=0)["choices"][0]
                                   .get("prompt_logprobs") is not None),
        "chat_n2": feature(lambda: len(http_json(f"{url}/chat/completions", {
            "model": model, "messages": [{"role": "user", "content": prompt}], "n": 2,
            "max_tokens": 4, "seed": 7, "logprobs": True})["choices"])),
        "version": feature(lambda: http_json(url.rsplit("/v1", 1)[0] + "/version")["version"]),
    }


def endpoint_cmd(c: Check, help_text: str, url: str, out: Path, api: str, concurrency: int,
                 resume: bool = False) -> list[str]:
    """`amir-bench run --backend openai` with the flags of the endpoint backend this tree has.

    The server serves the model under its folder's path, so `--ckpt`/`--model` (the served name)
    and `--tokenizer` (client-side chat template, completions mode) all get that one path."""
    model = str(c.s.work / "model")
    problems, n, tokens = c.s.endpoint_shape
    cmd = [c.s.venv_python, "-m", "amir_bench.cli", "run", "--ckpt", model,
           "--backend", "openai", "--endpoint", url, "--benchmarks", "arith", "--limit",
           str(problems), "--n", str(n), "--max-new-tokens", str(tokens), "--temperature", "1.0",
           "--seed", "0", "--out", str(out)]
    optional = {"--model": model, "--api": api, "--concurrency": str(concurrency),
                "--request-timeout": "60", "--tokenizer": model}
    for flag, value in optional.items():
        if has_flag(help_text, flag):
            cmd += [flag, value]
    return cmd + (["--resume"] if resume else [])


def endpoint_precheck(c: Check) -> str | None:
    """Skip `serve` when this tree's `amir-bench run` has no endpoint backend."""
    if not has_flag(cli_help(c, "run"), "--endpoint"):
        return "`amir-bench run --help` lists no --endpoint: the endpoint backend is not in this tree"
    return None


def timed_endpoint_run(c: Check, cmd: list[str], out: Path, log: str) -> dict:
    """One endpoint run from scratch: wall time, samples/s and its record counts."""
    shutil.rmtree(out, ignore_errors=True)
    r = c.sh(cmd, log, venv=True)
    stats = run_stats(out)
    return {"wall_s": round(r.wall_s, 1), "samples_per_s": round(stats["records"] / r.wall_s, 1),
            **stats}


def kill_and_resume(c: Check, server: Server, help_text: str, ref: Path) -> dict:
    """Kill the server mid-run; the client must stop keeping its records; resume must finish them."""
    out = c.s.work / "runs" / "endpoint-killed"
    shutil.rmtree(out, ignore_errors=True)
    cmd = endpoint_cmd(c, help_text, server.url, out, "completions", concurrency=1)
    client, _ = c.spawn(cmd, "endpoint-killed-run", venv=True)
    res: dict = c.numbers.setdefault("kill_resume", {})  # partial numbers survive a failure
    end = time.monotonic() + min(120.0, c.remaining())
    while run_stats(out)["records"] < 1 and client.poll() is None and time.monotonic() < end:
        time.sleep(0.1)  # kill at the first flushed records: as early in the run as possible
    if client.poll() is not None:
        c.kill(client)
        res.update(exercised=False, why=f"the client exited {client.returncode} before the kill")
        return res
    server.kill()
    res["records_at_kill"] = run_stats(out)["records"]
    problems, n, _ = c.s.endpoint_shape
    if res["records_at_kill"] >= problems * n:
        c.kill(client)
        res.update(exercised=False, why="every record was written before the kill (run too short)")
        return res
    t0 = time.monotonic()
    try:
        res["client_rc"] = client.wait(timeout=max(1.0, min(90.0, c.remaining() - 90)))
        res["client_exit_s"] = round(time.monotonic() - t0, 1)
    except subprocess.TimeoutExpired:
        res["client_rc"], res["client_exit_s"] = None, "did not exit; killed"
    c.kill(client)
    res["records_kept"] = run_stats(out)["records"]
    res["restart_s"] = server.start("vllm-serve-restart")
    c.sh(endpoint_cmd(c, help_text, server.url, out, "completions", 1, resume=True),
         "endpoint-resume", venv=True)
    got, want = run_texts(out), run_texts(ref)
    stats = run_stats(out)
    res.update(exercised=True, records=stats["records"], duplicates=stats["duplicates"],
               keys_match=set(got) == set(want),
               identical_texts_frac=round(sum(got.get(k) == v for k, v in want.items()) / len(want), 3)
               if want else None)
    if not res["keys_match"] or stats["duplicates"]:
        raise StageFailed(f"kill-and-resume: keys match {res['keys_match']}, "
                          f"{stats['duplicates']} duplicates ({res})")
    return res


def check_counts(c: Check, got: dict) -> dict:
    """Fail unless an endpoint run recorded every (problem, sample) exactly once."""
    problems, n, _ = c.s.endpoint_shape
    if got["unique_keys"] != problems * n or got["duplicates"]:
        raise StageFailed(f"expected {problems * n} records ({problems} problems x {n}), got {got}")
    return got


def score_through_endpoint(c: Check, server: Server, help_score: str, run: Path) -> dict:
    """`amir-bench score --backend openai` on a run: teacher-forced log-probs via the server."""
    if not has_flag(help_score, "--endpoint"):
        return {"skipped": "`amir-bench score --help` lists no --endpoint"}
    cmd = [c.s.venv_python, "-m", "amir_bench.cli", "score", str(run), "--backend", "openai",
           "--endpoint", server.url] + [x for flag in ("--model", "--tokenizer")
                                        if has_flag(help_score, flag) for x in (flag, server.model)]
    r = c.sh(cmd, "endpoint-score", venv=True)
    scored = [row for _, row in iter_jsonl(run / "scores.jsonl")]
    return {"wall_s": round(r.wall_s, 1), "scored": len(scored)}


def stage_serve(c: Check) -> dict:
    """One server, then independent sub-checks; a failed one is recorded and the next still runs."""
    help_run, help_score = cli_help(c, "run"), cli_help(c, "score")
    server = Server(c, free_port())
    numbers = c.numbers
    numbers["startup_s"] = server.start("vllm-serve")
    numbers["server"] = probe_server(server.url, server.model)
    runs = c.s.work / "runs"
    ref, again, chat = (runs / "endpoint-completions", runs / "endpoint-completions-again",
                        runs / "endpoint-chat")
    failed: list[str] = []

    def sub(name: str, fn: Callable[[], dict]) -> None:
        """Run one sub-check; a failure is recorded in its numbers and the next still runs."""
        try:
            numbers[name] = fn()
        except StageTimeout:
            raise
        except StageFailed as e:
            numbers[name] = {**(numbers.get(name) or {}), "error": str(e)}
            failed.append(f"{name}: {e}")

    def completions() -> dict:
        """Two identical completions-mode runs: counts, and how many texts the seed reproduces."""
        got = check_counts(c, timed_endpoint_run(
            c, endpoint_cmd(c, help_run, server.url, ref, "completions", 8), ref, "endpoint-completions"))
        timed_endpoint_run(c, endpoint_cmd(c, help_run, server.url, again, "completions", 8), again,
                           "endpoint-completions-again")
        a, b = run_texts(ref), run_texts(again)
        return {**got, "seed_identical_frac": round(sum(b.get(k) == v for k, v in a.items()) / len(a), 3)}

    sub("completions", completions)
    if has_flag(help_run, "--api"):
        sub("chat", lambda: check_counts(c, timed_endpoint_run(
            c, endpoint_cmd(c, help_run, server.url, chat, "chat", 8), chat, "endpoint-chat")))
    else:
        numbers["chat"] = {"skipped": "`amir-bench run --help` lists no --api"}
    sub("score", lambda: score_through_endpoint(c, server, help_score, ref))
    sub("kill_resume", lambda: kill_and_resume(c, server, help_run, ref))
    if failed:
        raise StageFailed("; ".join(failed))
    return numbers


STAGES: tuple[Stage, ...] = (
    Stage("env", "interpreter, torch, CUDA, package versions", 90, stage_env),
    Stage("venv", "separate venv with the vllm extra", 300, stage_venv),
    Stage("model", "random Qwen2.5-0.5B-shaped model + tokenizer padded to its vocab", 150,
          stage_model, requires=("venv",)),
    Stage("vllm_tests", "tests/test_backend_vllm.py in the venv", 180, stage_vllm_tests,
          requires=("venv", "model")),
    Stage("vllm_run", "amir-bench run --backend vllm: arith x 64, n=8, 256 tokens", 240,
          stage_vllm_run, requires=("venv", "model")),
    Stage("serve", "vllm serve + endpoint backend: completions, chat, seed, scoring, kill/resume",
          420, stage_serve, requires=("venv", "model"), precheck=endpoint_precheck),
    Stage("eval_throughput", "perf/eval_throughput.py --gpu-shape (HF bf16)", 270,
          stage_eval_throughput, requires=("env",), precheck=env_precheck("torch", "math_verify")),
    Stage("train_step", "perf/train_step_ratio.py --gpu-shape (AMIR-GRPO / GRPO)", 300,
          stage_train_step, requires=("env",), precheck=env_precheck("torch", "trl", "math_verify")),
)


# ============================================================================ the served model


def padded_tokenizer(vocab_size: int):
    """The tests' tiny byte-level BPE tokenizer with its vocabulary padded to `vocab_size`.

    A random model samples every id of its vocabulary; an id the tokenizer cannot decode breaks
    detokenizers, so plain entries `~i~` fill ids len(tiny)..vocab_size-1 (never produced by
    encoding, always decodable). Entries live in the BPE model, not as added tokens, so the
    tokenizer loads in about a second.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from amir_bench.tiny import build_tokenizer

    tiny = build_tokenizer()
    spec = json.loads(tiny.backend_tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    for i in range(len(tiny), vocab_size):
        vocab[f"~{i}~"] = i
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
                                  eos_token=tiny.eos_token, pad_token=tiny.pad_token,
                                  bos_token=None, unk_token=None)
    tok.chat_template, tok.padding_side = tiny.chat_template, "left"
    return tok


def check_tokenizer(tok, vocab_size: int) -> dict:
    """Fail loudly unless the tokenizer has `vocab_size` ids, round-trips text, decodes the top id."""
    text = "What is 12 plus 30? Put the answer in \\boxed{}."
    ids = tok(text, add_special_tokens=False).input_ids
    top = tok.decode([vocab_size - 1])
    if len(tok) != vocab_size or tok.decode(ids) != text or top != f"~{vocab_size - 1}~":
        raise SystemExit(f"padded tokenizer broken: len {len(tok)}, top id decodes to {top!r}")
    return {"vocab": len(tok), "prompt_tokens": len(ids)}


def build_model(out: Path) -> dict:
    """perf/eval_throughput.py's Qwen2.5-0.5B-shaped checkpoint, with the padded tokenizer."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    sys.path.insert(0, str(REPO / "perf"))
    from eval_throughput import qwen05b_shaped_checkpoint

    qwen05b_shaped_checkpoint(out)
    padded_tokenizer(QWEN05B_VOCAB).save_pretrained(out)
    cfg = AutoConfig.from_pretrained(out)
    info = check_tokenizer(AutoTokenizer.from_pretrained(out), cfg.vocab_size)
    params = 0
    for f in out.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                shape = st.get_slice(k).get_shape()
                params += math.prod(shape)
    size = sum(f.stat().st_size for f in out.iterdir())
    return {**info, "params_m": round(params / 1e6, 1), "size_mb": round(size / 2**20),
            "architecture": cfg.architectures[0], "layers": cfg.num_hidden_layers,
            "hidden": cfg.hidden_size}


def check_builder() -> dict:
    """Dry-run check: the padded tokenizer builds and the checkpoint builder imports (no weights)."""
    sys.path.insert(0, str(REPO / "perf"))
    from eval_throughput import qwen05b_shaped_checkpoint

    info = check_tokenizer(padded_tokenizer(QWEN05B_VOCAB), QWEN05B_VOCAB)
    return {**info, "builder": qwen05b_shaped_checkpoint.__name__}


# ============================================================================ dry run


LAYOUT = ("amir_bench/cli.py", "amir_bench/backends/vllm.py", "amir_bench/tiny.py",
          "perf/eval_throughput.py", "perf/train_step_ratio.py", "tests/test_backend_vllm.py",
          "pyproject.toml")


def quick(cmd: list[str], timeout: float = 180.0) -> tuple[int, str]:
    """Run a short prerequisite command (offline env, bounded); (exit code, output)."""
    env = {**os.environ, **OFFLINE_ENV,
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    try:
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:.0f}s"


def wheels_report(folder: Path) -> tuple[bool, str]:
    """What a --wheels folder holds: counts, the wheels the vllm venv needs, duplicate versions."""
    if not folder.is_dir():
        return False, f"{folder} is not a folder"
    names = [w.name.split("-")[0].lower().replace("_", "-") for w in folder.glob("*.whl")]
    dups = sorted({n for n in names if names.count(n) > 1})
    need = [n for n in ("vllm", "torch", "setuptools", "wheel") if n not in names]
    ok = not need and not dups
    return ok, (f"{len(names)} wheels" + (f"; missing {', '.join(need)}" if need else "")
                + (f"; two versions of {', '.join(dups)}" if dups else ""))


def dry_run(s: Settings, stages: tuple[Stage, ...], only: set[str] | None) -> int:
    """Print the plan and check this script's own prerequisites; 0 when the required ones pass."""
    print(f"plan (global budget {s.budget_s:.0f}s; work dir {s.work}; JSON {s.out / 'gpu_check.json'}):")
    for st in stages:
        chosen = only is None or st.name in only
        need = f" needs {','.join(st.requires)}" if st.requires else ""
        print(f"  {st.name:<16} {s.limits.get(st.name, st.limit_s):>4.0f}s{need:<22} {st.title}"
              + ("" if chosen else "   [not selected]"))
    checks: list[tuple[str, bool, str, bool]] = []  # name, ok, detail, required
    checks.append(("python >= 3.10", sys.version_info >= (3, 10), sys.version.split()[0], True))
    missing = [f for f in LAYOUT if not (REPO / f).exists()]
    checks.append(("repo layout", not missing, "missing " + ", ".join(missing) if missing else "ok", True))
    pyproject = (REPO / "pyproject.toml").read_text() if (REPO / "pyproject.toml").exists() else ""
    checks.append(("vllm extra in pyproject", re.search(r"^vllm\s*=", pyproject, re.M) is not None,
                   "optional-dependencies.vllm", True))
    for script in ("perf/eval_throughput.py", "perf/train_step_ratio.py"):
        rc, out = quick([s.python, script, "--gpu-shape", "--help"])
        checks.append((f"{script} --gpu-shape --help", rc == 0 and "--gpu-shape" in out,
                       f"exit {rc}" if rc else "ok", True))
    rc, out = quick([s.python, str(Path(__file__).resolve()), "--check-builder"])
    detail = json.dumps(json_line(out)) if rc == 0 else f"exit {rc}: {last_error_line(out)}"
    checks.append(("tiny-model builder (tokenizer padded to 151,936)", rc == 0, detail, True))
    rc, out = quick([s.python, "-m", "amir_bench.cli", "run", "--help"])
    checks.append(("`amir-bench run` lists --endpoint", has_flag(out, "--endpoint"),
                   "serve stage runs" if has_flag(out, "--endpoint") else "serve stage will skip", False))
    s.work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(s.work).free / 2**30
    checks.append(("disk free at work dir", free >= 30,
                   f"{free:.0f} GiB (a vllm venv with its CUDA wheels takes several GB)", False))
    smi = shutil.which("nvidia-smi")
    checks.append(("nvidia-smi", smi is not None, smi or "not found (fine for a dry run)", False))
    if s.vllm_python:
        checks.append(("--vllm-python", Path(s.vllm_python).exists(), s.vllm_python, True))
    elif s.wheels:
        checks.append(("--wheels", *wheels_report(s.wheels), False))
    else:
        checks.append(("vllm source", False, "neither --wheels nor --vllm-python: the venv stage "
                       "needs PyPI", False))
    print("\nprerequisites:")
    for name, ok, detail, required in checks:
        mark = "ok  " if ok else ("FAIL" if required else "note")
        print(f"  [{mark}] {name}: {detail}")
    failed = [name for name, ok, _, required in checks if required and not ok]
    print("\ndry run: " + ("ready" if not failed else "NOT ready: " + ", ".join(failed)))
    return 1 if failed else 0


# ============================================================================ command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring for the stages)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for gpu_check.json, the table and the log tails "
                         "(default $OUT, else WORK/out)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/amir-gpu-check"),
                    help="scratch: the vllm venv, the model, runs, full logs")
    ap.add_argument("--python", default=sys.executable, help="interpreter for env/model/perf stages")
    ap.add_argument("--wheels", type=Path, help="install the vllm extra from this wheel folder only")
    ap.add_argument("--vllm-python", help="use this existing interpreter (with vllm) instead of a venv")
    ap.add_argument("--budget", type=float, default=540.0, help="seconds for the whole check")
    ap.add_argument("--limit", action="append", default=[], metavar="STAGE=SECONDS",
                    help="override one stage's time limit (repeatable)")
    ap.add_argument("--stages", help="comma-separated subset to run (others: skipped, not selected)")
    ap.add_argument("--problems", type=int, default=64, help="arith problems of the vllm run")
    ap.add_argument("--eval-problems", type=int, default=32, help="problems of eval_throughput")
    ap.add_argument("--train-steps", type=int, default=4, help="steps per train_step_ratio run")
    ap.add_argument("--dry-run", action="store_true", help="print the plan, check prerequisites")
    ap.add_argument("--build-model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--check-builder", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def settings_from(args: argparse.Namespace, stages: tuple[Stage, ...]) -> Settings:
    """Settings from the parsed flags; a bad --limit raises ValueError with the one-line reason."""
    names = {st.name for st in stages}
    limits = {}
    for item in args.limit:
        name, _, value = item.partition("=")
        if name not in names or not re.fullmatch(r"\d+(\.\d+)?", value):
            raise ValueError(f"--limit wants STAGE=SECONDS with STAGE one of "
                             f"{', '.join(sorted(names))}, got {item!r}")
        limits[name] = float(value)
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else args.work / "out")
    return Settings(out=out.resolve(), work=args.work.resolve(), python=args.python,
                    wheels=args.wheels.resolve() if args.wheels else None,
                    vllm_python=args.vllm_python, budget_s=args.budget, limits=limits,
                    problems=args.problems, eval_problems=args.eval_problems,
                    train_steps=args.train_steps)


def main(argv: list[str] | None = None, stages: tuple[Stage, ...] = STAGES) -> int:
    """Dry run, child modes (--build-model, --check-builder), or the check itself; the exit code."""
    args = parse_args(argv)
    if args.build_model:
        print("GPU_CHECK_JSON " + json.dumps(build_model(args.build_model)))
        return 0
    if args.check_builder:
        print("GPU_CHECK_JSON " + json.dumps(check_builder()))
        return 0
    only = None
    try:
        if args.stages:
            only = {x for x in args.stages.split(",") if x}
            unknown = only - {st.name for st in stages}
            if unknown:
                raise ValueError(f"unknown stage(s) {', '.join(sorted(unknown))}; stages: "
                                 + ", ".join(st.name for st in stages))
        s = settings_from(args, stages)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        return dry_run(s, stages, only)
    check = Check(s, list(stages))

    def on_term(signum, _frame):
        """SIGTERM (the device's timeout) ends the check like Ctrl-C: outputs kept."""
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        report = check.run(only)
    except KeyboardInterrupt as e:
        check.cleanup()
        if check.current:
            check.results[check.current] = {"status": "interrupted", "reason": f"interrupted ({e})",
                                            "numbers": check.numbers, "wall_s": 0.0, "limit_s": 0}
        check.write()
        print("[gpu_check] interrupted; numbers so far are in " + str(s.out / "gpu_check.json"))
        return 130
    print("\n" + format_table(report["stages"]))
    print(f"\nJSON: {s.out / 'gpu_check.json'}")
    return 0 if all(r["status"] in ("ok", "skipped") for r in report["stages"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
