"""AmirGRPOTrainer invariants on a tiny random model (CPU, offline).

* λ = 0: loss and gradients equal plain GRPOTrainer's on the same batch (1e-6), and one full
  optimizer step moves the parameters the same way.
* The pair set does not depend on how the step is split into micro-batches; micro-batches
  hold whole groups.
* ℓ comes from the loss forward (no extra forward), at temperature 1 when asked.
* reference=base scores the frozen initial policy; reward functions run once per batch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from grpo_reference import group_advantages
from training.config import AmirSection
from training.objectives import mine_pairs, preference_loss, sequence_logp

G = 4  # completions per prompt in these tests


def synthetic_reward(prompts, completions, completion_ids, **_):
    """Deterministic, spread-out rewards for random-model completions: sum of ids mod 3."""
    return [float(sum(ids) % 3) for ids in completion_ids]


def load(ckpt: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(ckpt), AutoTokenizer.from_pretrained(ckpt)


def make_trainer(cls, ckpt: Path, out: Path, *, amir: AmirSection | None = None, reward=synthetic_reward,
                 model=None, peft_config=None, callbacks=None, **grpo):
    from datasets import Dataset
    from trl import GRPOConfig

    policy, tok = load(ckpt)
    prompts = [tok.apply_chat_template([{"role": "user", "content": f"Ada has {i} apples."}],
                                       tokenize=False, add_generation_prompt=True) for i in range(8)]
    kwargs = dict(output_dir=str(out), num_generations=G, per_device_train_batch_size=8,
                  gradient_accumulation_steps=1, max_completion_length=8, max_steps=1,
                  learning_rate=1e-2, loss_type="grpo", report_to="none", save_strategy="no",
                  disable_tqdm=True, use_cpu=True, seed=0, logging_steps=1, bf16=False)
    kwargs.update(grpo)
    extra = {"amir": amir} if amir is not None else {}
    return cls(model=model if model is not None else policy, reward_funcs=[reward],
               args=GRPOConfig(**kwargs), train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
               processing_class=tok, peft_config=peft_config, callbacks=callbacks, **extra)


def make_batch(B: int = 8, P: int = 6, C: int = 10, seed: int = 0) -> dict:
    """A hand-built micro-batch in TRL's format plus the AMIR fields (two groups of four)."""
    g = torch.Generator().manual_seed(seed)
    prompt_ids = torch.randint(3, 500, (B, P), generator=g)  # (B, P)
    prompt_mask = torch.ones(B, P, dtype=torch.long)
    prompt_mask[::2, :2] = 0  # left padding on every other row
    prompt_ids[prompt_mask == 0] = 0
    completion_ids = torch.randint(3, 500, (B, C), generator=g)  # (B, C)
    lengths = torch.randint(3, C + 1, (B,), generator=g)
    completion_mask = (torch.arange(C)[None, :] < lengths[:, None]).long()  # (B, C)
    completion_ids[completion_mask == 0] = 0
    rewards = torch.tensor([1.0, 0.0, 2.0, 0.0, 0.0, 2.0, 2.0, 1.0])[:B]
    groups = torch.arange(B) // G
    return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
            "completion_mask": completion_mask, "advantages": group_advantages(rewards, groups),
            "num_items_in_batch": completion_mask.sum(), "amir_group": groups, "amir_reward": rewards}


def loss_and_grads(trainer, batch, accum: int = 2):
    trainer.model.train()
    trainer.model.zero_grad()
    trainer.current_gradient_accumulation_steps = accum
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


# ----------------------------------------------------------------------------- λ = 0 is GRPO


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_lambda_zero_equals_grpo_on_the_same_batch(tiny_ckpt, tmp_path, loss_type):
    from trl import GRPOTrainer

    from training.trainer import AmirGRPOTrainer

    grpo = make_trainer(GRPOTrainer, tiny_ckpt, tmp_path / "g", loss_type=loss_type)
    amir = make_trainer(AmirGRPOTrainer, tiny_ckpt, tmp_path / "a", loss_type=loss_type,
                        amir=AmirSection(margin=0.5, lambda_init=0.0, lambda_schedule="fixed"))
    batch = make_batch()
    l0, g0 = loss_and_grads(grpo, batch)
    l1, g1 = loss_and_grads(amir, batch)
    assert abs(l0.item() - l1.item()) <= 1e-6
    assert g0.keys() == g1.keys() and g0
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-6, rtol=0), name
    assert amir._metrics["train"]["amir/pairs"][-1] > 0  # the term ran; it just weighed 0


