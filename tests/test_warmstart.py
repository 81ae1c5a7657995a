"""The demo's warm start: the shared-prefix SFT step, its LR schedule and probe cadence."""

from __future__ import annotations

import random

import pytest
import torch

from training.warmstart import (WarmStartConfig, check_points, lr_schedule, sft_examples,
                                sft_loss, sft_steps, shared_prefix_len)


def test_shared_prefix_len_stops_at_first_difference_and_before_each_completion():
    rows = [([1, 2, 3, 4, 5, 6], 4), ([1, 2, 3, 9, 5, 6], 5), ([1, 2, 3, 4, 7], 4)]
    assert shared_prefix_len(rows) == 3
    same = [([1, 2, 3, 4, 5], 3), ([1, 2, 3, 4, 6], 3)]
    assert shared_prefix_len(same) == 2  # one prompt token stays outside the prefix
    assert shared_prefix_len([]) == 0
    assert shared_prefix_len([([7, 8], 0)]) == 0


@pytest.fixture(scope="module")
def tiny_sft():
    from amir_bench.tiny import build_model, build_tokenizer
    from benchmarks import arith
    from benchmarks.specs import get_spec

    tok = build_tokenizer()
    model = build_model(tok, hidden=32, layers=2, intermediate=64, seed=0)
    data = sft_examples(tok, arith.generate("train", 40), get_spec("arith"), "amir-xml")
    return tok, model, data


def _loss_and_grads(model, rows, pad, prefix):
    model.zero_grad(set_to_none=True)
    loss = sft_loss(model, rows, pad, prefix)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()]


def test_shared_prefix_step_equals_the_full_padded_batch(tiny_sft):
    tok, model, data = tiny_sft
    prefix = shared_prefix_len(data)
    assert prefix > 50  # the amir-xml system prompt
    rows = random.Random(0).sample(data, 8)
    model.train()
    full_loss, full_grads = _loss_and_grads(model, rows, tok.pad_token_id, 0)
    shared_loss, shared_grads = _loss_and_grads(model, rows, tok.pad_token_id, prefix)
    assert shared_loss == pytest.approx(full_loss, rel=1e-5)
    for a, b in zip(full_grads, shared_grads):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_sft_steps_lower_the_loss_and_follow_the_schedule(tiny_sft):
    tok, _, data = tiny_sft
    from amir_bench.tiny import build_model

    model = build_model(tok, hidden=32, layers=2, intermediate=64, seed=1)
    cfg = WarmStartConfig(lr=1e-2, warmup_steps=2, max_steps=6, min_lr_ratio=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    sched = lr_schedule(opt, cfg)
    assert opt.param_groups[0]["lr"] == pytest.approx(cfg.lr / 2)  # warmup
    first = sft_steps(model, data, opt, random.Random(0), 1, 8, tok.pad_token_id, sched)
    last = sft_steps(model, data, opt, random.Random(0), 5, 8, tok.pad_token_id, sched)
    assert last < first
    assert opt.param_groups[0]["lr"] == pytest.approx(cfg.lr * cfg.min_lr_ratio)  # cosine end


def test_check_points():
    assert check_points(WarmStartConfig(first_check=100, steps_per_check=25, max_steps=200)) \
        == [100, 125, 150, 175, 200]
    assert check_points(WarmStartConfig(first_check=100, steps_per_check=40, max_steps=190)) \
        == [100, 140, 180, 190]
    # the quick demo: a fixed number of steps, one probe at the end
    assert check_points(WarmStartConfig(min_steps=40, max_steps=40, first_check=100)) == [40]
    assert check_points(WarmStartConfig(min_steps=150, first_check=100, steps_per_check=50,
                                        max_steps=250)) == [150, 200, 250]
