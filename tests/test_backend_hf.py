"""HF backend: seeded Gumbel sampling is exact and batch-independent; loading errors; scoring."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from amir_bench.backends import Decoding, Request
from amir_bench.backends.hf import (HFBackend, SeededSampler, gumbel_noise, resolve_checkpoint,
                                    row_seed)
from amir_bench.errors import UserError


def test_gumbel_noise_is_a_pure_function_of_seed_step_token():
    seeds = torch.tensor([row_seed(0, "a", 0), row_seed(0, "b", 3)])
    a = gumbel_noise(seeds, 5, 50)
    b = gumbel_noise(seeds.flip(0), 5, 50).flip(0)  # row order does not matter
    assert torch.equal(a, b)
    assert not torch.equal(a, gumbel_noise(seeds, 6, 50))
    assert torch.isfinite(a).all()


def test_seeded_sampler_matches_the_softmax_distribution():
    """Gumbel-max over many row seeds reproduces softmax(logits / T) frequencies."""
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5])
    temp = 0.7
    rows = 20000
    dec = Decoding(temperature=temp)
    s = SeededSampler([row_seed(1, "k", i) for i in range(rows)], dec, prompt_len=3,
                      device=torch.device("cpu"))
    out = s(torch.zeros((rows, 3), dtype=torch.long), logits.expand(rows, -1).clone())
    choice = out.argmax(-1)
    freq = torch.bincount(choice, minlength=5).float() / rows
    probs = torch.softmax(logits / temp, -1)
    assert torch.allclose(freq, probs, atol=0.015), (freq, probs)
    # the recorded log-prob is that of the sampled token under the sampling distribution
    lp = torch.log_softmax(logits / temp, -1)
    assert torch.allclose(s.step_logprobs[0], lp[choice])
    # scores returned force exactly the sampled token
    assert torch.isinf(out).sum() == rows * 4


def test_top_k_and_top_p_restrict_the_support():
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0])
    rows = 2000
    for dec, allowed in [(Decoding(temperature=1.0, top_k=2), {0, 1}),
                         (Decoding(temperature=1.0, top_p=0.5), {0})]:
        s = SeededSampler([row_seed(0, "k", i) for i in range(rows)], dec, 1, torch.device("cpu"))
        choice = s(torch.zeros((rows, 1), dtype=torch.long), logits.expand(rows, -1).clone())
        assert set(choice.argmax(-1).tolist()) <= allowed


def _collect(backend, requests, decoding):
    got = {}

    def on_batch(batch):
        for req, gens in batch:
            for s, g in gens.items():
                got[(req.key, s)] = g
    backend.generate(requests, decoding, on_batch)
    return got


def test_completions_do_not_depend_on_batch_plan(tiny_ckpt):
    b = HFBackend(str(tiny_ckpt), batch_size=64)
    dec = Decoding(n=3, temperature=1.0, max_new_tokens=12, seed=7)
    reqs = [Request(f"p{i}", f"Question: {i} plus {2 * i}?" + " more" * (i % 4), (0, 1, 2))
            for i in range(8)]
    full = _collect(b, reqs, dec)
    b.batch_size = 5
    partial = _collect(b, [Request(r.key, r.prompt, (2, 0)) for r in reversed(reqs)], dec)
    assert len(full) == 24 and len(partial) == 16
    for k, g in partial.items():
        assert g.text == full[k].text and g.num_tokens == full[k].num_tokens
        assert math.isclose(g.logprob_sum, full[k].logprob_sum, abs_tol=1e-4)
    assert len({g.text for g in full.values()}) > 12  # samples differ across rows
    other = _collect(b, reqs[:1], Decoding(n=3, temperature=1.0, max_new_tokens=12, seed=8))
    assert any(other[("p0", s)].text != full[("p0", s)].text for s in range(3))
    for g in full.values():
        assert g.finish_reason in ("stop", "length") and 1 <= g.num_tokens <= 12
        assert g.logprob_sum <= 0


def test_scoring_matches_the_sampler_at_temperature_one(tiny_ckpt):
    """Teacher forcing the sampled ids reproduces the sampler's log-probs token by token."""
    b = HFBackend(str(tiny_ckpt))
    dec = Decoding(n=4, temperature=1.0, max_new_tokens=10, seed=3)
    req = Request("q", "Question: 3 plus 4?", (0, 1, 2, 3))
    gens = _collect(b, [req], dec)
    pids = b.tokenizer(req.prompt, add_special_tokens=False).input_ids
    for s in range(4):
        g = gens[("q", s)]
        assert len(g.token_ids) == g.num_tokens
        scored = b.score_ids([pids], [g.token_ids])[0]
        assert math.isclose(sum(scored), g.logprob_sum, rel_tol=1e-4, abs_tol=1e-3)
    # text scoring tokenizes the completion text (no stop token) and returns one value a token
    text_scores = b.score([req.prompt], [gens[("q", 0)].text])[0]
    assert len(text_scores) == len(b.tokenizer(gens[("q", 0)].text,
                                               add_special_tokens=False).input_ids)


