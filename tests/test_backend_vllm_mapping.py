"""The vLLM backend's request and result mapping, offline: a fake `vllm` module (inserted into
sys.modules by a fixture) records what the backend asks for and answers like vLLM's offline
API (`LLM.generate` -> RequestOutput with CompletionOutputs; `prompt_logprobs` for scoring).

The fake's classes accept only the keyword names of vLLM's documented API (SamplingParams,
LoRARequest, LLM engine arguments), so a renamed or misspelled argument fails here."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from amir_bench.backends import Decoding, Request, make_backend
from amir_bench.backends.vllm import problem_seed

FINISH = ("stop", "length", "abort")  # vLLM's finish reasons; "abort" must map to "error"


@dataclass
class SamplingParams:
    """The subset of vllm.SamplingParams' keyword arguments the backend may use."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int | None = 16
    seed: int | None = None
    logprobs: int | None = None
    prompt_logprobs: int | None = None


@dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str = ""


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    finish_reason: str | None


@dataclass
class RequestOutput:
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: list[dict[int, Logprob] | None] | None
    outputs: list[CompletionOutput] = field(default_factory=list)


class FakeTokenizer:
    """Bytes as token ids."""

    chat_template = None

    def __call__(self, text: str, add_special_tokens: bool = True) -> Any:
        return types.SimpleNamespace(input_ids=list(text.encode()))


def prompt_lp(position: int) -> float:
    return -0.01 * position - 0.5


class FakeLLM:
    """Records its construction and every generate call; outputs depend only on (prompt,
    seed, sample index), as seeded vLLM sampling does."""

    instances: list["FakeLLM"] = []

    def __init__(self, model: str, tokenizer: str | None = None, tensor_parallel_size: int = 1,
                 seed: int = 0, enable_lora: bool = False, max_lora_rank: int = 16,
                 gpu_memory_utilization: float = 0.9):
        self.kwargs = dict(model=model, tokenizer=tokenizer,
                           tensor_parallel_size=tensor_parallel_size, seed=seed,
                           enable_lora=enable_lora, max_lora_rank=max_lora_rank,
                           gpu_memory_utilization=gpu_memory_utilization)
        self.calls: list[dict] = []
        FakeLLM.instances.append(self)

    def get_tokenizer(self) -> FakeTokenizer:
        return FakeTokenizer()

    def generate(self, prompts: list, sampling_params: Any, lora_request: Any = None,
                 use_tqdm: bool = True) -> list[RequestOutput]:
        params = sampling_params if isinstance(sampling_params, list) \
            else [sampling_params] * len(prompts)
        assert len(params) == len(prompts)
        self.calls.append({"prompts": list(prompts), "params": params, "lora": lora_request})
        return [self._answer(p, sp) for p, sp in zip(prompts, params)]

    def _answer(self, prompt: Any, sp: SamplingParams) -> RequestOutput:
        if isinstance(prompt, dict):  # TokensPrompt: teacher forcing for scoring
            ids = prompt["prompt_token_ids"]
            plp = None if sp.prompt_logprobs is None else \
                [None] + [{t: Logprob(prompt_lp(j), 1), 0: Logprob(-99.0, 2)}
                          for j, t in enumerate(ids) if j > 0]
            return RequestOutput(None, ids, plp, [CompletionOutput(0, "x", [1], -1.0, "length")])
        outs = [CompletionOutput(i, f"{prompt}|{sp.seed}|{i}", list(range(i + 2)),
                                 -0.25 * (i + 1), FINISH[i % 3]) for i in range(sp.n)]
        return RequestOutput(prompt, list(prompt.encode()), None, outs)


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = FakeLLM, SamplingParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    vllm.lora, lora.request = lora, request
    for name, mod in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, mod)
    FakeLLM.instances = []
    return FakeLLM


def _checkpoint(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "tokenizer_config.json").write_text("{}")
    return d


def _collect(be, reqs, dec) -> dict:
    got: dict = {}
    be.generate(reqs, dec, lambda b: got.update({(r.key, s): g for r, gens in b
                                                 for s, g in gens.items()}))
    return got