def test_amir_term_is_lambda_pref_over_accumulation(tiny_ckpt, tmp_path):
    """loss = GRPO + λ·pref/GA, with ℓ equal to an independent scoring of the same rows."""
    from trl import GRPOTrainer

    from training.trainer import AmirGRPOTrainer

    grpo = make_trainer(GRPOTrainer, tiny_ckpt, tmp_path / "g")
    lam = 0.5
    amir = make_trainer(AmirGRPOTrainer, tiny_ckpt, tmp_path / "a",
                        amir=AmirSection(margin=0.5, beta=0.2, lambda_init=lam, lambda_schedule="fixed"))
    batch = make_batch()
    l0, _ = loss_and_grads(grpo, batch, accum=2)
    l1, _ = loss_and_grads(amir, batch, accum=2)
    # independent ℓ: a plain forward (no fused head) of the same rows
    model, _ = load(tiny_ckpt)
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    am = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    C = batch["completion_ids"].size(1)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=am).logits[:, -C - 1:-1]  # (B, C, V)
    tok_lp = logits.log_softmax(-1).gather(-1, batch["completion_ids"][..., None]).squeeze(-1)
    ell = sequence_logp(tok_lp, batch["completion_mask"])
    pairs = mine_pairs(batch["amir_reward"], batch["amir_group"], 0.5)
    pref = preference_loss(ell[pairs[:, 0]], ell[pairs[:, 1]], 0.2)
    assert pairs.shape[0] == 10
    assert l1.item() - l0.item() == pytest.approx(lam * pref.item() / 2, abs=1e-5)
    m = amir._metrics["train"]
    assert m["amir/pairs"] == [10.0] and m["amir/lambda"] == [lam]
    assert m["amir/pref_loss"][0] == pytest.approx(pref.item(), abs=1e-5)
    assert m["amir/mean_gap"][0] == pytest.approx(float((batch["amir_reward"][pairs[:, 0]]
                                                         - batch["amir_reward"][pairs[:, 1]]).mean()))


def make_shared_batch(shared: int = 20) -> dict:
    """make_batch's rows with prompts that start with the same `shared` tokens (a system
    prompt): each group's own question after it, of different lengths (left padding)."""
    batch = make_batch()
    g = torch.Generator().manual_seed(1)
    head = torch.randint(3, 500, (shared,), generator=g).tolist()
    prompts = [head + torch.randint(3, 500, (n,), generator=g).tolist() for n in (3, 7)]
    width = max(map(len, prompts))
    ids = torch.zeros((8, width), dtype=torch.long)
    mask = torch.zeros((8, width), dtype=torch.long)
    for i in range(8):
        p = prompts[i // G]
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    return {**batch, "prompt_ids": ids, "prompt_mask": mask}


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_shared_prompt_prefix_forward_equals_trls(tiny_ckpt, tmp_path, monkeypatch, lam):
    """Rows whose prompts share a prefix: the prefix runs once (training/prefix_logps.py) and
    the log-probs, entropies, loss and gradients are those of TRL's full-row forward."""
    import training.prefix_logps as pl
    from training.trainer import AmirGRPOTrainer

    amir = AmirSection(margin=0.5, beta=0.2, lambda_init=lam, lambda_schedule="fixed")
    shared = make_trainer(AmirGRPOTrainer, tiny_ckpt, tmp_path / "s", amir=amir)
    full = make_trainer(AmirGRPOTrainer, tiny_ckpt, tmp_path / "f", amir=amir)
    monkeypatch.setattr(full, "_shared_prefix_forward", lambda *a, **k: None)
    taken = []
    real = pl.shared_prefix_logps
    monkeypatch.setattr(pl, "shared_prefix_logps", lambda *a: taken.append(1) or real(*a))
    batch = make_shared_batch()
    l0, g0 = loss_and_grads(full, batch)
    l1, g1 = loss_and_grads(shared, batch)
    assert taken and shared._metrics["train"]["amir/pairs"][-1] > 0
    assert abs(l0.item() - l1.item()) <= 1e-5
    assert g0.keys() == g1.keys() and g0
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-5, rtol=1e-4), name
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    am = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    C = batch["completion_ids"].size(1)
    with torch.no_grad():
        a = full._get_per_token_logps_and_entropies(full.model, ids, am, C, compute_entropy=True)
        b = shared._get_per_token_logps_and_entropies(shared.model, ids, am, C, compute_entropy=True)
    keep = batch["completion_mask"].bool()
    assert torch.allclose(a[0][keep], b[0][keep], atol=1e-5)
    assert torch.allclose(a[1][keep], b[1][keep], atol=1e-5)
    # rows without a common prefix take TRL's forward
    rb = make_batch()
    assert shared._shared_prefix_forward(
        shared.model, torch.cat([rb["prompt_ids"], rb["completion_ids"]], 1),
        torch.cat([rb["prompt_mask"], rb["completion_mask"]], 1), C) is None


