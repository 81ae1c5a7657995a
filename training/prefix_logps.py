"""GRPOTrainer whose loss forward runs the prompt prefix its rows share once.

Every row TRL scores for the loss is (left-padded prompt, completion). The rows of a group
repeat one prompt, and every prompt starts with the same system prompt or chat header; TRL
runs all of it for every row, forward and backward. Here the prefix that every row's prompt
starts with goes through the model once, its keys and values are shared by the rows (and
receive the gradients of all of them), and only the rest of each prompt plus the completion is
run per row, left-padded so that the completion still fills the last `logits_to_keep` columns.
Position ids continue from the prefix, so each row sees exactly the positions and keys of its
full sequence: the log-probs, entropies and gradients are TRL's up to float rounding
(tests/test_trainer.py compares them), at a fraction of the cost when the shared prefix is a
large part of the row (the demo: 110 of ~175 tokens).

Used only where that equivalence is simple to keep: text-only batches, one process, no PEFT
wrapper, no gradient checkpointing, no MoE aux loss, no sliding-window layers, a model whose
cache can be shared
(amir_bench/backends/prefix.py); anything else runs TRL's own forward. `grpo` trains with
`SharedPrefixGRPOTrainer` and `amir-grpo` with its subclass, so both pay the same forward and
step-time comparisons between them stay fair.
"""

from __future__ import annotations

from typing import Any

import torch
from accelerate.utils import is_peft_model
from trl import GRPOTrainer

MIN_SHARED_TOKENS = 16  # below this the second forward call costs more than it saves


def shared_prefix_logps(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        logits_to_keep: int, compute_entropy: bool, autocast: Any,
                        ) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(log-probs (B, C), entropies (B, C) or None) through TRL's fused LM head, or None.

    input_ids, attention_mask: (B, P + C) as TRL builds them (left-padded prompts, then the
    completion with its own padding at the end); `autocast`: the accelerator's autocast()."""
    from amir_bench.backends.prefix import common_prefix_len, prefix_cache

    width = input_ids.shape[1]
    c = logits_to_keep
    p_width = width - c
    pmask = attention_mask[:, :p_width]  # (B, P)
    plen = pmask.sum(1)  # (B,)
    if p_width < 2 or bool((pmask.cummax(1).values != pmask).any()):
        return None  # not left-padded prompts
    prompts = [row[p_width - n:p_width] for row, n in zip(input_ids.tolist(), plen.tolist())]
    shared = common_prefix_len(prompts, int(plen.min()) - 1)
    if shared < MIN_SHARED_TOKENS:
        return None
    rest = (plen - shared).tolist()  # prompt tokens of each row after the shared prefix
    r_width = max(rest)
    rows = input_ids.shape[0]
    ids = input_ids.new_full((rows, r_width + c), 0)  # (B, R + C)
    mask = attention_mask.new_zeros((rows, r_width + c))  # (B, R + C)
    for i, n in enumerate(rest):
        ids[i, r_width - n:r_width] = torch.tensor(prompts[i][shared:], device=ids.device)
        mask[i, r_width - n:r_width] = 1
    ids[:, r_width:] = input_ids[:, p_width:]
    mask[:, r_width:] = attention_mask[:, p_width:]
    left = torch.tensor([r_width - n for n in rest], device=ids.device)[:, None]  # (B, 1)
    pos = (shared + torch.arange(r_width + c, device=ids.device)[None, :] - left).clamp(min=shared)
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-c] = -100
    full_mask = torch.cat([mask.new_ones((rows, shared)), mask], dim=1)  # (B, S + R + C)
    with autocast:
        cache = prefix_cache(model, prompts[0][:shared], rows, ids.device)
        if cache is None:
            return None
        out = model(input_ids=ids, attention_mask=full_mask, position_ids=pos, labels=labels,
                    fused_lm_head=True, **{cache[0]: cache[1]})
    ent = out.entropy[:, -c:] if compute_entropy else None
    return out.log_probs[:, -c:], ent


class SharedPrefixGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer; the per-token log-probs of the loss come from shared_prefix_logps
    when it applies (same values, fewer tokens), else from TRL's forward."""

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                           *args, **kwargs):
        shared = self._shared_prefix_forward(model, input_ids, attention_mask, logits_to_keep,
                                             *args, **kwargs)
        if shared is not None:
            return shared
        return super()._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)

    def _shared_prefix_forward(self, model, input_ids, attention_mask, logits_to_keep,
                               batch_size=None, compute_entropy=False, compute_aux_loss=False,
                               **extra) -> tuple | None:
        """(log-probs, entropies, None), or None where TRL's own forward must run."""
        if (compute_aux_loss or any(v is not None for v in extra.values())
                or self.accelerator.num_processes != 1 or is_peft_model(model)
                or self.accelerator.unwrap_model(model) is not model or _checkpointing(model)
                or _sliding_window(model)):
            return None
        step = batch_size or input_ids.size(0)
        logps, ents = [], []
        for start in range(0, input_ids.size(0), step):
            part = shared_prefix_logps(model, input_ids[start:start + step],
                                       attention_mask[start:start + step], logits_to_keep,
                                       compute_entropy, self.accelerator.autocast())
            if part is None:
                return None
            logps.append(part[0])
            ents.append(part[1])
        return torch.cat(logps), torch.cat(ents) if compute_entropy else None, None


def _sliding_window(model: Any) -> bool:
    """Whether some layers attend through a sliding window (Gemma 3, Mistral-style configs):
    gradients through a windowed cache are not what the equivalence tests cover."""
    cfg = model.config.get_text_config()
    return bool(getattr(cfg, "use_sliding_window", False)) \
        or "sliding_attention" in (getattr(cfg, "layer_types", None) or ())


def _checkpointing(model: Any) -> bool:
    """Whether activation (gradient) checkpointing is on, in old and new transformers."""
    name = "is_activation_checkpointing" if hasattr(type(model), "is_activation_checkpointing") \
        else "is_gradient_checkpointing"
    return bool(getattr(model, name, False))
