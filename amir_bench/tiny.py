"""Tiny tokenizers and models built on the fly: tests, the `tiny-cpu` recipe and the demo.

A byte-level BPE tokenizer trained with `tokenizers` on `arith` text and the prompt
templates, wrapped as PreTrainedTokenizerFast with a ChatML-style chat template, and a
small Llama-architecture model (random weights). Everything runs offline on a CPU.
"""

from __future__ import annotations

from pathlib import Path

EOS = "<|im_end|>"
PAD = "<|endoftext|>"
SPECIAL = [PAD, "<|im_start|>", EOS]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _corpus() -> list[str]:
    from amir_bench.prompts import TEMPLATES, build_messages
    from benchmarks import arith

    texts: list[str] = []
    for split in ("train", "test"):
        for p in arith.generate(split):
            texts.append(p.problem)
            for t in ("boxed", "amir-xml"):
                texts.append(arith.format_solution(p, t))
    for name in TEMPLATES:
        for m in build_messages("{problem}", name):
            texts.append(m["content"])
    texts.append("0123456789 +-*/=()[]{}<>\\$.,:;!?'\" \n")
    return texts


def build_tokenizer(vocab_size: int = 768):
    """Byte-level BPE; any text round-trips (bytes fallback), digits stay single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD,
                                   bos_token=None, unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def build_model(tokenizer, *, hidden: int = 64, layers: int = 2, heads: int = 4,
                intermediate: int = 192, max_positions: int = 1024, seed: int = 0):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=max_positions, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None)
    g = torch.random.fork_rng()
    with g:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None, do_sample=True)
    return model


def build_tiny_checkpoint(out_dir: str | Path, *, seed: int = 0, **model_kw) -> Path:
    """Write a tiny tokenizer + randomly initialized model to `out_dir`; returns the path."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    model = build_model(tok, seed=seed, **model_kw)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
