"""training/objectives.py on hand-computed numbers: pairs, preference loss, λ schedules."""

from __future__ import annotations

import math

import pytest
import torch

from grpo_reference import group_advantages
from training.objectives import (LAMBDA_SCHEDULES, FixedLambda, RatioAbsLambda, RatioLambda,
                                 make_schedule, mine_pairs, preference_loss, ratio_update,
                                 sequence_logp)

# Two groups of four: rows 0-3 and rows 4-7.
REWARDS = torch.tensor([1.0, 0.0, 0.5, 1.0, 2.0, 0.0, 0.0, 3.0])
GROUPS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])


def pairs_of(*args, **kw) -> list[tuple[int, int]]:
    return [tuple(p) for p in mine_pairs(REWARDS, GROUPS, *args, **kw).tolist()]


@pytest.mark.parametrize("mode,margin,cap,expected", [
    ("all", 0.0, None, [(0, 1), (0, 2), (2, 1), (3, 1), (3, 2), (4, 5), (4, 6), (7, 4), (7, 5), (7, 6)]),
    # strict ">": gaps of exactly 0.5 are not pairs at margin 0.5
    ("all", 0.5, None, [(0, 1), (3, 1), (4, 5), (4, 6), (7, 4), (7, 5), (7, 6)]),
    ("all", 1.0, None, [(4, 5), (4, 6), (7, 5), (7, 6)]),
    ("all", 2.0, None, [(7, 5), (7, 6)]),
    ("all", 3.0, None, []),
    # top1: the best row only (row 0 wins the 1.0 tie with row 3: lowest index)
    ("top1", 0.0, None, [(0, 1), (0, 2), (7, 4), (7, 5), (7, 6)]),
    ("top1", 0.5, None, [(0, 1), (7, 4), (7, 5), (7, 6)]),
    ("top1", 2.0, None, [(7, 5), (7, 6)]),
    # cap keeps the largest gaps per group; equal gaps keep the lower (chosen, rejected)
    ("all", 0.0, 1, [(0, 1), (7, 5)]),
    ("all", 0.0, 2, [(0, 1), (3, 1), (7, 5), (7, 6)]),
    ("all", 0.0, 3, [(0, 1), (0, 2), (3, 1), (4, 5), (7, 5), (7, 6)]),
    ("all", 0.0, 100, [(0, 1), (0, 2), (2, 1), (3, 1), (3, 2), (4, 5), (4, 6), (7, 4), (7, 5), (7, 6)]),
    ("top1", 0.0, 2, [(0, 1), (0, 2), (7, 5), (7, 6)]),
    ("all", 0.5, 1, [(0, 1), (7, 5)]),
])
def test_mine_pairs_table(mode, margin, cap, expected):
    assert pairs_of(margin, mode, cap) == expected


def test_mine_pairs_shape_dtype_and_empty():
    p = mine_pairs(REWARDS, GROUPS, 10.0)
    assert p.shape == (0, 2) and p.dtype == torch.long
    one = mine_pairs(torch.tensor([1.0]), torch.tensor([0]), 0.0)
    assert one.shape == (0, 2)


def test_pairs_never_cross_groups_and_follow_rows():
    # interleave the two groups: pairs must stay inside a group whatever the row order
    perm = torch.tensor([4, 0, 5, 1, 6, 2, 7, 3])
    pairs = mine_pairs(REWARDS[perm], GROUPS[perm], 0.0)
    g = GROUPS[perm]
    assert bool((g[pairs[:, 0]] == g[pairs[:, 1]]).all())
    as_original = sorted((int(perm[c]), int(perm[r])) for c, r in pairs.tolist())
    assert as_original == pairs_of(0.0)


def test_nan_rewards_never_pair():
    r = REWARDS.clone()
    r[3] = math.nan
    r[7] = math.nan
    pairs = [tuple(p) for p in mine_pairs(r, GROUPS, 0.0).tolist()]
    assert all(3 not in p and 7 not in p for p in pairs)
    top = [tuple(p) for p in mine_pairs(r, GROUPS, 0.0, "top1").tolist()]
    assert top == [(0, 1), (0, 2), (4, 5), (4, 6)]


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown pair mode"):
        mine_pairs(REWARDS, GROUPS, 0.0, "top2")


