"""`--backend openai` against a REAL OpenAI-compatible server: `transformers serve` started on
127.0.0.1 with the tiny model, CPU only.

What `transformers serve` (5.x) lacks, and what these tests check instead:
- `n`: ignored (one choice comes back) -> the client notices and sends one request per sample.
- `logprobs`: ignored -> `gen_logprob_sum` is null and token counts come from `usage`.
- `echo` / `prompt_logprobs` (and token-id prompts): absent -> `score --backend openai` stops
  with a one-line error naming what is missing.
- `seed`: honoured only as the process-wide torch seed, so runs reproduce at --concurrency 1
  (checked) but not when requests overlap.
- `reasoning_content`: only for models whose chat template has a reasoning format; the tiny
  model has none, so the reasoning split is checked on returned choices directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from amir_bench.backends.endpoint import (Choice, EndpointConfig, EndpointPool, OpenAIBackend,
                                          backend_from_cli, run_all)
from amir_bench.cli import main
from amir_bench.errors import UserError
from amir_bench.records import read_samples
from servers import Server, free_port, serve_available

BASE = ["--benchmarks", "arith", "--max-new-tokens", "8", "--temperature", "1.0",
        "--grade-timeout", "5", "--request-timeout", "120"]


def _keys(run: Path) -> list[tuple]:
    return sorted(r.key for r in read_samples(run / "samples.jsonl"))


@pytest.fixture(scope="module")
def server(tiny_ckpt, tmp_path_factory):
    if not serve_available():
        pytest.skip("transformers[serving] is not installed (`make setup` installs it)")
    srv = Server(tiny_ckpt, tmp_path_factory.mktemp("serve") / "server.log").start()
    yield srv
    srv.stop()


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["run", *args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


# ---------------------------------------------------------------- no server needed


def test_cli_options_map_to_one_config_and_bad_ones_are_errors():
    name, kw = backend_from_cli("auto", "http://a:1, http://b:2/v1", model=None,
                                concurrency=3, stop=["\n\n"])
    assert name == "openai"
    assert kw["endpoint"] == EndpointConfig(endpoints=("http://a:1", "http://b:2/v1"),
                                            concurrency=3, stop=("\n\n",))
    assert backend_from_cli("hf", None) == ("hf", {})
    for args, msg in [(("openai", None), "needs --endpoint"),
                      (("hf", "http://a:1"), "is for --backend openai"),
                      (("auto", "a:1"), "expected http://"),
                      (("auto", "http://a:1", {"api": "responses"}), "choose one of chat"),
                      (("auto", "http://a:1", {"concurrency": 0}), "--concurrency"),
                      (("auto", "http://a:1", {"api_key_env": "AMIR_BENCH_UNSET_KEY_VAR"}),
                       "not set")]:
        with pytest.raises(UserError, match=msg):
            backend_from_cli(*args[:2], **(args[2] if len(args) > 2 else {}))


def _backend(tokenizer=None, split_think=False) -> OpenAIBackend:
    """A backend object for the pure response-mapping methods (no server contacted)."""
    be = OpenAIBackend.__new__(OpenAIBackend)
    be.cfg = EndpointConfig(endpoints=("http://127.0.0.1:1",), split_think=split_think)
    be.counter = tokenizer
    return be


class _Usage:
    def __init__(self, completion_tokens, reasoning_tokens=None):
        self.completion_tokens = completion_tokens
        self.completion_tokens_details = type("D", (), {"reasoning_tokens": reasoning_tokens})()


def test_reasoning_parts_and_token_counts(tiny_ckpt):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_ckpt)
    text = "<think>2+2 is 4</think> The answer is \\boxed{4}"
    # client-side split: reasoning and answer kept apart, reasoning tokens counted
    g = _backend(tok, split_think=True)._generation(Choice(text, "stop", None), _Usage(30), 1)
    assert (g.reasoning, g.text) == ("2+2 is 4", " The answer is \\boxed{4}")
    assert g.num_tokens == 30 and g.reasoning_tokens == len(tok("2+2 is 4").input_ids)
    # no split requested: the completion is the text as returned
    g = _backend(tok)._generation(Choice(text, "stop", None), _Usage(30), 1)
    assert g.text == text and g.reasoning is None and g.reasoning_tokens is None
    # server-side reasoning_content wins; without a tokenizer usage's details count it
    g = _backend(None)._generation(Choice("\\boxed{4}", "length", [-0.5, -1.0], "thinking"),
                                   _Usage(12, reasoning_tokens=9), 1)
    assert (g.reasoning, g.reasoning_tokens, g.text) == ("thinking", 9, "\\boxed{4}")
    assert g.num_tokens == 12 and g.logprob_sum == -1.5 and g.finish_reason == "length"
    # several choices in one answer: per-choice counts from log-probs, else the tokenizer
    g = _backend(None)._generation(Choice("abc", "stop", [-0.1] * 5), _Usage(40), 4)
    assert g.num_tokens == 5
    g = _backend(tok)._generation(Choice("abc", "stop", None), _Usage(40), 4)
    assert g.num_tokens == len(tok("abc").input_ids)
    with pytest.raises(UserError, match="--tokenizer"):
        _backend(None)._generation(Choice("abc", "stop", None), _Usage(40), 4)


def test_echo_logprobs_of_the_completion_tokens_are_sliced_out():
    from openai.types import Completion

    from amir_bench.backends.endpoint import _prompt_logprobs

    ids = [5, 6, 7, 8, 9]  # prompt 5 6 | completion 7 8 9, then one generated token
    resp = Completion.model_validate({
        "id": "x", "object": "text_completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "text": "", "finish_reason": "length", "logprobs": {
            "tokens": ["a", "b", "c", "d", "e", "f"], "text_offset": [0, 1, 2, 3, 4, 5],
            "token_logprobs": [-9.0, -1.0, -0.5, -0.25, -2.0, -3.0],
            "top_logprobs": None}}]})
    lps = _prompt_logprobs(resp.choices[0], ids)
    assert lps[2:5] == [-0.5, -0.25, -2.0]


def test_least_loaded_routing():
    import asyncio

    async def go():
        pool = EndpointPool(EndpointConfig(endpoints=("http://a:1", "http://b:1", "http://c:1")))
        pool.inflight = [2, 0, 1]
        first = pool.pick()
        pool.down_until[1] = time.monotonic() + 60  # backing off after a failure
        second = pool.pick()
        await pool.close()
        return first, second

    assert asyncio.run(go()) == (1, 2)


class _Faulty(BaseHTTPRequestHandler):
    """Answers every request with one fixed HTTP status (fault injection, not an API)."""

    status = 503
    hits = 0

    def do_POST(self):  # noqa: N802
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"error": {"message": "injected"}}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.mark.parametrize("status,calls", [(503, 3), (429, 3), (400, 1)])
def test_retries_on_5xx_and_429_but_not_on_400(status, calls):
    import asyncio

    handler = type("H", (_Faulty,), {"status": status, "hits": 0})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    cfg = EndpointConfig(endpoints=(f"http://127.0.0.1:{httpd.server_address[1]}",),
                         max_retries=2, retry_backoff=0.01)

    async def go():
        pool = EndpointPool(cfg)
        try:
            await run_all([pool.call(lambda c: c.completions.create(
                model="m", prompt="x", max_tokens=1))])
        finally:
            await pool.close()

    try:
        with pytest.raises(UserError) as e:
            asyncio.run(go())
    finally:
        httpd.shutdown()
    assert handler.hits == calls
    assert ("failed 3 time(s)" if calls == 3 else f"HTTP {status}") in str(e.value)


def test_refused_connections_are_one_line_errors_and_keep_the_run(tmp_path, capsys, tiny_ckpt):
    dead = f"http://127.0.0.1:{free_port()}"
    run = tmp_path / "r"
    rc, _, err = _run(capsys, "--endpoint", dead, "--out", str(run), *BASE, "--limit", "1")
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: endpoint " + dead)
    assert "is the server up?" in err and not run.exists()


# ---------------------------------------------------------------- a real transformers serve


@pytest.mark.slow
def test_chat_mode_n2_records_manifest_and_n_fallback(server, tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "chat"
    rc, _, err = _run(capsys, "--endpoint", server.url, "--out", str(out), "--n", "2",
                      "--limit", "3", *BASE)
    assert rc == 0, err
    recs = read_samples(out / "samples.jsonl")
    assert sorted((r.problem_id, r.sample_idx) for r in recs) == \
        [(f"arith-test-{i:05d}", s) for i in range(3) for s in range(2)]
    for r in recs:
        assert r.finish_reason in ("stop", "length") and 1 <= r.num_tokens <= 8
        assert (r.finish_reason == "length") == (r.num_tokens == 8)
        assert r.gen_logprob_sum is None  # transformers serve ignores `logprobs`
        assert r.reasoning is None and r.grade_status in ("ok", "no_answer")
    # transformers serve ignores `n`: the client falls back to one request per sample
    assert "returned 1 of n=2 choices; sending one request per sample" in err
    m = json.loads((out / "manifest.json").read_text())
    assert m["backend"] == "openai"
    assert m["checkpoint"] == {"path": str(tiny_ckpt), "sha256": None, "api": "chat",
                               "stop": [], "split_think": False}
    assert m["endpoint"]["urls"] == [server.url] and m["endpoint"]["model"] == str(tiny_ckpt)
    assert m["endpoint"]["server_versions"] == {server.url: None}  # no /version endpoint
    assert json.loads((out / "summary.json").read_text())["arith"]["samples"] == 6


class _FlakyProxy(BaseHTTPRequestHandler):
    """Forwards to the real server, but answers the first `fail` POSTs with 503 (a node that
    is briefly overloaded)."""

    upstream = ""
    fail = 0
    failed = 0
    forwarded = 0

    def _relay(self, body: bytes | None) -> None:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.upstream + self.path, data=body,
                                     method=self.command,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                status, data = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        type(self).forwarded += 1
        self._send(status, data)

    def _send(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self._relay(None)

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if type(self).failed < self.fail:
            type(self).failed += 1
            return self._send(503, b'{"error": {"message": "injected overload"}}')
        self._relay(body)

    def log_message(self, *a):
        pass


@pytest.mark.slow
def test_two_endpoints_one_failing_for_a_while(server, tmp_path, capsys):
    proxy = type("P", (_FlakyProxy,), {"upstream": server.url, "fail": 2})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), proxy)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    flaky = f"http://127.0.0.1:{httpd.server_address[1]}"
    out = tmp_path / "two"
    try:
        rc, _, err = _run(capsys, "--endpoint", f"{flaky},{server.url}", "--concurrency", "2",
                          "--max-retries", "2", "--no-server-n", "--out", str(out), "--n", "1",
                          "--limit", "6", *BASE)
    finally:
        httpd.shutdown()
    assert rc == 0, err
    assert proxy.failed == 2  # both 503s were retried, and the run still completed
    assert _keys(out) == [("arith", f"arith-test-{i:05d}", 0) for i in range(6)]
    assert json.loads((out / "manifest.json").read_text())["endpoint"]["urls"] == \
        [flaky, server.url]


@pytest.mark.slow
def test_completions_mode_and_plain_template(server, tiny_ckpt, tmp_path, capsys):
    for api, template in [("completions", "boxed"), ("completions", "plain"),
                          ("chat", "plain")]:
        out = tmp_path / f"{api}-{template}"
        rc, _, err = _run(capsys, "--endpoint", server.url, "--api", api, "--template",
                          template, "--model", str(tiny_ckpt), "--out", str(out), "--n", "1",
                          "--limit", "2", *BASE)
        assert rc == 0, err
        assert _keys(out) == [("arith", f"arith-test-{i:05d}", 0) for i in range(2)]
        assert json.loads((out / "manifest.json").read_text())["checkpoint"]["api"] == api


@pytest.mark.slow
def test_concurrency_1_and_8_same_keys_and_seeded_reproduction(server, tmp_path, capsys):
    runs = {}
    for name, k in [("c1a", 1), ("c1b", 1), ("c8", 8)]:
        out = tmp_path / name
        rc, _, err = _run(capsys, "--endpoint", server.url, "--concurrency", str(k),
                          "--no-server-n", "--out", str(out), "--n", "2", "--limit", "4", *BASE)
        assert rc == 0, err
        runs[name] = read_samples(out / "samples.jsonl")
    keys = {n: sorted(r.key for r in recs) for n, recs in runs.items()}
    assert keys["c1a"] == keys["c8"] and len(keys["c8"]) == len(set(keys["c8"])) == 8
    # one request at a time, transformers serve's process-wide seed makes the run reproduce
    text = {n: {r.key: r.completion for r in recs} for n, recs in runs.items()}
    assert text["c1a"] == text["c1b"]
    # shards of the same run merge to the same keys
    shards = [tmp_path / f"s{i}" for i in range(2)]
    for i, d in enumerate(shards):
        rc, _, err = _run(capsys, "--endpoint", server.url, "--shard", f"{i}/2", "--no-server-n",
                          "--out", str(d), "--n", "2", "--limit", "4", *BASE)
        assert rc == 0, err
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "merged")]) == 0
    assert _keys(tmp_path / "merged") == keys["c8"]


@pytest.mark.slow
def test_api_key_never_reaches_a_file_or_the_output(server, tmp_path, capsys, monkeypatch):
    secret = "sk-amir-bench-test-" + os.urandom(8).hex()
    monkeypatch.setenv("AMIR_BENCH_TEST_KEY", secret)
    out = tmp_path / "keyed"
    rc, so, se = _run(capsys, "--endpoint", server.url, "--api-key-env", "AMIR_BENCH_TEST_KEY",
                      "--out", str(out), "--n", "1", "--limit", "2", *BASE)
    assert rc == 0, se
    assert json.loads((out / "manifest.json").read_text())["endpoint"]["api_key_env"] == \
        "AMIR_BENCH_TEST_KEY"
    for f in out.rglob("*"):
        if f.is_file():
            assert secret not in f.read_text(errors="replace"), f
    assert secret not in so + se and secret not in server.log.read_text(errors="replace")


@pytest.mark.slow
def test_score_names_what_the_server_lacks(server, tmp_path, capsys):
    out = tmp_path / "toscore"
    assert _run(capsys, "--endpoint", server.url, "--out", str(out), "--n", "1", "--limit",
                "1", *BASE)[0] == 0
    before = sorted(p.name for p in out.iterdir())
    rc = main(["score", str(out), "--backend", "openai", "--endpoint", server.url])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: cannot score through " + server.url)
    assert "`echo` + `logprobs`" in err and "`prompt_logprobs`" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir() if p.stat().st_size) == before


@pytest.mark.slow
def test_server_killed_mid_run_then_resume_matches_an_uninterrupted_run(tiny_ckpt, tmp_path,
                                                                         capsys):
    if not serve_available():
        pytest.skip("transformers[serving] is not installed (`make setup` installs it)")
    args = ["--n", "2", "--limit", "16", "--concurrency", "1", "--no-server-n",
            "--max-retries", "1", "--benchmarks", "arith", "--max-new-tokens", "24",
            "--temperature", "1.0", "--request-timeout", "120"]
    srv = Server(tiny_ckpt, tmp_path / "server.log").start()
    try:
        full = tmp_path / "full"
        rc, _, err = _run(capsys, "--endpoint", srv.url, "--out", str(full), *args)
        assert rc == 0, err
        cut = tmp_path / "cut"
        cmd = [sys.executable, "-m", "amir_bench.cli", "run", "--endpoint", srv.url,
               "--out", str(cut), *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=dict(os.environ))
        samples = cut / "samples.jsonl"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if samples.exists() and samples.read_text().count("\n") >= 2:
                break
            time.sleep(0.02)
        srv.kill()
        err = proc.communicate(timeout=600)[1]
        kept = read_samples(samples)
        assert proc.returncode == 2, err
        assert [ln for ln in err.splitlines() if ln.startswith("error:")] == \
            [err.strip().splitlines()[-1]] and "Traceback" not in err
        assert f"endpoint {srv.url} failed 2 time(s)" in err and "--resume" in err
        assert 2 <= len(kept) < 32
        srv.start()  # the same port again
        rc, _, err = _run(capsys, "--endpoint", srv.url, "--out", str(cut), "--resume", *args)
        assert rc == 0, err
    finally:
        srv.stop()
    resumed = read_samples(samples)
    assert resumed[:len(kept)] == kept  # nothing written before was touched
    assert sorted(r.key for r in resumed) == _keys(full) and len(resumed) == 32
