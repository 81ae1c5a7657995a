"""OpenAI-compatible endpoint backend (`--backend openai`): sample and score a model served by
`vllm serve`, SGLang or `transformers serve`, on one server or many, through the `openai`
async client.

Each sample carries a seed derived from (run seed, problem, sample) exactly as in the HF
backend, so a server that honours `seed` reproduces a run. With `server_n`, a problem whose
samples are all missing goes out as one request with `n` (seeded from its first sample); a
server that answers with fewer choices (it ignores `n`) gets one request per sample from then
on. Completions reach `on_batch` as requests finish, in any order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

from amir_bench.backends import Decoding, Generation, Request
from amir_bench.errors import UserError

CHAT_MARK = "\x00amir-bench-chat-messages:"
THINK_END = "</think>"
FINISH = {"stop": "stop", "length": "length", "tool_calls": "stop"}  # anything else: "error"
MAX_BACKOFF_S = 30.0
FLUSH_S = 0.2  # completed samples reach the grader and the records file in batches this often


@dataclass(frozen=True)
class EndpointConfig:
    """Options of `--backend openai`, declared once; `run` and `score` map their flags here."""

    endpoints: tuple[str, ...] = ()  # base URLs, e.g. http://node1:8000 (a trailing /v1 is fine)
    model: str | None = None  # served model name; None: the one model the servers list
    api: str = "chat"  # chat: the server applies its chat template; completions: rendered here
    api_key_env: str | None = None  # NAME of the environment variable holding the key
    concurrency: int = 8  # requests in flight over all endpoints together
    request_timeout: float = 600.0  # seconds per request
    max_retries: int = 5  # per request, on connection errors, 429 and 5xx
    retry_backoff: float = 1.0  # seconds before the first retry; doubles each time (≤ 30 s)
    tokenizer: str | None = None  # client-side tokenizer (completions mode, scoring, counts)
    stop: tuple[str, ...] = ()  # extra stop strings
    split_think: bool = False  # split at `</think>` when the server sends no reasoning_content
    server_n: bool = True  # one request with `n` for a problem whose samples are all missing

    def validate(self) -> None:
        """Bad options are one-line errors before anything is sent or written."""
        if not self.endpoints:
            raise UserError("--backend openai needs --endpoint URL[,URL...]")
        for u in self.endpoints:
            if not u.startswith(("http://", "https://")):
                raise UserError(f"--endpoint {u!r}: expected http://HOST:PORT or https://...")
        if self.api not in APIS:
            raise UserError(f"--api {self.api!r}: choose one of {', '.join(APIS)}")
        if self.concurrency < 1:
            raise UserError("--concurrency must be >= 1")
        if self.request_timeout <= 0:
            raise UserError("--request-timeout must be > 0")
        if self.max_retries < 0:
            raise UserError("--max-retries must be >= 0")
        if self.api_key_env and self.api_key_env not in os.environ:
            raise UserError(f"--api-key-env {self.api_key_env}: that environment variable is "
                            f"not set")

    def api_key(self) -> str:
        """The key from the named environment variable (servers without auth accept any)."""
        return os.environ[self.api_key_env] if self.api_key_env else "EMPTY"


def base_url(url: str) -> str:
    """The client's base URL: the server root plus `/v1`."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


# ---------------------------------------------------------------------------- the servers


def probe_servers(cfg: EndpointConfig) -> tuple[EndpointConfig, dict]:
    """Ask every endpoint for its models (and version, where it reports one); returns the
    config with the served model name filled in, and the manifest entries of the run.
    A server that does not answer is a one-line error before anything is written."""
    import openai

    cfg.validate()
    listed: dict[str, list[str]] = {}
    versions: dict[str, str | None] = {}
    for url in cfg.endpoints:
        client = openai.OpenAI(base_url=base_url(url), api_key=cfg.api_key(), timeout=30.0,
                               max_retries=2)
        try:
            listed[url] = [str(m.id) for m in client.models.list().data]
            versions[url] = _server_version(client, url)
        except openai.OpenAIError as e:
            raise UserError(f"endpoint {url} did not list its models "
                            f"({one_line(e)}); is the server up?") from None
        finally:
            client.close()
    model = cfg.model or _only_model(listed)
    for url, names in listed.items():
        if model not in names:
            raise UserError(f"endpoint {url} does not serve {model!r} (it lists "
                            f"{', '.join(names) or 'nothing'})")
    cfg = dataclasses.replace(cfg, model=model)
    return cfg, manifest_entries(cfg, versions)


