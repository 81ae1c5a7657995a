"""vLLM backend (optional extra `vllm`, CUDA only), written against vLLM's documented API:
`LLM(model, tensor_parallel_size, seed, enable_lora)`, `SamplingParams(n, temperature, top_p,
top_k, max_tokens, seed, logprobs=0)`, `LoRARequest(name, id, path)`.

Each problem gets its own SamplingParams seed derived from (run seed, problem key), so a
problem's n completions do not depend on which problems share the call; a resumed problem
is regenerated whole and only its missing sample indices are kept.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Sequence

from amir_bench.backends import Decoding, Generation, Request
from amir_bench.errors import UserError


def problem_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{key}".encode()).digest()[:4], "little")


class VLLMBackend:
    name = "vllm"

    def __init__(self, checkpoint: str, tensor_parallel_size: int = 1, seed: int = 0,
                 batch_size: int | None = None, gpu_memory_utilization: float = 0.9,
                 max_lora_rank: int = 64, **_: object):
        try:
            from vllm import LLM
        except ImportError:
            raise UserError("the vllm backend needs the extra: pip install 'amir-bench[vllm]' "
                            "(CUDA only); use --backend hf otherwise") from None
        from amir_bench.backends.hf import resolve_checkpoint

        self.checkpoint = checkpoint
        src, adapter, tok_src = resolve_checkpoint(checkpoint)
        self.lora = None
        if adapter:
            from vllm.lora.request import LoRARequest
            self.lora = LoRARequest("adapter", 1, adapter)
            rank = json.loads((Path(adapter) / "adapter_config.json").read_text()).get("r", 16)
            max_lora_rank = max(max_lora_rank, int(rank))
        self.llm = LLM(model=src, tokenizer=tok_src, tensor_parallel_size=tensor_parallel_size,
                       seed=seed, enable_lora=adapter is not None, max_lora_rank=max_lora_rank,
                       gpu_memory_utilization=gpu_memory_utilization)
        self.tokenizer = self.llm.get_tokenizer()
        self.batch_size = batch_size  # prompts per generate call (None: all at once)

    def _params(self, decoding: Decoding, seed: int):
        from vllm import SamplingParams
        return SamplingParams(n=decoding.n, temperature=decoding.temperature,
                              top_p=decoding.top_p,
                              top_k=decoding.top_k if decoding.top_k > 0 else -1,
                              max_tokens=decoding.max_new_tokens, seed=seed, logprobs=0)

    def generate(self, requests: Sequence[Request], decoding: Decoding,
                 on_batch: Callable[[list[tuple[Request, dict[int, Generation]]]], None]) -> None:
        step = self.batch_size or max(1, len(requests))
        for k in range(0, len(requests), step):
            chunk = list(requests[k:k + step])
            params = [self._params(decoding, problem_seed(decoding.seed, r.key)) for r in chunk]
            outs = self.llm.generate([r.prompt for r in chunk], params, lora_request=self.lora,
                                     use_tqdm=False)
            batch = []
            for r, o in zip(chunk, outs):
                gens = {}
                for s in r.sample_indices:
                    c = o.outputs[s]
                    finish = c.finish_reason if c.finish_reason in ("stop", "length") else "error"
                    gens[s] = Generation(text=c.text, num_tokens=len(c.token_ids),
                                         finish_reason=finish,
                                         logprob_sum=c.cumulative_logprob)
                batch.append((r, gens))
            on_batch(batch)

    def score(self, prompts: Sequence[str], completions: Sequence[str],
              batch_size: int | None = None) -> list[list[float]]:
        """Teacher-forced log-probs through prompt_logprobs over prompt+completion tokens."""
        from vllm import SamplingParams

        tok = self.tokenizer
        inputs, spans = [], []
        for p, c in zip(prompts, completions):
            pi = tok(p, add_special_tokens=False).input_ids
            ci = tok(c, add_special_tokens=False).input_ids
            inputs.append({"prompt_token_ids": pi + ci})
            spans.append((len(pi), ci))
        params = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0)
        outs = self.llm.generate(inputs, params, lora_request=self.lora, use_tqdm=False)
        result = []
        for o, (start, ci) in zip(outs, spans):
            plp = o.prompt_logprobs or []
            result.append([float(plp[start + j][tid].logprob) for j, tid in enumerate(ci)])
        return result

    def close(self) -> None:
        del self.llm
