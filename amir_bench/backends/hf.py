"""Hugging Face transformers backend: batched sampling across problems, and scoring.

Sampling is row-deterministic: each (problem, sample_idx, seed) row draws its Gumbel noise
from a counter-based hash of (row seed, step, token id), and `generate` runs greedy on
the perturbed log-probs (the Gumbel-max trick samples exactly from the softmax). So a
completion does not depend on which rows share its batch, and a resumed run reproduces an
uninterrupted one. Temperature, top-k and top-p use transformers' own logits warpers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Callable, Sequence

import torch

from amir_bench.backends import Decoding, Generation, Request
from amir_bench.backends.prefix import common_prefix_len, forward_after_prefix, prefill_distinct
from amir_bench.errors import UserError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")

# splitmix64 constants as signed int64 (torch has no uint64 arithmetic)
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)
_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_M2 = 0x94D049BB133111EB - (1 << 64)


def _lsr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift on int64."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def splitmix64(x: torch.Tensor) -> torch.Tensor:
    z = x + _GOLDEN
    z = (z ^ _lsr(z, 30)) * _M1
    z = (z ^ _lsr(z, 27)) * _M2
    return z ^ _lsr(z, 31)


def row_seed(seed: int, key: str, sample_idx: int) -> int:
    """A 62-bit seed per (run seed, problem key, sample index)."""
    h = hashlib.sha256(f"{seed}\0{key}\0{sample_idx}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 62) - 1)


def gumbel_noise(seeds: torch.Tensor, step: int, vocab: int) -> torch.Tensor:
    """(B, V) standard Gumbel noise, a pure function of (seed, step, token id)."""
    offset = (step * 0x9E3779B97F4A7C15) % (1 << 64)
    offset -= (1 << 64) if offset >= (1 << 63) else 0  # as signed int64
    base = splitmix64(seeds + offset)  # (B,)
    ids = torch.arange(vocab, device=seeds.device, dtype=torch.int64)
    h = splitmix64(base[:, None] + ids[None, :])  # (B, V)
    u = (_lsr(h, 40).to(torch.float32) + 0.5) / float(1 << 24)  # (0, 1)
    return -torch.log(-torch.log(u))


class SeededSampler:
    """A logits processor that turns greedy decoding into per-row seeded sampling.

    It applies temperature / top-k / top-p (transformers' warpers), samples with
    row-seeded Gumbel-max, records log p(sampled token) under the sampling distribution,
    and returns scores whose argmax is the sampled token.
    """

    def __init__(self, seeds: Sequence[int], decoding: Decoding, prompt_len: int,
                 device: torch.device):
        from transformers.generation.logits_process import (TemperatureLogitsWarper,
                                                            TopKLogitsWarper, TopPLogitsWarper)
        self.seeds = torch.tensor(list(seeds), dtype=torch.int64, device=device)  # (B,)
        self.greedy = decoding.temperature <= 0
        self.warpers = []
        if not self.greedy:
            if decoding.temperature != 1.0:
                self.warpers.append(TemperatureLogitsWarper(decoding.temperature))
            if decoding.top_k and decoding.top_k > 0:
                self.warpers.append(TopKLogitsWarper(decoding.top_k))
            if decoding.top_p < 1.0:
                self.warpers.append(TopPLogitsWarper(decoding.top_p))
        self.prompt_len = prompt_len
        self.step_logprobs: list[torch.Tensor] = []  # each (B,)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logits = scores.float()  # (B, V)
        for w in self.warpers:
            logits = w(input_ids, logits)
        logp = torch.log_softmax(logits, dim=-1)  # (B, V)
        step = input_ids.shape[1] - self.prompt_len
        if self.greedy:
            choice = logp.argmax(dim=-1)
        else:
            noise = gumbel_noise(self.seeds, step, logp.shape[-1])  # finite: -inf stays -inf
            choice = (logp + noise).argmax(dim=-1)  # (B,)
        self.step_logprobs.append(logp.gather(1, choice[:, None]).squeeze(1))
        out = torch.full_like(scores, -math.inf)
        out.scatter_(1, choice[:, None], 0.0)
        return out


def _is_local(ckpt: str) -> bool:
    return Path(ckpt).exists() or ckpt.startswith((".", "/", "~")) or ckpt.count("/") > 1


def resolve_checkpoint(ckpt: str) -> tuple[str, str | None, str]:
    """(model source, adapter dir or None, tokenizer source), or a one-line UserError."""
    if _is_local(ckpt):
        p = Path(ckpt).expanduser()
        if not p.exists():
            raise UserError(f"checkpoint not found: {ckpt}")
        if not p.is_dir():
            raise UserError(f"checkpoint must be a directory: {ckpt}")
        adapter = p / "adapter_config.json"
        if adapter.exists():
            try:
                base = json.loads(adapter.read_text())["base_model_name_or_path"]
            except (KeyError, json.JSONDecodeError):
                raise UserError(f"{adapter}: no base_model_name_or_path") from None
            if not base:
                raise UserError(f"{adapter}: empty base_model_name_or_path")
            tok_src = str(p) if any((p / f).exists() for f in TOKENIZER_FILES) else base
            if _is_local(base) and not Path(base).expanduser().exists():
                raise UserError(f"LoRA adapter {ckpt}: base model not found: {base}")
            return base, str(p), tok_src
        if not (p / "config.json").exists():
            raise UserError(f"{ckpt}: not a model checkpoint (no config.json)")
        if not any((p / f).exists() for f in TOKENIZER_FILES):
            raise UserError(f"{ckpt}: checkpoint has no tokenizer (tokenizer.json or "
                            f"tokenizer_config.json); save the tokenizer next to the weights")
        return str(p), None, str(p)
    return ckpt, None, ckpt  # a Hub id


def load_model_and_tokenizer(ckpt: str, device: str | None = None, dtype: str = "auto"):
    """Full checkpoints, LoRA adapter dirs (merged onto their base) and Hub ids."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    src, adapter, tok_src = resolve_checkpoint(ckpt)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype == "auto":
        torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    else:
        torch_dtype = getattr(torch, dtype)
    try:
        tok = AutoTokenizer.from_pretrained(tok_src)
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch_dtype)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"could not load checkpoint {ckpt}: {first[:200]}") from None
    if adapter:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model.to(device).eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


