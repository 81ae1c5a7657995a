"""Evaluation throughput: `amir-bench run` (HF backend) vs one problem per generate call.

The baseline is how the AMIR-GRPO paper's code evaluates: a loop over problems, each a
`generate(..., num_return_sequences=n, do_sample=True)` call, then in-process grading.
Both sides use the same model, the same problems, n and max_new_tokens, and are measured
side by side in one process run (interleaved repeats; the best of each is reported).

  python perf/eval_throughput.py                      # tiny model, 64 arith problems, n=8
  python perf/eval_throughput.py --gpu-shape          # random Qwen2.5-0.5B-shaped model (GPU)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def qwen05b_shaped_checkpoint(out: Path) -> Path:
    """A randomly initialized model with Qwen2.5-0.5B's shape (vocab 151,936)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from amir_bench.tiny import build_tokenizer

    tok = build_tokenizer()
    cfg = LlamaConfig(vocab_size=151_936, hidden_size=896, intermediate_size=4864,
                      num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                      max_position_embeddings=4096, tie_word_embeddings=True,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def baseline(ckpt: str, problems, n: int, max_new: int, template: str) -> float:
    """One problem per call, num_return_sequences=n, serial grading in one process."""
    import torch
    from math_verify import parse, verify

    from amir_bench.backends.hf import load_model_and_tokenizer
    from amir_bench.prompts import build_prompt

    model, tok = load_model_and_tokenizer(ckpt)
    dev = next(model.parameters()).device
    t0 = time.perf_counter()
    done = 0
    for p in problems:
        enc = tok(build_prompt(p.problem, template, tok), return_tensors="pt",
                  add_special_tokens=False).to(dev)
        with torch.no_grad():
            out = model.generate(**enc, do_sample=True, temperature=1.0, top_p=1.0,
                                 num_return_sequences=n, max_new_tokens=max_new,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        texts = tok.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)
        gold = parse(f"${p.answer}$", parsing_timeout=None)
        for t in texts:
            verify(gold, parse(t, parsing_timeout=None), timeout_seconds=None)
        done += len(texts)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - t0)


def amir_run(ckpt: str, out: Path, n: int, max_new: int, limit: int, template: str,
             batch_size: int | None) -> float:
    from amir_bench.backends import Decoding
    from amir_bench.evaluate import run_eval
    from amir_bench.runconfig import RunConfig

    if out.exists():
        shutil.rmtree(out)
    cfg = RunConfig(ckpt=ckpt, out=out, benchmarks=("arith",),
                    decoding=Decoding(n=n, temperature=1.0, max_new_tokens=max_new),
                    limit=limit, template=template, backend="hf", batch_size=batch_size)
    t0 = time.perf_counter()
    run_eval(cfg)
    return limit * n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--template", default="boxed")
    ap.add_argument("--gpu-shape", action="store_true",
                    help="random Qwen2.5-0.5B-shaped model; use --max-new-tokens 256 on a GPU")
    args = ap.parse_args()

    import torch

    from amir_bench.tiny import build_tiny_checkpoint
    from benchmarks import arith

    tmp = Path(tempfile.mkdtemp(prefix="amir-perf-"))
    ckpt = qwen05b_shaped_checkpoint(tmp / "ckpt") if args.gpu_shape \
        else build_tiny_checkpoint(tmp / "ckpt")
    problems = arith.generate("test", args.problems)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"device: {device}; problems={args.problems} n={args.n} "
          f"max_new_tokens={args.max_new_tokens} torch threads={torch.get_num_threads()}")
    base, ours = [], []
    for r in range(args.repeats):  # interleaved
        base.append(baseline(str(ckpt), problems, args.n, args.max_new_tokens, args.template))
        ours.append(amir_run(str(ckpt), tmp / f"run{r}", args.n, args.max_new_tokens,
                             args.problems, args.template, args.batch_size))
        print(f"  repeat {r}: one-problem-per-call {base[-1]:8.1f} samples/s | "
              f"amir-bench run {ours[-1]:8.1f} samples/s")
    print(f"one problem per call (num_return_sequences={args.n}): {max(base):.1f} samples/s")
    print(f"amir-bench run (batched across problems):      {max(ours):.1f} samples/s")
    print(f"speedup: {max(ours) / max(base):.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