def test_sampling_params_seeds_and_results(fake_vllm, tmp_path):
    ckpt = _checkpoint(tmp_path / "model")
    be = make_backend("vllm", str(ckpt), seed=5, batch_size=2)
    llm = fake_vllm.instances[-1]
    assert llm.kwargs["model"] == str(ckpt) and llm.kwargs["tokenizer"] == str(ckpt)
    assert llm.kwargs["seed"] == 5 and llm.kwargs["enable_lora"] is False
    assert llm.kwargs["tensor_parallel_size"] == 1 and be.tokenizer is not None
    dec = Decoding(n=4, temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=33, seed=11)
    reqs = [Request("math500/a", "Pa", (0, 1, 2, 3)), Request("math500/b", "Pb", (1, 3)),
            Request("math500/c", "Pc", (2,))]
    got = _collect(be, reqs, dec)

    assert [len(c["prompts"]) for c in llm.calls] == [2, 1]  # batch_size prompts per call
    params = [p for c in llm.calls for p in c["params"]]
    assert all(c["lora"] is None for c in llm.calls)
    for r, sp in zip(reqs, params):
        assert (sp.n, sp.temperature, sp.top_p, sp.max_tokens, sp.logprobs) == (4, 0.7, 0.9, 33, 0)
        assert sp.top_k == -1  # 0 = off in amir-bench is -1 in vLLM
        assert sp.seed == problem_seed(11, r.key)
    assert len({sp.seed for sp in params}) == 3  # each problem its own seed

    # only the requested (missing) sample indices come back, mapped field by field
    assert set(got) == {("math500/a", s) for s in range(4)} | \
        {("math500/b", 1), ("math500/b", 3), ("math500/c", 2)}
    g = got[("math500/b", 3)]
    assert g.text == f"Pb|{problem_seed(11, 'math500/b')}|3"
    assert g.num_tokens == 5 and g.logprob_sum == -1.0
    assert [got[("math500/a", s)].finish_reason for s in range(4)] == \
        ["stop", "length", "error", "stop"]

    # a problem's completions do not depend on which problems share the call
    alone = make_backend("vllm", str(ckpt), seed=5)
    again = _collect(alone, [reqs[1]], dec)
    assert {k: v.text for k, v in again.items()} == \
        {k: v.text for k, v in got.items() if k[0] == "math500/b"}


def test_lora_adapter_is_a_lora_request(fake_vllm, tmp_path):
    base = _checkpoint(tmp_path / "base")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(base), "r": 128}))
    be = make_backend("vllm", str(adapter))
    llm = fake_vllm.instances[-1]
    assert llm.kwargs["model"] == str(base) and llm.kwargs["tokenizer"] == str(base)
    assert llm.kwargs["enable_lora"] is True and llm.kwargs["max_lora_rank"] == 128
    _collect(be, [Request("k", "P", (0,))], Decoding(n=1, temperature=1.0))
    lr = llm.calls[-1]["lora"]
    assert (lr.lora_name, lr.lora_int_id, lr.lora_path) == ("adapter", 1, str(adapter))
    be.score(["p"], ["c"])
    assert llm.calls[-1]["lora"] is lr  # scoring uses the adapter too


def test_score_reads_prompt_logprobs_of_the_completion_tokens(fake_vllm, tmp_path):
    be = make_backend("vllm", str(_checkpoint(tmp_path / "model")))
    llm = fake_vllm.instances[-1]
    out = be.score(["ab", "xyz"], ["cd", "w"])
    call = llm.calls[-1]
    assert call["prompts"] == [{"prompt_token_ids": list(b"abcd")},
                               {"prompt_token_ids": list(b"xyzw")}]
    for sp in call["params"]:
        assert sp.prompt_logprobs == 0 and sp.max_tokens == 1 and sp.temperature == 1.0
    # completion tokens sit at positions len(prompt)..: their own entries, not the other token's
    assert out == [[prompt_lp(2), prompt_lp(3)], [prompt_lp(3)]]