def _eos_ids(model, tok) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tok.eos_token_id is not None and tok.eos_token_id not in ids:
        ids.append(tok.eos_token_id)
    return ids


class HFBackend:
    name = "hf"

    def __init__(self, checkpoint: str, batch_size: int | None = None, device: str | None = None,
                 dtype: str = "auto", **_: object):
        self.checkpoint = checkpoint
        self.model, self.tokenizer = load_model_and_tokenizer(checkpoint, device, dtype)
        self.device = next(self.model.parameters()).device
        self.batch_size = batch_size
        self.eos_ids = _eos_ids(self.model, self.tokenizer)

    # ------------------------------------------------------------------ batching

    def auto_batch_size(self, max_len: int) -> int:
        """Rows per generate call, from free memory and the KV-cache size of one row (capped
        at 256 on CPU, 512 on CUDA): small models get big batches, big models small ones."""
        if self.batch_size:
            return self.batch_size
        cfg = self.model.config
        layers = cfg.num_hidden_layers
        kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        elem = next(self.model.parameters()).element_size()
        per_row = 2 * layers * kv_heads * head_dim * elem * max_len + 4 * cfg.vocab_size * 4
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            cap = 512
        else:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            cap = 256
        return int(max(1, min(cap, 0.3 * free // per_row)))

    def plan(self, requests: Sequence[Request], decoding: Decoding) -> list[list[tuple[Request, int, list[int]]]]:
        """Rows (request, sample_idx, prompt ids) sorted by prompt length, then chunked."""
        rows = []
        for r in requests:
            ids = self.tokenizer(r.prompt, add_special_tokens=False).input_ids
            for s in r.sample_indices:
                rows.append((r, s, ids))
        rows.sort(key=lambda x: (len(x[2]), x[0].key, x[1]))
        longest = max((len(x[2]) for x in rows), default=0)
        bs = self.auto_batch_size(longest + decoding.max_new_tokens)
        return [rows[i:i + bs] for i in range(0, len(rows), bs)]

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def _generate_batch(self, rows, decoding: Decoding) -> list[Generation]:
        from transformers import GenerationConfig, LogitsProcessorList

        pad = self.tokenizer.pad_token_id
        width = max(len(ids) for _, _, ids in rows)
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)  # (B, T)
        attn = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
        for i, (_, _, ids) in enumerate(rows):
            input_ids[i, width - len(ids):] = torch.tensor(ids)
            attn[i, width - len(ids):] = 1
        sampler = SeededSampler([row_seed(decoding.seed, r.key, s) for r, s, _ in rows],
                                decoding, width, self.device)
        gen_cfg = GenerationConfig(
            do_sample=False, num_beams=1, max_new_tokens=decoding.max_new_tokens,
            eos_token_id=self.eos_ids, pad_token_id=pad, temperature=None, top_p=None,
            top_k=None)
        input_ids, attn = input_ids.to(self.device), attn.to(self.device)
        shared = prefill_distinct(self.model, input_ids, attn)  # n > 1: each prompt once
        out = self.model.generate(
            input_ids=input_ids, attention_mask=attn, generation_config=gen_cfg,
            logits_processor=LogitsProcessorList([sampler]),
            **({shared[0]: shared[1]} if shared else {}))
        new = out[:, width:].cpu()  # (B, S)
        step_lp = torch.stack(sampler.step_logprobs, dim=1).cpu() if sampler.step_logprobs \
            else torch.zeros((len(rows), 0))  # (B, S)
        gens = []
        eos = set(self.eos_ids)
        for i in range(len(rows)):
            toks = new[i].tolist()
            n, finish = len(toks), "length"
            for j, t in enumerate(toks):
                if t in eos:
                    n, finish = j + 1, "stop"
                    break
            text_ids = toks[:n - 1] if finish == "stop" else toks[:n]
            text = self.tokenizer.decode(text_ids, skip_special_tokens=True)
            lp = float(step_lp[i, :n].sum()) if n else 0.0
            gens.append(Generation(text=text, num_tokens=n, finish_reason=finish,
                                   logprob_sum=lp, token_ids=toks[:n]))
        return gens

    def generate(self, requests: Sequence[Request], decoding: Decoding,
                 on_batch: Callable[[list[tuple[Request, dict[int, Generation]]]], None]) -> None:
        for batch in self.plan(requests, decoding):
            gens = self._generate_batch(batch, decoding)
            grouped: dict[str, tuple[Request, dict[int, Generation]]] = {}
            for (r, s, _), g in zip(batch, gens):
                grouped.setdefault(r.key, (r, {}))[1][s] = g
            on_batch(list(grouped.values()))

    # ------------------------------------------------------------------ scoring

    def score(self, prompts: Sequence[str], completions: Sequence[str],
              batch_size: int | None = None) -> list[list[float]]:
        """Teacher-forced per-token log-probs of each completion at temperature 1."""
        enc = lambda t: self.tokenizer(t, add_special_tokens=False).input_ids  # noqa: E731
        return self.score_ids([enc(p) for p in prompts], [enc(c) for c in completions],
                              batch_size)

    @torch.no_grad()
    def score_ids(self, prompt_ids: Sequence[list[int]], completion_ids: Sequence[list[int]],
                  batch_size: int | None = None) -> list[list[float]]:
        """Per-token log-probs of completion ids after prompt ids. Rows are sorted by prompt
        so that samples of one problem share a batch; the prompt tokens a batch has in common
        go through the model once (see backends/prefix.py), the rest right-padded."""
        items = sorted(enumerate(zip(prompt_ids, completion_ids)),
                       key=lambda x: (x[1][0], len(x[1][1])))
        bs = batch_size or 8
        result: list[list[float]] = [[] for _ in items]
        for k in range(0, len(items), bs):
            chunk = items[k:k + bs]
            seqs = [list(p) + list(c) for _, (p, c) in chunk]
            prefix = common_prefix_len(seqs, max(0, min(len(p) for _, (p, _) in chunk) - 1))
            out, prefix = forward_after_prefix(self.model, seqs, prefix,
                                               self.tokenizer.pad_token_id, self.device)
            logits = out.logits  # (B, T, V): the rows after the shared prefix
            for j, (i, (p, c)) in enumerate(chunk):
                if not c:
                    continue
                pos = torch.arange(len(p) - 1 - prefix, len(p) + len(c) - 1 - prefix,
                                   device=logits.device)
                lp = torch.log_softmax(logits[j, pos].float(), dim=-1)  # (C, V)
                tgt = torch.tensor(list(c), device=logits.device)  # (C,)
                result[i] = lp.gather(1, tgt[:, None]).squeeze(1).cpu().tolist()
        return result

    def close(self) -> None:
        del self.model
