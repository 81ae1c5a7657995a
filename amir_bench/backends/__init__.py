"""Generation backends: one small protocol, a registry of implementations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence


@dataclass(frozen=True)
class Decoding:
    """How to sample, declared once: `run` takes its flags' defaults and help from these fields
    (`--max-new-tokens` for `max_new_tokens`; see `amir_bench.options.cli_option`), and the run
    manifest records them. `n` here is the fallback when neither `--n`, a preset nor the
    benchmark's `default_n` gives one."""

    n: int = field(default=8, metadata={"help": "samples per problem of every benchmark; "
                                                "unset: each one's preset n, else its default_n, "
                                                "else this"})
    temperature: float = field(default=0.6, metadata={"help": "sampling temperature (0 = greedy)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass, in (0, 1]"})
    top_k: int = field(default=0, metadata={"help": "top-k sampling (0 = off)"})
    max_new_tokens: int = field(default=1024, metadata={"help": "generation budget per sample"})
    seed: int = field(default=0, metadata={"help": "sampling seed (per-sample seeds derive "
                                                   "from it)"})


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
    """What run, score and the warm start use of a backend; `tokenizer` renders chat templates
    (None for a backend that takes plain text)."""

    name: str
    checkpoint: str
    tokenizer: Any

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
