"""GRPO's group advantages written out as a reference for the tests (TRL computes them in
training; the tests use this to build inputs and check the AMIR pieces against them)."""

from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, scale: bool = True,
                     eps: float = 1e-4) -> torch.Tensor:
    """GRPO advantages (r − mean_group) / (std_group + eps), as TRL computes them (Bessel std)."""
    adv = torch.zeros_like(rewards)  # (N,)
    for g in torch.unique(group_ids):
        rows = group_ids == g
        r = rewards[rows]  # (G,)
        a = r - r.mean()
        if scale:
            std = r.std(unbiased=True) if r.numel() > 1 else r.new_tensor(0.0)
            a = a / (std + eps)
        adv[rows] = a
    return adv
