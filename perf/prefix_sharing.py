"""HF backend: prompt keys/values shared across rows vs every row run in full, side by side.

    python perf/prefix_sharing.py                       # the demo's model size, arith, n = 8
    python perf/prefix_sharing.py --problems 64 --n 4   # the warm start's probe

Generation: with n > 1 samples a problem, `HFBackend` runs each distinct prompt once and
copies its keys/values to its n rows (backends/prefix.py `prefill_distinct`); the baseline
prefills every row. Scoring: `score_ids` runs the prompt tokens a batch of rows shares once;
the baseline runs every full row (`_shareable` patched to refuse). Same model, requests,
decoding and completions on both sides; the two variants alternate over --repeats rounds and
the best wall time of each is reported, with one torch thread (as the demo's workers run).
Completions must be identical and log-probs equal to float rounding, else the script exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@contextmanager
def full_rows():
    """Every row runs in full: no prompt prefill sharing, no shared scoring prefix."""
    import amir_bench.backends.hf as hf
    import amir_bench.backends.prefix as prefix

    with mock.patch.object(hf, "prefill_distinct", lambda *a: None), \
            mock.patch.object(prefix, "_shareable", lambda cache: False):
        yield


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from amir_bench.backends import Decoding, Request
    from amir_bench.backends.hf import HFBackend
    from amir_bench.prompts import problem_prompt
    from amir_bench.tiny import build_tiny_checkpoint
    from benchmarks import arith
    from benchmarks.specs import get_spec

    torch.set_num_threads(args.threads)
    ckpt = build_tiny_checkpoint(Path(tempfile.mkdtemp()) / "m", seed=0, hidden=128, layers=4,
                                 intermediate=384)
    be = HFBackend(str(ckpt))
    spec = get_spec("arith")
    probs = arith.generate("test", args.problems)
    reqs = [Request(p.id, problem_prompt(p, spec, "amir-xml", be.tokenizer), tuple(range(args.n)))
            for p in probs]
    dec = Decoding(n=args.n, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)

    def generate() -> dict:
        got: dict = {}
        be.generate(reqs, dec, lambda b: got.update(
            {(r.key, s): g for r, gens in b for s, g in gens.items()}))
        return got

    best: dict[str, float] = {}
    outs: dict[str, dict] = {}
    for _ in range(args.repeats):
        for name in ("full", "shared"):
            with full_rows() if name == "full" else nullcontext():
                t = time.perf_counter()
                outs[name] = generate()
                best[f"gen {name}"] = min(best.get(f"gen {name}", 1e9), time.perf_counter() - t)
    gens = outs["full"]
    same = sum(outs["shared"][k].token_ids == g.token_ids for k, g in gens.items())
    keys = sorted(gens)
    pids = {r.key: be.tokenizer(r.prompt, add_special_tokens=False).input_ids for r in reqs}
    P = [pids[k[0]] for k in keys]
    C = [gens[k].token_ids for k in keys]
    scores: dict[str, list] = {}
    for _ in range(args.repeats):
        for name in ("full", "shared"):
            with full_rows() if name == "full" else nullcontext():
                t = time.perf_counter()
                scores[name] = be.score_ids(P, C)
                best[f"score {name}"] = min(best.get(f"score {name}", 1e9),
                                            time.perf_counter() - t)
    dmax = max((abs(a - b) for x, y in zip(scores["full"], scores["shared"]) for a, b in zip(x, y)),
               default=0.0)
    tokens = sum(len(c) for c in C)
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; "
          f"{args.threads} torch thread(s)")
    print(f"{args.problems} arith problems x n={args.n}, amir-xml prompt "
          f"({sum(map(len, P)) / len(P):.0f} tokens), {tokens / len(C):.1f} completion tokens a row")
    print("| stage | every row in full, s | shared prompt, s | ratio |")
    print("|---|---:|---:|---:|")
    for stage in ("gen", "score"):
        f, s = best[f"{stage} full"], best[f"{stage} shared"]
        print(f"| {'generation' if stage == 'gen' else 'scoring'} | {f:.2f} | {s:.2f} | "
              f"**{f / s:.2f}x** |")
    print(f"identical completions: {same}/{len(gens)}; max |log-prob difference| {dmax:.2e}")
    if same != len(gens) or dmax > 1e-3:
        sys.exit(1)


if __name__ == "__main__":
    main()
