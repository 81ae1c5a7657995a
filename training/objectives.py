"""The AMIR-GRPO objective as small pure functions (arXiv 2601.03661).

AMIR-GRPO = GRPO + λ · preference_loss over pairs mined from the reward ranking inside each
rollout group. Everything here is a pure function of tensors / floats, so each piece is tested
on hand-computed numbers; `training/trainer.py` only wires these into TRL's GRPOTrainer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- log-probs


def sequence_logp(per_token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ℓ: mean per-token log-prob of each completion (length-normalized, as the paper)."""
    mask = mask.to(per_token_logps.dtype)  # (B, T)
    return (per_token_logps * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)  # (B,)


# ----------------------------------------------------------------------------- pair mining


def _chosen_all(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Mode `all`: every row may be the chosen member of a pair."""
    return torch.ones_like(rewards, dtype=torch.bool)  # (N,)


def _chosen_top1(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Mode `top1`: only the best row of each group (first such row on ties) may be chosen."""
    r = rewards.nan_to_num(nan=-math.inf)  # (N,)
    idx = torch.arange(r.numel(), device=r.device)
    same = group_ids[:, None] == group_ids[None, :]  # (N, N)
    other_better = (r[None, :] > r[:, None]) | ((r[None, :] == r[:, None]) & (idx[None, :] < idx[:, None]))
    return ~(same & other_better).any(dim=1) & ~torch.isnan(rewards)  # (N,)


PAIR_MODES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "all": _chosen_all,
    "top1": _chosen_top1,
}


def mine_pairs(rewards: torch.Tensor, group_ids: torch.Tensor, margin: float, mode: str = "all",
               max_pairs_per_group: int | None = None) -> torch.Tensor:
    """(chosen_row, rejected_row) pairs inside each group with r_chosen − r_rejected > margin.

    Strict `>` as the paper's code; NaN rewards never pair. `top1` pairs only each group's best
    row (lowest index on ties). The cap keeps a group's largest gaps; equal gaps keep the lower
    (chosen, rejected) rows. Returns a LongTensor (P, 2) sorted by (chosen, rejected).
    """
    if mode not in PAIR_MODES:
        raise ValueError(f"unknown pair mode {mode!r}; choose one of {', '.join(PAIR_MODES)}")
    rewards = rewards.detach().float()  # (N,)
    group_ids = group_ids.to(rewards.device)  # (N,)
    same = group_ids[:, None] == group_ids[None, :]  # (N, N)
    gap = rewards[:, None] - rewards[None, :]  # (N, N)
    ok = same & (gap > margin) & PAIR_MODES[mode](rewards, group_ids)[:, None]  # (N, N)
    pairs = ok.nonzero()  # (P, 2), row-major: sorted by (chosen, rejected)
    if max_pairs_per_group is None or pairs.numel() == 0:
        return pairs
    gaps = gap[pairs[:, 0], pairs[:, 1]]  # (P,)
    order = torch.argsort(-gaps, stable=True)  # largest gap first; ties keep row order
    order = order[torch.argsort(group_ids[pairs[order, 0]], stable=True)]  # group-major
    grp = group_ids[pairs[order, 0]]  # (P,)
    pos = torch.arange(grp.numel(), device=grp.device)
    starts = torch.ones_like(grp, dtype=torch.bool)
    starts[1:] = grp[1:] != grp[:-1]
    rank = pos - torch.cummax(torch.where(starts, pos, torch.zeros_like(pos)), dim=0).values
    keep = order[rank < max_pairs_per_group].sort().values
    return pairs[keep]


# ----------------------------------------------------------------------------- preference loss