def _only_model(listed: dict[str, list[str]]) -> str:
    names = sorted({n for ns in listed.values() for n in ns})
    if len(names) != 1:
        raise UserError(f"the endpoints serve {len(names)} models ({', '.join(names[:6])}); "
                        f"pick one with --model")
    return names[0]


def _server_version(client: Any, url: str) -> str | None:
    """The version a server reports at /version (vLLM, SGLang); None where it has none."""
    import openai

    root = url.rstrip("/").removesuffix("/v1")
    try:
        reply = client.get(root + "/version", cast_to=object)
    except openai.OpenAIError:
        return None
    v = reply.get("version") if isinstance(reply, dict) else None
    return str(v) if v is not None else None


def manifest_entries(cfg: EndpointConfig, versions: dict[str, str | None]) -> dict:
    """Manifest keys of an endpoint run: `checkpoint` (the served model and what shapes its
    outputs, compared on --resume) and `endpoint` (where it ran; never the key itself)."""
    return {
        "checkpoint": {"path": cfg.model, "sha256": None, "api": cfg.api,
                       "stop": list(cfg.stop), "split_think": cfg.split_think},
        "endpoint": {"urls": list(cfg.endpoints), "model": cfg.model, "api": cfg.api,
                     "server_versions": versions, "api_key_env": cfg.api_key_env,
                     "concurrency": cfg.concurrency, "server_n": cfg.server_n},
    }