def test_grpo_trainer_with_shared_prefix_equals_trls(tiny_ckpt, tmp_path, monkeypatch):
    """`grpo` trains with SharedPrefixGRPOTrainer: TRL's GRPOTrainer's loss and gradients."""
    from trl import GRPOTrainer

    import training.prefix_logps as pl
    from training.prefix_logps import SharedPrefixGRPOTrainer
    from training.train import trainer_class

    taken = []
    real = pl.shared_prefix_logps
    monkeypatch.setattr(pl, "shared_prefix_logps", lambda *a: taken.append(1) or real(*a))

    assert trainer_class("grpo") is SharedPrefixGRPOTrainer
    batch = make_shared_batch()
    l0, g0 = loss_and_grads(make_trainer(GRPOTrainer, tiny_ckpt, tmp_path / "t"), batch)
    ours = make_trainer(SharedPrefixGRPOTrainer, tiny_ckpt, tmp_path / "o")
    l1, g1 = loss_and_grads(ours, batch)
    assert taken and abs(l0.item() - l1.item()) <= 1e-5 and g0.keys() == g1.keys() and g0
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-5, rtol=1e-4), name
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    am = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    C = batch["completion_ids"].size(1)
    assert ours._shared_prefix_forward(ours.model, ids, am, C) is not None
    ours.model.config.use_sliding_window = True  # windowed caches take TRL's forward
    assert ours._shared_prefix_forward(ours.model, ids, am, C) is None


def test_no_extra_forward(tiny_ckpt, tmp_path):
    from training.trainer import AmirGRPOTrainer

    amir = make_trainer(AmirGRPOTrainer, tiny_ckpt, tmp_path / "a", amir=AmirSection(margin=0.5))
    calls = []
    backbone = amir.model.base_model
    handle = backbone.register_forward_hook(lambda *a: calls.append(1))
    try:
        loss_and_grads(amir, make_batch())
    finally:
        handle.remove()
    assert len(calls) == 1  # the GRPO forward only


@pytest.mark.slow
def test_one_step_with_lambda_zero_moves_params_like_grpo(tiny_ckpt, tmp_path):
    """Full pipeline (generation, scoring, group-aligned shuffle, 2 micro-batches, SGD step)."""
    from trl import GRPOTrainer

    from training.trainer import AmirGRPOTrainer

    kw = dict(gradient_accumulation_steps=2, optim="sgd", learning_rate=1.0, max_grad_norm=0.0)
    before = {n: p.detach().clone() for n, p in load(tiny_ckpt)[0].named_parameters()}
    deltas = []
    for cls, extra in ((GRPOTrainer, {}), (AmirGRPOTrainer, {"amir": AmirSection(
            margin=0.5, lambda_init=0.0, lambda_schedule="fixed")})):
        t = make_trainer(cls, tiny_ckpt, tmp_path / cls.__name__, **kw, **extra)
        t.train()
        deltas.append({n: p.detach() - before[n] for n, p in t.model.named_parameters()})
    moved = [n for n in deltas[0] if deltas[0][n].abs().max() > 0]
    assert moved
    for n in deltas[0]:
        assert torch.allclose(deltas[0][n], deltas[1][n], atol=1e-6, rtol=0), n


# ----------------------------------------------------------------------------- group-aligned batches