def test_sequence_logp_is_length_normalized():
    lp = torch.tensor([[-1.0, -2.0, -3.0, -9.0], [-0.5, -0.5, -9.0, -9.0], [-1.0, -1.0, -1.0, -1.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    assert sequence_logp(lp, mask).tolist() == [-2.0, -0.5, 0.0]


def test_preference_loss_value_and_gradient():
    lc = torch.tensor([-1.0, -2.0], requires_grad=True)
    lr = torch.tensor([-1.5, -1.0], requires_grad=True)
    loss = preference_loss(lc, lr, beta=0.2)
    # β·Δ = [0.1, -0.2];  −log σ(x) = log(1 + e^{−x})
    expected = (math.log1p(math.exp(-0.1)) + math.log1p(math.exp(0.2))) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.72127, abs=1e-5)
    loss.backward()
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    g = [-(0.2 / 2) * (1 - sig(0.1)), -(0.2 / 2) * (1 - sig(-0.2))]
    assert lc.grad.tolist() == pytest.approx(g, abs=1e-6)
    assert lr.grad.tolist() == pytest.approx([-x for x in g], abs=1e-6)
    assert g == pytest.approx([-0.047502, -0.054983], abs=1e-6)


def test_preference_loss_with_reference():
    lc, lr = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    rc, rr = torch.tensor([-1.0, -1.0]), torch.tensor([-1.0, -1.5])
    # Δ = (ℓc − ref_c) − (ℓr − ref_r) = [0.5, −1.5]
    loss = preference_loss(lc, lr, 0.2, rc, rr)
    expected = (math.log1p(math.exp(-0.1)) + math.log1p(math.exp(0.3))) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError):
        preference_loss(lc, lr, 0.2, rc, None)


def test_preference_loss_without_pairs_is_graph_connected_zero():
    w = torch.nn.Parameter(torch.tensor([-1.0, -2.0, -3.0]))
    empty = torch.zeros(0, dtype=torch.long)
    loss = preference_loss(w[empty], w[empty], 0.2)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert w.grad.tolist() == [0.0, 0.0, 0.0]


def test_group_advantages_match_trl_formula():
    adv = group_advantages(REWARDS, GROUPS)
    std0 = math.sqrt((2 * 0.375 ** 2 + 0.625 ** 2 + 0.125 ** 2) / 3)  # Bessel
    assert adv[0].item() == pytest.approx(0.375 / (std0 + 1e-4), abs=1e-6)
    assert adv[:4].sum().item() == pytest.approx(0.0, abs=1e-6)
    raw = group_advantages(REWARDS, GROUPS, scale=False)
    assert raw[4:].tolist() == pytest.approx([0.75, -1.25, -1.25, 1.75])


# ----------------------------------------------------------------------------- λ schedules


def test_schedule_registry():
    assert set(LAMBDA_SCHEDULES) == {"fixed", "ratio", "ratio-abs"}
    assert isinstance(make_schedule("ratio", 0.01), RatioLambda)
    with pytest.raises(ValueError):
        make_schedule("cosine", 0.01)


def test_fixed_schedule():
    s = FixedLambda(0.02)
    assert [s.micro_batch(5.0, -1.0) for _ in range(3)] == [0.02] * 3
    s.end_step()
    assert s.value == 0.02


def test_ratio_update_rule():
    assert ratio_update(0.01, 0.7, 1.0) == pytest.approx(0.0125)  # r = 0.007 < 0.3: ×1.25
    assert ratio_update(0.0125, 0.7, 0.01) == pytest.approx(0.01)  # r = 0.875 > 0.7: ×0.8
    assert ratio_update(0.008, 10.0, 0.2) == pytest.approx(0.008)  # r = 0.4: in band
    assert ratio_update(0.05, 0.1, 1.0) == 0.05  # ×1.25 clipped to the 0.05 ceiling
    assert ratio_update(0.005, 10.0, 0.01) == 0.005  # ×0.8 clipped to the 0.005 floor
    # the paper's floor: a negative (or zero) GRPO loss divides by 1e-9, so r is huge: ×0.8
    assert ratio_update(0.01, 0.7, -0.5) == pytest.approx(0.008)
    assert ratio_update(0.01, 0.7, 0.0) == pytest.approx(0.008)


def test_ratio_schedule_trajectory_is_per_micro_batch_and_signed():
    s = RatioLambda(0.01)
    seen = [s.micro_batch(p, g) for p, g in [(0.7, 1.0), (0.7, 0.01), (0.7, -0.5), (10.0, 0.2)]]
    assert seen == pytest.approx([0.0125, 0.01, 0.008, 0.008])
    s.end_step()
    assert s.value == pytest.approx(0.008)


def test_ratio_abs_updates_once_per_step_from_absolute_mean():
    s = RatioAbsLambda(0.01)
    # within a step λ does not move; at the boundary r = 0.01·0.6 / mean(|−1|, |1|) = 0.006
    assert [s.micro_batch(0.7, -1.0), s.micro_batch(0.5, 1.0)] == [0.01, 0.01]
    s.end_step()
    assert s.value == pytest.approx(0.0125)
    # the signed per-micro-batch controller reads the same two micro-batches differently
    signed = RatioLambda(0.01)
    assert [signed.micro_batch(0.7, -1.0), signed.micro_batch(0.5, 1.0)] == pytest.approx([0.008, 0.01])
    s.end_step()  # an empty step changes nothing
    assert s.value == pytest.approx(0.0125)


def test_schedule_state_roundtrip():
    s = RatioAbsLambda(0.01)
    s.micro_batch(0.7, 1.0)
    s.end_step()
    t = make_schedule("ratio-abs", 0.03)
    t.load_state_dict(s.state_dict())
    assert t.value == s.value