def one_line(e: BaseException) -> str:
    """An exception as one short line (server messages can be long or multi-line)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:300]


# ---------------------------------------------------------------------------- routing


class EndpointPool:
    """One async client per endpoint: least-loaded routing, at most `concurrency` requests in
    flight, and retries with exponential backoff on connection errors, 429 and 5xx."""

    def __init__(self, cfg: EndpointConfig):
        import openai

        self.cfg = cfg
        self.urls = list(cfg.endpoints)
        self.clients = [openai.AsyncOpenAI(base_url=base_url(u), api_key=cfg.api_key(),
                                           timeout=cfg.request_timeout, max_retries=0)
                        for u in self.urls]
        self.inflight = [0] * len(self.urls)
        self.sent = [0] * len(self.urls)
        self.down_until = [0.0] * len(self.urls)
        self.sem = asyncio.Semaphore(cfg.concurrency)

    def pick(self) -> int:
        """The endpoint with the fewest requests in flight among those not backing off."""
        now = time.monotonic()
        up = [i for i in range(len(self.urls)) if self.down_until[i] <= now]
        return min(up or range(len(self.urls)), key=lambda i: (self.inflight[i], self.sent[i]))

    async def call(self, fn: Callable[[Any], Awaitable[Any]]) -> tuple[Any, str]:
        """fn(client) on the least-loaded endpoint, retried; returns (result, endpoint url)."""
        import openai

        async with self.sem:
            for attempt in range(self.cfg.max_retries + 1):
                i = self.pick()
                self.inflight[i] += 1
                self.sent[i] += 1
                try:
                    return await fn(self.clients[i]), self.urls[i]
                except openai.APIStatusError as e:
                    if e.status_code != 429 and e.status_code < 500:
                        raise UserError(f"endpoint {self.urls[i]} refused the request "
                                        f"(HTTP {e.status_code}: {one_line(e)})") from None
                    last = (self.urls[i], e)
                except openai.APIConnectionError as e:
                    last = (self.urls[i], e)
                finally:
                    self.inflight[i] -= 1
                delay = min(MAX_BACKOFF_S, self.cfg.retry_backoff * 2 ** attempt)
                self.down_until[i] = time.monotonic() + delay
                if attempt < self.cfg.max_retries:
                    await asyncio.sleep(delay)
        url, e = last
        raise UserError(f"endpoint {url} failed {self.cfg.max_retries + 1} time(s) "
                        f"({type(e).__name__}: {one_line(e)}); what was written so far is "
                        f"kept: `run --resume` (or `score` again) continues")

    async def close(self) -> None:
        for c in self.clients:
            await c.close()


async def run_all(coros: Sequence[Awaitable[Any]]) -> list[Any]:
    """Await all; the first failure cancels the rest and is raised. Results in order."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    if not tasks:
        return []
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in tasks:
            if t in done and t.exception() is not None:
                raise t.exception()
        return [t.result() for t in tasks]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Batcher:
    """Hands completed samples to `on_batch` every FLUSH_S seconds rather than one by one:
    fewer grading calls and fsyncs, and a record is still written within FLUSH_S of its
    request completing."""

    def __init__(self, on_batch: Callable[[list], None]):
        self.on_batch = on_batch
        self.pending: list = []

    def add(self, batch: list) -> None:
        self.pending.extend(batch)

    def flush(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self.on_batch(batch)

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            self.flush()


# ---------------------------------------------------------------------------- the two APIs


@dataclass
class Choice:
    """One returned sample, before token counting."""

    text: str
    finish_reason: str
    logprobs: list[float] | None
    reasoning: str | None = None


class ChatMessages:
    """Stands in for a tokenizer in `build_prompt` in chat mode: its 'chat template' writes the
    messages as JSON, which the chat API sends as they are (the server applies the model's
    template). The plain template never calls it: its string is sent as the user turn."""

    chat_template = "rendered by the server"

    def apply_chat_template(self, messages: list[dict], tokenize: bool = False,
                            add_generation_prompt: bool = True, **_: Any) -> str:
        return CHAT_MARK + json.dumps(messages, ensure_ascii=False)


def prompt_messages(prompt: str) -> list[dict]:
    if prompt.startswith(CHAT_MARK):
        return json.loads(prompt[len(CHAT_MARK):])
    return [{"role": "user", "content": prompt}]


def _sampling_kwargs(model: str, d: Decoding, n: int, seed: int, stop: Sequence[str]) -> dict:
    """Request fields shared by both APIs; top_k travels as the server's extra parameter."""
    kw: dict[str, Any] = {"model": model, "temperature": d.temperature, "top_p": d.top_p,
                          "max_tokens": d.max_new_tokens, "seed": seed}
    if n > 1:
        kw["n"] = n
    if stop:
        kw["stop"] = list(stop)
    if d.top_k > 0:
        kw["extra_body"] = {"top_k": d.top_k}
    return kw


async def _chat(client: Any, prompt: str, kw: dict) -> tuple[list[Choice], Any]:
    resp = await client.chat.completions.create(messages=prompt_messages(prompt),
                                                logprobs=True, **kw)
    out = []
    for c in sorted(resp.choices, key=lambda c: c.index):
        msg = c.message
        reasoning = getattr(msg, "reasoning_content", None) or getattr(msg, "reasoning", None)
        lps = [t.logprob for t in c.logprobs.content] if c.logprobs and c.logprobs.content \
            else None
        out.append(Choice(msg.content or "", FINISH.get(c.finish_reason or "", "error"), lps,
                          reasoning if isinstance(reasoning, str) else None))
    return out, resp.usage


async def _completions(client: Any, prompt: str, kw: dict) -> tuple[list[Choice], Any]:
    if prompt.startswith(CHAT_MARK):
        raise UserError("completions mode got chat messages: it needs a tokenizer")
    resp = await client.completions.create(prompt=prompt, logprobs=1, **kw)
    out = []
    for c in sorted(resp.choices, key=lambda c: c.index):
        lps = c.logprobs.token_logprobs if c.logprobs and c.logprobs.token_logprobs else None
        out.append(Choice(c.text or "", FINISH.get(c.finish_reason or "", "error"), lps))
    return out, resp.usage


APIS: dict[str, Callable[[Any, str, dict], Awaitable[tuple[list[Choice], Any]]]] = {
    "chat": _chat,
    "completions": _completions,
}


def load_tokenizer(explicit: str | None, model: str | None,
                   required_for: str | None = None) -> Any:
    """A client-side tokenizer: `--tokenizer` as given, else the served model's name when it is
    a local folder or already in the Hugging Face cache (never a download for that guess).
    None when optional and unavailable; a one-line error when `required_for` says what needs it."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    name = explicit or model
    if name:
        # the guess from the model name must already be on disk: a Hub id is not downloaded
        cached_only = not explicit and not Path(name).expanduser().is_dir()
        try:
            return AutoTokenizer.from_pretrained(os.path.expanduser(name),
                                                 local_files_only=cached_only)
        except (OSError, ValueError) as e:
            if required_for and explicit:
                raise UserError(f"{required_for} needs a tokenizer; could not load {name!r} "
                                f"({one_line(e)})") from None
    if required_for:
        raise UserError(f"{required_for} needs a tokenizer: pass --tokenizer PATH (the served "
                        f"model {model!r} is neither a local folder nor in the HF cache)")
    return None


# ---------------------------------------------------------------------------- the backend


class OpenAIBackend:
    """Generation and scoring through OpenAI-compatible servers (see the module docstring)."""

    name = "openai"

    def __init__(self, checkpoint: str, endpoint: EndpointConfig | None = None,
                 **_: object):
        cfg = endpoint or EndpointConfig()
        if not cfg.model and checkpoint:
            cfg = dataclasses.replace(cfg, model=checkpoint)
        self.cfg, _entries = probe_servers(cfg)
        self.checkpoint = self.cfg.model or checkpoint
        self.counter = load_tokenizer(self.cfg.tokenizer, self.cfg.model,
                                      "--api completions" if self.cfg.api == "completions"
                                      else None)
        # what `build_prompt` renders with: the real chat template, or messages for the server
        self.tokenizer = self.counter if self.cfg.api == "completions" else ChatMessages()
        self.server_n = self.cfg.server_n
        self.score_method: str | None = None  # a key of SCORE_METHODS, found on first use

    # ------------------------------------------------------------------ sampling

    def generate(self, requests: Sequence[Request], decoding: Decoding,
                 on_batch: Callable[[list[tuple[Request, dict[int, Generation]]]], None]) -> None:
        asyncio.run(self._generate(requests, decoding, on_batch))

    async def _generate(self, requests: Sequence[Request], decoding: Decoding,
                        on_batch: Callable) -> None:
        pool, out = EndpointPool(self.cfg), Batcher(on_batch)
        units = []
        for r in requests:
            whole = self.server_n and len(r.sample_indices) == decoding.n > 1
            groups = [r.sample_indices] if whole else [(s,) for s in r.sample_indices]
            units += [self._unit(pool, r, g, decoding, out.add) for g in groups]
        work, ticker = asyncio.ensure_future(run_all(units)), asyncio.ensure_future(out.tick())
        try:
            await asyncio.wait([work, ticker], return_when=asyncio.FIRST_COMPLETED)
            if ticker.done():
                ticker.result()  # a grading or writing failure surfaces here
            work.result()
        finally:
            for t in (work, ticker):
                t.cancel()
            await asyncio.gather(work, ticker, return_exceptions=True)
            await pool.close()
            out.flush()  # what completed is written, also when a server stayed down

    async def _unit(self, pool: EndpointPool, r: Request, samples: tuple[int, ...],
                    d: Decoding, on_batch: Callable) -> None:
        """One request for `samples` of a problem; what a server leaves out of `n` is asked
        for one sample per request."""
        from amir_bench.backends.hf import row_seed

        seed = row_seed(d.seed, r.key, samples[0])
        kw = _sampling_kwargs(self.cfg.model, d, len(samples), seed, self.cfg.stop)
        (choices, usage), url = await pool.call(
            lambda client: APIS[self.cfg.api](client, r.prompt, kw))
        if not choices:
            raise UserError(f"endpoint {url} returned no choices for {r.key}")
        got = {s: self._generation(c, usage, len(choices))
               for s, c in zip(samples, choices[:len(samples)])}
        on_batch([(r, got)])
        rest = samples[len(got):]
        if rest:
            if self.server_n:
                self.server_n = False
                print(f"note: {url} returned {len(got)} of n={len(samples)} choices; "
                      f"sending one request per sample", file=sys.stderr)
            await run_all([self._unit(pool, r, (s,), d, on_batch) for s in rest])

    def _count(self, text: str) -> int | None:
        if self.counter is None:
            return None
        return len(self.counter(text, add_special_tokens=False).input_ids)

    def _generation(self, c: Choice, usage: Any, n_choices: int) -> Generation:
        """Token counts from usage (one choice), the returned log-probs, or the tokenizer."""
        text, reasoning = c.text, c.reasoning
        if reasoning is None and self.cfg.split_think and THINK_END in text:
            reasoning, _, text = text.partition(THINK_END)
            reasoning = reasoning.removeprefix("<think>")
        total = getattr(usage, "completion_tokens", None) if n_choices == 1 else None
        if total is None and c.logprobs is not None:
            total = len(c.logprobs)
        if total is None:
            total = self._count((reasoning or "") + text)
        if total is None:
            raise UserError("the server returned neither per-choice usage nor log-probs: pass "
                            "--tokenizer to count tokens, or --no-server-n")
        r_tokens = None
        if reasoning is not None:
            r_tokens = self._count(reasoning)
            details = getattr(usage, "completion_tokens_details", None)
            if r_tokens is None and n_choices == 1:
                r_tokens = getattr(details, "reasoning_tokens", None)
        lp = c.logprobs
        lp_sum = float(sum(lp)) if lp and all(x is not None for x in lp) else None
        return Generation(text=text, num_tokens=int(total), finish_reason=c.finish_reason,
                          logprob_sum=lp_sum, reasoning=reasoning, reasoning_tokens=r_tokens)

    # ------------------------------------------------------------------ scoring

    def score(self, prompts: Sequence[str], completions: Sequence[str],
              batch_size: int | None = None) -> list[list[float]]:
        """Teacher-forced log-probs through the completions API: `echo` + `logprobs` over the
        prompt+completion token ids, else vLLM's `prompt_logprobs`."""
        tok = self.counter or load_tokenizer(self.cfg.tokenizer, self.cfg.model, "scoring")
        self.counter = tok
        enc = [(tok(p, add_special_tokens=False).input_ids,
                tok(c, add_special_tokens=False).input_ids) for p, c in zip(prompts, completions)]
        return asyncio.run(self._score(enc))

    async def _score(self, enc: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        pool = EndpointPool(self.cfg)
        try:
            if self.score_method is None:
                first = next((e for e in enc if e[1]), None)
                if first is not None:
                    await self._find_score_method(pool, *first)
            return await run_all([self._score_one(pool, p, c) for p, c in enc])
        finally:
            await pool.close()

    async def _find_score_method(self, pool: EndpointPool, p: list[int], c: list[int]) -> None:
        """Try each way of getting prompt log-probs once; a server with none is an error that
        names what is missing."""
        replies = []
        for name in SCORE_METHODS:
            self.score_method = name
            try:
                if await self._score_one(pool, p, c, probing=True) is not None:
                    return
                replies.append(f"{name}: no log-probs returned")
            except UserError as e:
                replies.append(f"{name}: {e}")
        self.score_method = None
        raise UserError("cannot score through " + ", ".join(self.cfg.endpoints) +
                        ": the completions API returned no prompt log-probs with `echo` + "
                        "`logprobs` nor with vLLM's `prompt_logprobs` (" + "; ".join(replies) +
                        "); score with --backend hf or vllm")

    async def _score_one(self, pool: EndpointPool, p: list[int], c: list[int],
                         probing: bool = False) -> list[float] | None:
        """Log-probs of completion ids `c` after prompt ids `p` (one request, max_tokens 1)."""
        if not c:
            return []
        kw = {"model": self.cfg.model, "prompt": p + c, "max_tokens": 1, "temperature": 1.0,
              **SCORE_METHODS[self.score_method]}
        resp, url = await pool.call(lambda client: client.completions.create(**kw))
        lps = _prompt_logprobs(resp.choices[0], p + c) if resp.choices else None
        part = lps[len(p):len(p) + len(c)] if lps is not None else []
        if len(part) == len(c) and all(x is not None for x in part):
            return [float(x) for x in part]
        if probing:
            return None
        raise UserError(f"endpoint {url} returned no prompt log-probs for a sample "
                        f"({self.score_method})")

    def close(self) -> None:
        pass


SCORE_METHODS: dict[str, dict] = {
    "echo": {"echo": True, "logprobs": 1},
    "prompt_logprobs": {"extra_body": {"prompt_logprobs": 0}},
}


def _prompt_logprobs(choice: Any, ids: list[int]) -> list[float | None] | None:
    """Per-position log-probs of the prompt tokens from either method's answer."""
    lp = getattr(choice, "logprobs", None)
    if lp is not None and getattr(lp, "token_logprobs", None):
        return list(lp.token_logprobs)
    plp = (getattr(choice, "model_extra", None) or {}).get("prompt_logprobs")
    if not plp:
        return None
    out: list[float | None] = []
    for tid, entry in zip(ids, plp):
        if not entry:
            out.append(None)
            continue
        e = entry.get(str(tid)) or next(iter(entry.values()))
        out.append(e.get("logprob") if isinstance(e, dict) else None)
    return out


def backend_from_cli(backend: str, endpoints: str | None, **fields: Any) -> tuple[str, dict]:
    """(backend name, backend kwargs) from `run`/`score` flags: `--endpoint` selects this
    backend (with `--backend auto` or `openai`), and `--backend openai` needs it."""
    if not endpoints:
        if backend == OpenAIBackend.name:
            raise UserError("--backend openai needs --endpoint URL[,URL...]")
        return backend, {}
    if backend not in ("auto", OpenAIBackend.name):
        raise UserError(f"--endpoint is for --backend openai, not {backend!r}")
    urls = tuple(u.strip() for u in endpoints.split(",") if u.strip())
    fields["stop"] = tuple(fields.get("stop") or ())
    cfg = EndpointConfig(endpoints=urls, **fields)
    cfg.validate()
    return OpenAIBackend.name, {"endpoint": cfg}