def generation_batch(groups: int = 4, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    n = groups * G
    return {"prompt_ids": torch.arange(n)[:, None].repeat(1, 3),  # row identity in column 0
            "completion_ids": torch.randint(3, 500, (n, 5), generator=g),
            "advantages": torch.randn(n, generator=g),
            "num_items_in_batch": torch.tensor(n * 5),
            "amir_group": torch.arange(n) // G,
            "amir_reward": torch.randint(0, 4, (n,), generator=g).float()}


def pair_ids(batch: dict, **mine) -> set[tuple[int, int]]:
    p = mine_pairs(batch["amir_reward"], batch["amir_group"], **mine)
    rows = batch["prompt_ids"][:, 0]
    return {(int(rows[c]), int(rows[r])) for c, r in p.tolist()}


def test_group_shuffle_moves_whole_groups_and_keeps_their_order():
    from training.trainer import group_shuffle

    batch = {"x": torch.arange(12), "names": [f"r{i}" for i in range(12)], "n": torch.tensor(12), "none": None}
    out = group_shuffle(batch, 4, torch.Generator().manual_seed(3))
    blocks = out["x"].view(3, 4)
    assert sorted(blocks[:, 0].tolist()) == [0, 4, 8]
    assert bool((blocks == blocks[:, :1] + torch.arange(4)).all())  # rows keep their order
    assert out["names"] == [f"r{i}" for i in out["x"].tolist()]
    assert out["n"] is batch["n"] and out["none"] is None
    with pytest.raises(ValueError):
        group_shuffle(batch, 5, torch.Generator())


@pytest.mark.parametrize("mine", [dict(margin=0.5), dict(margin=0.0, mode="top1"),
                                  dict(margin=0.0, max_pairs_per_group=2)])
def test_pair_set_does_not_depend_on_the_split(mine):
    from trl.trainer.utils import split_tensor_dict

    from training.trainer import group_shuffle

    full = generation_batch()
    expected = pair_ids(full, **mine)
    assert expected
    for chunks in (1, 2, 4):
        gen = torch.Generator().manual_seed(chunks)
        found: set[tuple[int, int]] = set()
        for part in split_tensor_dict(group_shuffle(full, G, gen), chunks):
            counts = torch.bincount(part["amir_group"], minlength=4)
            assert set(counts.tolist()) <= {0, G}  # whole groups only
            found |= pair_ids(part, **mine)
        assert found == expected


@pytest.mark.parametrize("accum", [1, 2, 4])
def test_trainer_micro_batches_hold_whole_groups(tiny_ckpt, tmp_path, accum):
    """TRL's own _prepare_inputs (buffering + split) with the trainer's group-aligned shuffle."""
    from training.trainer import AmirGRPOTrainer

    t = make_trainer(AmirGRPOTrainer, tiny_ckpt, tmp_path / "a", amir=AmirSection(margin=0.5),
                     per_device_train_batch_size=16 // accum, gradient_accumulation_steps=accum)
    full = generation_batch()
    t._generate_and_score_completions = lambda inputs: dict(full)
    t.model.train()
    found: set[tuple[int, int]] = set()
    for step in range(accum):
        t._step = step
        part = t._prepare_inputs(None)
        assert part["amir_group"].numel() == 16 // accum
        assert set(torch.bincount(part["amir_group"]).tolist()) <= {0, G}
        found |= pair_ids(part, margin=0.5)
    assert found == pair_ids(full, margin=0.5)


def test_micro_batch_must_hold_whole_groups(tiny_ckpt, tmp_path):
    from training.trainer import AmirGRPOTrainer

    with pytest.raises(ValueError, match="whole groups"):
        make_trainer(AmirGRPOTrainer, tiny_ckpt, tmp_path / "a", amir=AmirSection(),
                     per_device_train_batch_size=2, gradient_accumulation_steps=2)


# ----------------------------------------------------------------------------- temperature


@pytest.mark.parametrize("mode", ["one", "sampling"])
def test_logp_temperature(tiny_ckpt, tmp_path, mode):
    from training.trainer import AmirGRPOTrainer

    t = make_trainer(AmirGRPOTrainer, tiny_ckpt, tmp_path / mode, temperature=0.7,
                     amir=AmirSection(margin=0.5, logp_temperature=mode))
    b = make_batch()
    ids = torch.cat([b["prompt_ids"], b["completion_ids"]], 1)
    am = torch.cat([b["prompt_mask"], b["completion_mask"]], 1)
    C = b["completion_ids"].size(1)
    t._amir_capture = []
    trl_lp, _, _ = t._get_per_token_logps_and_entropies(t.model, ids, am, C)
    ours = t._amir_capture[0]
    t._amir_capture = None
    model, _ = load(tiny_ckpt)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=am).logits[:, -C - 1:-1]  # (B, C, V)
    gather = lambda lg: lg.log_softmax(-1).gather(-1, b["completion_ids"][..., None]).squeeze(-1)  # noqa: E731
    mask = b["completion_mask"].bool()
    assert torch.allclose(trl_lp[mask], gather(logits / 0.7)[mask], atol=1e-5)  # TRL: T-scaled
    want = gather(logits) if mode == "one" else gather(logits / 0.7)
    assert torch.allclose(ours[mask], want[mask], atol=1e-5)
    ours.sum().backward()  # ℓ is attached to the policy's graph
    assert t.model.get_input_embeddings().weight.grad is not None


# ----------------------------------------------------------------------------- reference = base


def test_reference_base_scores_the_initial_policy(tiny_ckpt, tmp_path):
    from training.trainer import AmirGRPOTrainer

    t = make_trainer(AmirGRPOTrainer, tiny_ckpt, tmp_path / "a", amir=AmirSection(reference="base"))
    assert t._amir_own_ref and t._amir_base is not None
    b = make_batch()
    before = t._base_sequence_logp(b)
    with torch.no_grad():
        for p in t.model.parameters():
            p.add_(0.05)
    assert torch.equal(t._base_sequence_logp(b), before)  # frozen snapshot
    _, grads = loss_and_grads(t, {**b, "amir_ref_logp": before})
    assert grads


def test_reference_base_with_lora_disables_the_adapter(tiny_ckpt, tmp_path):
    from peft import LoraConfig

    from training.trainer import AmirGRPOTrainer

    t = make_trainer(AmirGRPOTrainer, tiny_ckpt, tmp_path / "a", amir=AmirSection(reference="base"),
                     peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    assert t._amir_own_ref and t._amir_base is None
    b = make_batch()
    before = t._base_sequence_logp(b)
    with torch.no_grad():
        for n, p in t.model.named_parameters():
            if "lora_B" in n:
                p.add_(0.5)
    assert torch.allclose(t._base_sequence_logp(b), before, atol=1e-6)


def test_reference_reuses_trl_when_kl_is_on(tiny_ckpt, tmp_path):
    from training.trainer import AmirGRPOTrainer

    t = make_trainer(AmirGRPOTrainer, tiny_ckpt, tmp_path / "a", beta=0.04,
                     amir=AmirSection(reference="base"))
    assert not t._amir_own_ref and t._amir_base is None
    b = make_batch()
    ref_tok = torch.full(b["completion_ids"].shape, -2.0)
    got = t._reference_logp({**b, "ref_per_token_logps": ref_tok}, b["completion_mask"])
    assert got.tolist() == [-2.0] * 8


# ----------------------------------------------------------------------------- a real run


@pytest.mark.slow
def test_two_steps_end_to_end(tiny_ckpt, tmp_path, monkeypatch):
    import training.trainer as tr
    from training.trainer import AMIR_STATE, AmirGRPOTrainer, MetricsJsonlCallback

    calls: list[int] = []

    def reward(prompts, completions, completion_ids, **kw):
        calls.append(len(completions))
        return synthetic_reward(prompts, completions, completion_ids)

    seen = []
    real_mine = tr.mine_pairs

    def spy(rewards, groups, *a, **k):
        p = real_mine(rewards, groups, *a, **k)
        seen.append((groups.clone(), p.clone()))
        return p

    monkeypatch.setattr(tr, "mine_pairs", spy)
    out = tmp_path / "run"
    t = make_trainer(AmirGRPOTrainer, tiny_ckpt, out, reward=reward, max_steps=2, gradient_accumulation_steps=2,
                     save_strategy="steps", save_steps=1,
                     amir=AmirSection(margin=0.5, lambda_schedule="ratio-abs", lambda_init=0.01),
                     callbacks=[MetricsJsonlCallback(tmp_path / "metrics.jsonl")])
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    t.train()
    assert calls == [16, 16]  # one scoring per generation batch, each completion once
    assert len(seen) == 4  # one mining per micro-batch
    for groups, pairs in seen:
        assert set(torch.bincount(groups).tolist()) <= {0, G}
        assert bool((groups[pairs[:, 0]] == groups[pairs[:, 1]]).all())
    assert any(pairs.numel() for _, pairs in seen)
    assert any((p.detach() - before[n]).abs().max() > 0 for n, p in t.model.named_parameters())
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "amir/pairs" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for key in ("loss", "reward", "reward_std", "clip_ratio/region_mean", "completions/clipped_ratio",
                "amir/lambda", "amir/margin", "amir/pref_loss", "amir/mean_gap"):
        assert key in steps[0], key
    state = json.loads((out / "checkpoint-2" / AMIR_STATE).read_text())
    assert state["value"] == pytest.approx(t._amir_schedule.value)
    assert math.isfinite(state["value"])
