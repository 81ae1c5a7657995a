"""Shared prompt prefixes: run tokens that several rows start with through the model once.

Sampling n completions of one problem repeats its prompt n times, and every prompt of a
benchmark starts with the same system prompt or chat header. A causal model's keys and values
for a prefix do not depend on what follows it, so the prefix goes through the model once per
distinct prompt (or once per batch) and each row gets a copy of its keys and values. The
logits and log-probs are those of the full rows up to float rounding.

Only models whose forward returns a cache with `batch_select_indices` (transformers'
`DynamicCache` and its relatives) take this path; callers fall back to full rows otherwise.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import torch


def cache_kwarg(model: Any) -> str:
    """The KV-cache argument's name: `cache` (newer transformers 5.x), else `past_key_values`."""
    fwd = inspect.signature(model.forward).parameters
    return "cache" if "cache" in fwd else "past_key_values"


def common_prefix_len(seqs: Sequence[Sequence[int]], cap: int) -> int:
    """Length of the longest prefix every sequence starts with, at most `cap`."""
    if not seqs:
        return 0
    first = seqs[0]
    n = max(0, min([cap, *(len(s) for s in seqs)]))
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
    return n


def _shareable(cache: Any) -> bool:
    return hasattr(cache, "batch_select_indices") and hasattr(cache, "batch_repeat_interleave")


@torch.no_grad()
def prefill_distinct(model: Any, input_ids: torch.Tensor, attn: torch.Tensor,
                     ) -> tuple[str, Any] | None:
    """Keys/values of every left-padded row's first T-1 tokens, computed once per distinct row.

    input_ids, attn: (B, T), left-padded. Returns (cache argument name, a cache of B rows and
    T-1 positions) for `generate`, which then runs only the last prompt token; None when no
    row repeats another (nothing to share), T < 2, the model's generation config names a cache
    implementation of its own (static, hybrid, ...), or the model's cache cannot be shared.
    Position ids follow `generate`'s own rule for left padding (mask cumsum - 1, pads at 0)."""
    if input_ids.shape[1] < 2 or getattr(model.generation_config, "cache_implementation", None):
        return None  # nothing before the last token, or the model asks generate for its own cache
    firsts: dict[tuple[int, ...], int] = {}
    row_to_distinct = []
    for row in input_ids.tolist():
        row_to_distinct.append(firsts.setdefault(tuple(row), len(firsts)))
    if len(firsts) == len(row_to_distinct):
        return None
    distinct = torch.tensor([row_to_distinct.index(k) for k in range(len(firsts))],
                            device=input_ids.device)  # (D,) first row of each distinct prompt
    ids, mask = input_ids[distinct, :-1], attn[distinct, :-1]  # (D, T-1)
    pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)  # (D, T-1)
    key = cache_kwarg(model)
    cache = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)[key]
    if not _shareable(cache):
        return None
    cache.batch_select_indices(torch.tensor(row_to_distinct, device=input_ids.device))
    return key, cache


def prefix_cache(model: Any, prefix: Sequence[int], rows: int,
                 device: torch.device | None = None) -> tuple[str, Any] | None:
    """(cache argument name, cache) of `prefix` run once and copied to `rows` rows, or None when
    the model's cache cannot be shared. Gradients flow through it when grad is enabled."""
    key = cache_kwarg(model)
    head = torch.tensor([list(prefix)], device=device)  # (1, P)
    cache = model(input_ids=head, use_cache=True)[key]
    if not _shareable(cache):
        return None
    cache.batch_repeat_interleave(rows)
    return key, cache


def forward_after_prefix(model: Any, seqs: Sequence[Sequence[int]], prefix: int, pad: int,
                         device: Any = None,
                         labels: Callable[[int], torch.Tensor] | None = None) -> tuple[Any, int]:
    """(model output, prefix used) for right-padded rows whose first `prefix` tokens, the same in
    every row, run once with their keys/values shared (prefix_cache); the prefix used is 0, and
    the rows run in full, when the model's cache cannot be shared. The output covers the rows
    after that prefix; `labels(skip)` builds labels of the same (B, T) from it."""
    shared = prefix_cache(model, seqs[0][:prefix], len(seqs), device) if prefix > 0 else None
    skip = prefix if shared else 0
    width = max(len(s) for s in seqs) - skip
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)  # (B, T)
    attn = torch.zeros((len(seqs), skip + width), dtype=torch.long)  # (B, P + T)
    for j, s in enumerate(seqs):
        ids[j, :len(s) - skip] = torch.tensor(list(s[skip:]))
        attn[j, :len(s)] = 1
    kw: dict[str, Any] = {shared[0]: shared[1], "use_cache": True} if shared else {}
    if labels is not None:
        kw["labels"] = labels(skip)
    if device is not None:
        ids, attn = ids.to(device), attn.to(device)
        kw = {k: v.to(device) if k == "labels" else v for k, v in kw.items()}
    return model(input_ids=ids, attention_mask=attn, **kw), skip
