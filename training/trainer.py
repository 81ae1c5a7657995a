"""AmirGRPOTrainer: TRL's GRPOTrainer plus the AMIR preference term, as a small hook.

    loss = TRL's GRPO loss + λ · preference_loss(ℓ_chosen, ℓ_rejected) / grad_accum

Nothing of TRL's pipeline is copied. The parent is SharedPrefixGRPOTrainer, TRL's GRPOTrainer
whose loss forward runs the prompt prefix a micro-batch shares once (training/prefix_logps.py;
`grpo` trains with it too). The overrides, each a few lines around `super()`:

* `_calculate_rewards`       keeps the (gathered) per-completion rewards TRL just computed, so
                             reward functions run once; nothing is re-scored.
* `_generate_and_score_completions`  attaches per-row `amir_group` (global group index) and
                             `amir_reward` to TRL's output dict, so they ride through TRL's
                             shuffle/split with the rows they describe (and across processes:
                             rewards are gathered by TRL, each process keeps its own slice).
* `_prepare_inputs`          runs TRL's buffering with its row shuffle swapped for a
                             group-aligned one, so every micro-batch holds whole groups and
                             all of a group's pairs meet the gradient in one backward.
* `_get_per_token_logps_and_entropies` / `compute_loss`  capture the per-token log-probs of
                             the very forward TRL runs for the GRPO loss: ℓ costs no extra
                             forward pass. The AMIR term is scaled for gradient accumulation
                             exactly like TRL's own loss (÷ current_gradient_accumulation_steps).

Temperature: TRL's fused LM head divides logits by the sampling temperature T before the
log-softmax; the paper's code scores with raw (T = 1) logits. With `logp_temperature: one`
(default) ℓ is the T = 1 log-prob: when T == 1 (every shipped recipe) TRL's log-probs are
exactly that and are reused as is; when T != 1 the final hidden states of the same forward
are captured and re-projected through the LM head at T = 1 (one extra LM-head projection over
the completion tokens, no second backbone pass). `logp_temperature: sampling` uses TRL's
T-scaled log-probs at zero cost.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

import torch
from accelerate.utils import is_peft_model
from transformers import PreTrainedModel, TrainerCallback
from trl.trainer import grpo_trainer as _trl_grpo

from training.config import AmirSection
from training.prefix_logps import SharedPrefixGRPOTrainer
from training.objectives import make_schedule, mine_pairs, preference_loss, sequence_logp

AMIR_STATE = "amir_state.json"


def group_shuffle(seq_dict: dict[str, Any], group_size: int, generator: torch.Generator) -> dict[str, Any]:
    """Permute whole groups of `group_size` consecutive rows (order inside a group is kept).

    Drop-in for TRL's `shuffle_sequence_dict` (same value handling: 0-d tensors and None pass
    through, tensors and lists are permuted along the first dimension).
    """
    n = len(next(v for v in seq_dict.values() if v is not None))
    if n % group_size:
        raise ValueError(f"{n} rows do not split into groups of {group_size}")
    perm = torch.randperm(n // group_size, generator=generator)  # (n/G,)
    rows = (perm[:, None] * group_size + torch.arange(group_size)).reshape(-1)  # (n,)

    def permute(v: Any) -> Any:
        if v is None or (isinstance(v, torch.Tensor) and v.ndim == 0):
            return v
        if isinstance(v, torch.Tensor):
            return v[rows.to(v.device)]
        return [v[i] for i in rows.tolist()]

    return {k: permute(v) for k, v in seq_dict.items()}


class AmirGRPOTrainer(SharedPrefixGRPOTrainer):
    """GRPO + λ·mean −log σ(β·(ℓc − ℓr)) over pairs mined from each group's reward ranking."""

    _tag_names = SharedPrefixGRPOTrainer._tag_names + ["amir-grpo"]

    def __init__(self, *args: Any, amir: AmirSection | None = None, **kwargs: Any) -> None:
        self.amir = amir or AmirSection()
        model = kwargs.get("model", args[0] if args else None)
        grpo_args = kwargs.get("args", args[2] if len(args) > 2 else None)
        # reference=base for a fully fine-tuned policy: snapshot the initial weights before TRL
        # patches or wraps the model (a PEFT policy uses its adapter-disabled self instead), unless
        # TRL's own reference log-probs will be reused (see _amir_own_ref below).
        trl_ref = grpo_args is not None and grpo_args.beta != 0.0 and not (
            self.amir.logp_temperature == "one" and grpo_args.temperature != 1.0)
        needs_copy = (self.amir.reference == "base" and not trl_ref and isinstance(model, PreTrainedModel)
                      and kwargs.get("peft_config") is None and not is_peft_model(model))
        base_copy = copy.deepcopy(model).eval().requires_grad_(False) if needs_copy else None
        super().__init__(*args, **kwargs)
        if self.args.per_device_train_batch_size % self.num_generations:
            raise ValueError(
                f"AMIR-GRPO needs whole groups per micro-batch: per_device_train_batch_size "
                f"({self.args.per_device_train_batch_size}) must be a multiple of num_generations "
                f"({self.num_generations})")
        self._amir_schedule = make_schedule(self.amir.lambda_schedule, self.amir.lambda_init)
        self._amir_t1 = self.amir.logp_temperature == "one" and self.temperature != 1.0
        if self._amir_t1:
            self._check_t1_supported()
        # TRL's reference log-probs are reusable when TRL computes them (β_KL != 0) at the
        # temperature ℓ uses; otherwise the trainer scores the base model itself (no grad).
        self._amir_own_ref = self.amir.reference == "base" and not (self.beta != 0.0 and not self._amir_t1)
        own_copy = self._amir_own_ref and base_copy is not None
        self._amir_base = self._prepare_base(base_copy) if own_copy else None
        self._amir_capture: list[torch.Tensor] | None = None  # per-token log-probs of the loss forward
        self._amir_rewards: torch.Tensor | None = None  # (N_global,) summed rewards of the last scoring
        self._amir_step = [0.0, 0.0, 0.0, 0.0]  # pairs, Σgap, Σpair-loss, Σ(ℓc − ℓr) over the step

    # ------------------------------------------------------------------ rewards and group ids

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        """TRL's rewards (gathered over processes), kept for pair mining: reward funcs run once."""
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        weights = self.reward_weights.to(rewards_per_func.device)
        total = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)  # (N_global,)
        self._amir_rewards = total.masked_fill(torch.isnan(rewards_per_func).all(dim=1), math.nan)
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        """TRL's batch plus per-row group id, summed reward and (reference=base) base ℓ."""
        out = super()._generate_and_score_completions(inputs)
        device = out["completion_ids"].device
        n = len(inputs)
        start = self.accelerator.process_index * n
        rows = torch.arange(start, start + n, device=device)  # this process's global rows
        group_size = self.num_generations if self.model.training else self.num_generations_eval
        out["amir_group"] = rows // group_size  # (B,)
        out["amir_reward"] = self._amir_rewards.to(device)[rows]  # (B,)
        self._amir_rewards = None
        if self._amir_own_ref:
            out["amir_ref_logp"] = self._base_sequence_logp(out)  # (B,)
        return out

    def _prepare_inputs(self, generation_batch):
        """TRL's buffering and splitting, with its row shuffle swapped for a group-aligned one."""
        seed = self.args.seed * 1_000_003 + self.state.global_step * 1_009 + self.accelerator.process_index
        gen = torch.Generator().manual_seed(seed)

        def shuffle(seq_dict: dict[str, Any]) -> dict[str, Any]:
            groups = seq_dict["amir_group"].view(-1, self.num_generations)  # (n/G, G)
            if not bool((groups == groups[:, :1]).all()):
                raise RuntimeError("rows of a group are not contiguous in TRL's generation batch")
            return group_shuffle(seq_dict, self.num_generations, gen)

        with mock.patch.object(_trl_grpo, "shuffle_sequence_dict", shuffle):
            return super()._prepare_inputs(generation_batch)

    # ------------------------------------------------------------------ ℓ from the loss forward

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                           *args, **kwargs):
        """TRL's forward (or its shared-prefix equivalent, training/prefix_logps.py); while
        capturing, also keep the per-token log-probs ℓ is built from."""
        if self._amir_capture is None:
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
        with self._final_hidden(model) if self._amir_t1 else contextlib.nullcontext() as hidden:
            out = super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
        logps = self._reproject_t1(model, torch.cat(hidden), input_ids, logits_to_keep) \
            if self._amir_t1 else out[0]  # (B, C)
        self._amir_capture.append(logps)
        return out

    def _shared_prefix_forward(self, *args: Any, **kwargs: Any) -> tuple | None:
        """The shared-prefix forward, except under T = 1 re-projection (its hidden-state hook
        expects one forward of the full rows)."""
        return None if self._amir_t1 else super()._shared_prefix_forward(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """TRL's GRPO loss + the AMIR term on log-probs captured from the same forward."""
        self._amir_capture = []
        try:
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            token_logps = self._amir_capture[0]  # (B, C)
        finally:
            self._amir_capture = None
        return loss + self._amir_loss(inputs, token_logps, loss)

    # ------------------------------------------------------------------ the AMIR term

    def _amir_loss(self, inputs: dict[str, Any], token_logps: torch.Tensor,
                   grpo_loss: torch.Tensor) -> torch.Tensor:
        """λ · preference_loss / grad_accum over this micro-batch's pairs; updates λ and metrics."""
        training = self.model.training
        accum = self.current_gradient_accumulation_steps if training else 1
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        ell = sequence_logp(token_logps, mask)  # (B,)
        rewards = inputs["amir_reward"].masked_fill(mask.sum(-1) == 0, math.nan)  # empty rows never pair
        pairs = mine_pairs(rewards, inputs["amir_group"], self.amir.margin, self.amir.pairs,
                           self.amir.max_pairs_per_group)  # (P, 2)
        c, r = pairs[:, 0], pairs[:, 1]
        ref = self._reference_logp(inputs, mask)  # (B,) or None
        pref = preference_loss(ell[c], ell[r], self.amir.beta,
                               None if ref is None else ref[c], None if ref is None else ref[r])
        if not training:
            return self._amir_schedule.value * pref
        lam = self._observe(pref, ell, rewards, c, r, grpo_loss.detach() * accum)
        return lam * pref / accum

    def _observe(self, pref: torch.Tensor, ell: torch.Tensor, rewards: torch.Tensor, c: torch.Tensor,
                 r: torch.Tensor, grpo_loss: torch.Tensor) -> float:
        """Reduce this micro-batch's pair stats over processes, step λ, log at the step boundary."""
        n_pairs = float(c.numel())
        local = torch.stack([
            pref.new_tensor(n_pairs),
            (rewards[c] - rewards[r]).sum().to(pref.dtype),
            pref.detach() * n_pairs,
            (ell[c] - ell[r]).detach().sum(),
            grpo_loss.to(pref.dtype),
        ])
        pairs_w, gap_w, loss_w, margin_w, grpo_w = self.accelerator.reduce(local, reduction="sum").tolist()
        if pairs_w > 0:  # as the paper's code: no pairs, no λ update
            lam = self._amir_schedule.micro_batch(loss_w / pairs_w, grpo_w / self.accelerator.num_processes)
        else:
            lam = self._amir_schedule.value
        for i, v in enumerate((pairs_w, gap_w, loss_w, margin_w)):
            self._amir_step[i] += v
        if self.accelerator.sync_gradients:  # last micro-batch of the optimizer step
            pairs, gap, loss, margin = self._amir_step
            div = pairs if pairs else math.nan
            metrics = self._metrics["train"]
            metrics["amir/pairs"].append(pairs)
            metrics["amir/mean_gap"].append(gap / div)
            metrics["amir/pref_loss"].append(loss / div)
            metrics["amir/margin"].append(margin / div)
            metrics["amir/lambda"].append(lam)
            self._amir_step = [0.0, 0.0, 0.0, 0.0]
            self._amir_schedule.end_step()
        return lam

    # ------------------------------------------------------------------ reference (base) ℓ

    def _reference_logp(self, inputs: dict[str, Any], mask: torch.Tensor) -> torch.Tensor | None:
        """ℓ under the frozen initial policy, or None for the reference-free loss."""
        if self.amir.reference == "none":
            return None
        if "amir_ref_logp" in inputs:
            return inputs["amir_ref_logp"]
        return sequence_logp(inputs["ref_per_token_logps"], mask)  # TRL's (β_KL != 0)

    def _prepare_base(self, base: PreTrainedModel) -> Any:
        """Patch the snapshot with TRL's fused head and place it like TRL places its ref model."""
        _trl_grpo.add_fused_lm_head(base, temperature=self.temperature,
                                    cast_lm_head_to_fp32=self.args.cast_lm_head_to_fp32)
        if self.is_deepspeed_enabled:
            return _trl_grpo.prepare_deepspeed(base, self.accelerator)
        if self.is_fsdp_enabled:
            return _trl_grpo.prepare_fsdp(base, self.accelerator)
        return self.accelerator.prepare_model(base, evaluation_mode=True)

    @torch.no_grad()
    def _base_sequence_logp(self, batch: dict[str, Any]) -> torch.Tensor:
        """ℓ of each row under the initial policy (no grad; same scoring path as the policy)."""
        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)  # (B, P+C)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)  # (B, P+C)
        mask = batch["completion_mask"] * batch.get("tool_mask", 1)  # (B, C)
        if self._amir_base is not None:
            model, ctx = self._amir_base, contextlib.nullcontext()
        else:  # PEFT: the policy with its adapters switched off is the initial model
            unwrapped = self.accelerator.unwrap_model(self.model)
            model, ctx = self.model, _trl_grpo.use_adapter(unwrapped, adapter_name=None)
        self._amir_capture = []
        try:
            with ctx:
                self._get_per_token_logps_and_entropies(
                    model, input_ids, attention_mask, batch["completion_ids"].size(1),
                    batch_size=self.args.per_device_train_batch_size)
            token_logps = self._amir_capture[0]  # (B, C)
        finally:
            self._amir_capture = None
        return sequence_logp(token_logps, mask)

    # ------------------------------------------------------------------ temperature-1 re-projection

    def _causal_lm(self, model: Any) -> Any:
        unwrapped = self.accelerator.unwrap_model(model)
        return unwrapped.get_base_model() if is_peft_model(unwrapped) else unwrapped

    def _check_t1_supported(self) -> None:
        """T = 1 re-projection handles plain and soft-capped heads (not ZeRO-3, scaled, adapted)."""
        cfg = self._causal_lm(self.model).config.get_text_config()
        scaled = [k for k in ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")
                  if getattr(cfg, k, None) not in (None, 1, 1.0)]
        zero3 = self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3
        adapted_head = type(self._causal_lm(self.model).get_output_embeddings()).__module__.startswith("peft")
        if scaled or zero3 or adapted_head:
            why = ("DeepSpeed ZeRO-3" if zero3 else "a LoRA-adapted LM head" if adapted_head
                   else f"a scaled LM head ({scaled[0]})")
            raise ValueError(f"logp_temperature='one' with temperature {self.temperature} is not supported "
                             f"with {why}; set temperature 1.0 or logp_temperature='sampling'")

    @contextlib.contextmanager
    def _final_hidden(self, model: Any) -> Iterator[list[torch.Tensor]]:
        """Collect the decoder's final hidden states (B, T, H) from forwards inside the block."""
        store: list[torch.Tensor] = []
        backbone = self._causal_lm(model).base_model
        handle = backbone.register_forward_hook(
            lambda module, args, output: store.append(output.last_hidden_state))
        try:
            yield store
        finally:
            handle.remove()

    def _reproject_t1(self, model: Any, hidden: torch.Tensor, input_ids: torch.Tensor,
                      logits_to_keep: int) -> torch.Tensor:
        """Per-token log-probs of the completion at temperature 1 from the captured hidden states."""
        from trl.kernels import ChunkedLogProbFunction

        lm = self._causal_lm(model)
        head = lm.get_output_embeddings()
        softcap = getattr(lm.config.get_text_config(), "final_logit_softcapping", None)
        h = hidden[:, -logits_to_keep - 1:-1]  # (B, C, H): states that predict the completion tokens
        targets = input_ids[:, -logits_to_keep:]  # (B, C)
        h = h.to(head.weight.device)
        # autograd.Function.apply takes positional arguments only; in forward()'s order:
        logps = ChunkedLogProbFunction.apply(
            h.reshape(-1, h.size(-1)),  # hidden (B*C, H)
            head.weight,  # weight (V, H): the LM head
            head.bias,  # bias (V,) or None
            targets.reshape(-1).to(head.weight.device),  # targets (B*C,)
            1.0,  # temperature: 1, the model's own distribution
            32768,  # chunk_size: vocabulary columns per chunk
            softcap,  # final_logit_softcapping (Gemma) or None
            1.0,  # logit_scale
            ("log_probs",),  # outputs: only the log-probs, no entropy
        )[0]  # (B*C,)
        return logps.view(targets.shape)  # (B, C)

    # ------------------------------------------------------------------ checkpoints keep λ

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            (folder / AMIR_STATE).write_text(json.dumps(self._amir_schedule.state_dict()))

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None and os.path.exists(os.path.join(checkpoint, AMIR_STATE)):
            with open(os.path.join(checkpoint, AMIR_STATE)) as fh:
                self._amir_schedule.load_state_dict(json.load(fh))


class MetricsJsonlCallback(TrainerCallback):
    """Append every logging step's metrics (TRL's and amir/*) as one JSON line."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            row = {"step": state.global_step, **{k: _jsonable(v) for k, v in logs.items()}}
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")


def _jsonable(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