def preference_loss(logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, beta: float,
                    ref_chosen: torch.Tensor | None = None,
                    ref_rejected: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over pairs of −log σ(β·((ℓc − ℓc_ref) − (ℓr − ℓr_ref))); reference-free without refs.

    With no pairs it returns a zero that is still connected to the graph of the inputs (a
    sum over an empty slice), so backward() works the same on every micro-batch.
    """
    if (ref_chosen is None) != (ref_rejected is None):
        raise ValueError("pass both ref_chosen and ref_rejected, or neither")
    delta = logp_chosen - logp_rejected  # (P,)
    if ref_chosen is not None:
        delta = delta - (ref_chosen - ref_rejected)
    return -F.logsigmoid(beta * delta).sum() / max(delta.numel(), 1)


# ----------------------------------------------------------------------------- λ schedules


@dataclass
class FixedLambda:
    """λ stays at its initial value."""

    value: float

    def micro_batch(self, pref_loss: float, grpo_loss: float) -> float:
        """λ for this micro-batch."""
        return self.value

    def end_step(self) -> None:
        """Nothing to do at the optimizer-step boundary."""

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


RATIO_LOW, RATIO_HIGH = 0.3, 0.7  # target band for r = λ·L_pref / L_grpo
RATIO_UP, RATIO_DOWN = 1.25, 0.8
RATIO_MIN, RATIO_MAX = 0.005, 0.05
RATIO_FLOOR = 1e-9  # the paper's code divides by max(1e-9, L_grpo)


def ratio_update(lam: float, pref_loss: float, grpo_loss: float) -> float:
    """One step of the paper's controller: r = λ·L_pref / max(1e-9, L_grpo); ×1.25 if r < 0.3, ×0.8 if r > 0.7."""
    r = lam * pref_loss / max(RATIO_FLOOR, grpo_loss)
    if r < RATIO_LOW:
        lam = lam * RATIO_UP
    elif r > RATIO_HIGH:
        lam = lam * RATIO_DOWN
    return min(RATIO_MAX, max(RATIO_MIN, lam))


@dataclass
class RatioLambda(FixedLambda):
    """The paper's controller, faithfully: updated after every micro-batch from that micro-batch's
    *signed* GRPO loss, and the updated λ is applied to the same micro-batch (the paper's order).

    Because the denominator is signed and floored at 1e-9, a negative or ~0 GRPO loss (common:
    with on-policy `grpo` loss and whole groups per micro-batch the loss is −mean(advantage) ≈ 0)
    makes r huge, so λ is pushed down by ×0.8 regardless of how large the preference term is.
    """

    def micro_batch(self, pref_loss: float, grpo_loss: float) -> float:
        self.value = ratio_update(self.value, pref_loss, grpo_loss)
        return self.value

    def end_step(self) -> None:
        """The paper's controller has no step-level state."""


@dataclass
class RatioAbsLambda(FixedLambda):
    """Same band and factors, but r = λ·mean(L_pref) / mean(|L_grpo|) over the whole optimizer step,
    updated once at the step boundary and applied to the next step (every micro-batch of a step
    shares one λ). Using |L_grpo| avoids the sign flips of the signed, per-micro-batch version.
    """

    _pref: list[float] = field(default_factory=list)
    _grpo: list[float] = field(default_factory=list)

    def micro_batch(self, pref_loss: float, grpo_loss: float) -> float:
        self._pref.append(pref_loss)
        self._grpo.append(abs(grpo_loss))
        return self.value

    def end_step(self) -> None:
        if self._pref:
            mean_pref = sum(self._pref) / len(self._pref)
            mean_grpo = sum(self._grpo) / len(self._grpo)
            self.value = ratio_update(self.value, mean_pref, mean_grpo)
        self._pref.clear()
        self._grpo.clear()


LAMBDA_SCHEDULES: dict[str, type] = {
    "fixed": FixedLambda,
    "ratio": RatioLambda,
    "ratio-abs": RatioAbsLambda,
}


def make_schedule(name: str, initial: float):
    """A fresh λ schedule by name (see LAMBDA_SCHEDULES)."""
    if name not in LAMBDA_SCHEDULES:
        raise ValueError(f"unknown lambda schedule {name!r}; choose one of {', '.join(LAMBDA_SCHEDULES)}")
    return LAMBDA_SCHEDULES[name](float(initial))
