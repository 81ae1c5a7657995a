"""Generation backends: one small protocol, a registry of implementations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence


@dataclass(frozen=True)
class Decoding:
    n: int = 8
    temperature: float = 0.6
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 1024
    seed: int = 0


@dataclass
class Generation:
    text: str  # the completion only, never the prompt
    num_tokens: int
    finish_reason: str  # "stop" | "length" | "error"
    logprob_sum: float | None  # sampled tokens under the sampling distribution
    token_ids: list[int] | None = None  # sampled ids incl. the stop token (not persisted)
    reasoning: str | None = None  # a reasoning model's thinking part; `text` is the answer
    reasoning_tokens: int | None = None  # tokens of `reasoning` (included in num_tokens)


@dataclass(frozen=True)
class Request:
    """One prompt to sample from; `key` identifies it for seeding (problem id)."""

    key: str
    prompt: str
    sample_indices: tuple[int, ...]  # which of the n samples to produce (resume fills gaps)


class Backend(Protocol):
    name: str
    checkpoint: str

    def generate(self, requests: Sequence[Request], decoding: Decoding,
                 on_batch: Callable[[list[tuple[Request, dict[int, Generation]]]], None]
                 ) -> None:
        """Sample every requested (prompt, sample_idx); call on_batch as batches finish.

        Completions for a given (key, sample_idx, seed) do not depend on which other
        requests share the call, so a resumed run reproduces an uninterrupted one."""

    def score(self, prompts: Sequence[str], completions: Sequence[str],
              batch_size: int | None = None) -> list[list[float]]:
        """Teacher-forced per-token log-probs (temperature 1) of each completion given its
        prompt; one list of floats per completion, one float per completion token."""

    def close(self) -> None: ...


# name -> "module:class"; imported lazily (vLLM is an optional CUDA-only extra)
BACKENDS: dict[str, str] = {
    "hf": "amir_bench.backends.hf:HFBackend",
    "vllm": "amir_bench.backends.vllm:VLLMBackend",
    "openai": "amir_bench.backends.endpoint:OpenAIBackend",  # OpenAI-compatible servers
}


def vllm_available() -> bool:
    try:
        import importlib.util

        import torch
        return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()
    except Exception:
        return False


def resolve_backend_name(name: str) -> str:
    """`auto` picks vLLM when it is installed and CUDA is present, else HF."""
    from amir_bench.errors import UserError

    if name == "auto":
        return "vllm" if vllm_available() else "hf"
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose one of auto, {', '.join(BACKENDS)}")
    return name


def make_backend(name: str, checkpoint: str, **kw) -> Backend:
    import importlib

    mod, cls = BACKENDS[resolve_backend_name(name)].split(":")
    return getattr(importlib.import_module(mod), cls)(checkpoint, **kw)
