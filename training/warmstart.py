"""Supervised warm start of a tiny model on `arith` reference solutions.

RL needs a policy that sometimes succeeds: the demo trains a fresh tiny model on
template-formatted reference completions until its sampled accuracy sits inside a target
band (20-60 % by default), leaving room for GRPO / AMIR-GRPO to improve it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from benchmarks import arith


@dataclass
class WarmStartConfig:
    template: str = "amir-xml"
    lr: float = 3e-3
    batch_size: int = 32
    steps_per_check: int = 100
    min_steps: int = 0  # train at least this many steps whatever the probe says
    max_steps: int = 1500
    # Stop once the probe estimate reaches target_low. It sits above the band's 20 % floor
    # because the 64-problem probe is noisy (±5 points) and the full test split decides.
    target_low: float = 0.25
    target_high: float = 0.60
    probe_problems: int = 64  # test problems used to estimate accuracy between chunks
    probe_n: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 48
    seed: int = 0


def sft_examples(tok, problems, spec, template: str) -> list[tuple[list[int], int]]:
    """(prompt + reference completion + eos ids, prompt length) per problem; the prompt is
    exactly the one evaluation and RL use."""
    from amir_bench.prompts import problem_prompt

    out = []
    for p in problems:
        prompt = tok(problem_prompt(p, spec, template, tok), add_special_tokens=False).input_ids
        comp = tok(arith.format_solution(p, template), add_special_tokens=False).input_ids
        out.append((prompt + comp + [tok.eos_token_id], len(prompt)))
    return out


def _batch(rows, pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)  # (B, T)
    attn = torch.zeros_like(ids)  # (B, T)
    labels = torch.full_like(ids, -100)  # (B, T): loss on completion tokens only
    for i, (seq, plen) in enumerate(rows):
        ids[i, :len(seq)] = torch.tensor(seq)
        attn[i, :len(seq)] = 1
        labels[i, plen:len(seq)] = torch.tensor(seq[plen:])
    return ids, attn, labels


def sft_steps(model, examples, opt, rng: random.Random, steps: int, batch_size: int,
              pad: int) -> float:
    """`steps` AdamW steps of teacher forcing on random batches; returns the last loss."""
    model.train()
    loss = torch.zeros(())
    for _ in range(steps):
        ids, attn, labels = _batch(rng.sample(examples, min(batch_size, len(examples))), pad)
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
    return loss.item()


def probe_accuracy(ckpt: Path, cfg: WarmStartConfig) -> float:
    """Sampled accuracy (avg@probe_n) on the first probe_problems of the arith test split."""
    from amir_bench.backends import Decoding, Request
    from amir_bench.backends.hf import HFBackend
    from amir_bench.grading import GradeItem, Grader
    from amir_bench.prompts import problem_prompt
    from benchmarks.specs import get_spec

    be = HFBackend(str(ckpt))
    probs = arith.generate("test", cfg.probe_problems)
    spec = get_spec("arith")
    reqs = [Request(p.id, problem_prompt(p, spec, cfg.template, be.tokenizer),
                    tuple(range(cfg.probe_n))) for p in probs]
    gold = {p.id: p.answer for p in probs}
    texts: list[tuple[str, str]] = []
    be.generate(reqs, Decoding(n=cfg.probe_n, temperature=cfg.temperature,
                               max_new_tokens=cfg.max_new_tokens, seed=cfg.seed + 1),
                lambda batch: texts.extend((r.key, g.text) for r, gens in batch
                                           for g in gens.values()))
    extract = spec.extract
    with Grader(workers=1) as grader:
        res = grader.grade([GradeItem(t, gold[k], extract) for k, t in texts])
    return sum(r.correct for r in res) / max(1, len(res))


def warm_start(ckpt: Path, cfg: WarmStartConfig,
               log: Callable[[str], None] = print) -> dict:
    """Train `ckpt` in place in chunks until the probe accuracy enters the target band."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmarks.specs import get_spec

    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    data = sft_examples(tok, arith.generate("train"), get_spec("arith"), cfg.template)
    rng = random.Random(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    history = []
    step = 0
    acc = probe_accuracy(ckpt, cfg)
    history.append({"step": 0, "probe_accuracy": acc})
    while step < cfg.max_steps and (acc < cfg.target_low or step < cfg.min_steps):
        loss = sft_steps(model, data, opt, rng, cfg.steps_per_check, cfg.batch_size,
                         tok.pad_token_id)
        step += cfg.steps_per_check
        model.save_pretrained(ckpt)
        acc = probe_accuracy(ckpt, cfg)
        history.append({"step": step, "loss": loss, "probe_accuracy": acc})
        log(f"warm start: step {step} loss {loss:.3f} probe avg@{cfg.probe_n} {acc:.1%}")
        if acc > cfg.target_high:
            log("warm start: probe accuracy above the band; keeping this checkpoint")
            break
    return {"steps": step, "probe_accuracy": acc, "history": history}