def test_shared_prompt_prefill_gives_the_full_rows_completions(tiny_ckpt, monkeypatch):
    """n > 1: each distinct prompt is run once and its keys/values copied to its rows; prompts
    of different lengths (left padding) in one batch; same tokens as full-row prefill."""
    import amir_bench.backends.hf as hf
    from amir_bench.backends.prefix import prefill_distinct

    b = HFBackend(str(tiny_ckpt), batch_size=16)
    dec = Decoding(n=4, temperature=1.0, max_new_tokens=12, seed=5)
    reqs = [Request(f"p{i}", f"Question: {i} times {i + 2}?" + " and" * i, (0, 1, 2, 3))
            for i in range(5)]
    calls = []
    monkeypatch.setattr(hf, "prefill_distinct",
                        lambda *a: calls.append(1) or prefill_distinct(*a))
    shared = _collect(b, reqs, dec)
    assert calls and len(shared) == 20
    monkeypatch.setattr(hf, "prefill_distinct", lambda *a: None)
    full = _collect(b, reqs, dec)
    for k, g in full.items():
        assert shared[k].token_ids == g.token_ids and shared[k].finish_reason == g.finish_reason
        assert math.isclose(shared[k].logprob_sum, g.logprob_sum, abs_tol=1e-4)


def test_prefill_distinct_declines_when_nothing_repeats(tiny_ckpt):
    from amir_bench.backends.prefix import prefill_distinct

    b = HFBackend(str(tiny_ckpt))
    ids = torch.tensor([[5, 6, 7], [5, 6, 8]])
    assert prefill_distinct(b.model, ids, torch.ones_like(ids)) is None
    assert prefill_distinct(b.model, ids[:, :1], torch.ones_like(ids[:, :1])) is None
    key, cache = prefill_distinct(b.model, ids[[0, 0, 1]], torch.ones((3, 3), dtype=torch.long))
    assert cache.get_seq_length() == 2  # the last prompt token is left to generate
    b.model.generation_config.cache_implementation = "static"  # generate builds its own
    assert prefill_distinct(b.model, ids[[0, 0, 1]], torch.ones((3, 3), dtype=torch.long)) is None


def test_scoring_with_a_shared_prefix_equals_full_rows(tiny_ckpt, monkeypatch):
    """score_ids runs the prompt tokens a batch shares once; the log-probs are those of a
    plain forward over each full row, for mixed prompts, batch sizes and an empty completion."""
    import amir_bench.backends.prefix as prefix

    b = HFBackend(str(tiny_ckpt))
    enc = lambda t: b.tokenizer(t, add_special_tokens=False).input_ids  # noqa: E731
    system = enc("You are a careful solver. Put the answer last. ")
    prompts = [system + enc(f"Q{i}: what is {i} + {i}?") for i in range(3)]
    comps = [enc(" it is"), enc(" 4, I think so"), [], enc(" two")] * 2
    P = [prompts[i % 3] for i in range(8)]
    want = []
    with torch.no_grad():
        for p, c in zip(P, comps):
            lp = torch.log_softmax(b.model(input_ids=torch.tensor([p + c])).logits[0], -1)
            want.append([lp[len(p) - 1 + t, tok].item() for t, tok in enumerate(c)])
    shared = []
    real = prefix.prefix_cache
    monkeypatch.setattr(prefix, "prefix_cache",
                        lambda m, pre, *a: shared.append(len(pre)) or real(m, pre, *a))
    for bs in (1, 3, 8):
        got = b.score_ids(P, comps, batch_size=bs)
        assert [len(g) for g in got] == [len(c) for c in comps]
        for g, w in zip(got, want):
            assert all(math.isclose(x, y, abs_tol=1e-4) for x, y in zip(g, w))
    assert min(shared) >= len(system)  # every batch ran at least the system prompt once
    monkeypatch.setattr(prefix, "_shareable", lambda cache: False)  # e.g. a static cache
    got = b.score_ids(P, comps, batch_size=4)
    for g, w in zip(got, want):
        assert all(math.isclose(x, y, abs_tol=1e-4) for x, y in zip(g, w))


def test_greedy_is_deterministic(tiny_ckpt):
    b = HFBackend(str(tiny_ckpt))
    req = Request("q", "Question: 3 plus 4?", (0,))
    greedy = Decoding(n=1, temperature=0.0, max_new_tokens=10)
    a1 = _collect(b, [req], greedy)[("q", 0)]
    a2 = _collect(b, [req], greedy)[("q", 0)]
    assert a1.text == a2.text and a1.token_ids == a2.token_ids


def test_checkpoint_errors_are_one_line(tmp_path, tiny_ckpt):
    with pytest.raises(UserError, match="checkpoint not found"):
        resolve_checkpoint(str(tmp_path / "missing"))
    notok = tmp_path / "notok"
    notok.mkdir()
    for f in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(tiny_ckpt / f, notok / f)
    with pytest.raises(UserError, match="has no tokenizer"):
        resolve_checkpoint(str(notok))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no config.json"):
        resolve_checkpoint(str(empty))
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": str(tmp_path / "gone")}))
    with pytest.raises(UserError, match="base model not found"):
        resolve_checkpoint(str(lora))


def test_lora_adapter_dir_resolves_to_base_plus_adapter(tmp_path, tiny_ckpt):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_ckpt)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8,
                                                  target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.add_(0.5)  # a non-trivial adapter
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tiny_ckpt)
    src, ad, tok_src = resolve_checkpoint(str(adapter))
    assert (src, ad, tok_src) == (str(tiny_ckpt), str(adapter), str(tiny_ckpt))
    dec = Decoding(n=2, temperature=1.0, max_new_tokens=8)
    req = [Request("x", "Question: 1 plus 1?", (0, 1))]
    base_out = _collect(HFBackend(str(tiny_ckpt)), req, dec)
    lora_out = _collect(HFBackend(str(adapter)), req, dec)
    assert any(base_out[k].logprob_sum != lora_out[k].logprob_sum for k in base_out)
