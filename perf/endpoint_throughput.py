"""Endpoint backend throughput, both ratios measured in one run against a real
`transformers serve --continuous-batching` on 127.0.0.1 (tiny model, CPU):

1. client overhead: `amir-bench run --backend openai` (generation, grading, fsynced records)
   vs a bare asyncio loop of the same `openai` client sending the same chat requests at the
   same concurrency; goal >= 0.95 of the bare loop's samples/s.
2. server scaling: the bare loop's samples/s at concurrency 8 vs 1.

By default the server runs on CPU 0 and the client (with its grading workers) on the others,
as if the server were on another machine (`--no-pin`: all share every CPU).
Rounds are interleaved (bare, amir-bench, bare at concurrency 1); it reports the best of each
side and the median of the per-round ratios, amir-bench timed end to end and from its first
request (after the fixed start), and the client's CPU seconds per sample on each side.

  python perf/endpoint_throughput.py [--problems 64] [--n 4] [--max-new-tokens 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children (grading workers)."""
    import resource

    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def bare_loop(url: str, model: str, prompts: list[tuple[str, list[dict]]], n: int,
              max_new: int, concurrency: int) -> tuple[float, int]:
    """The same chat requests (one per sample, with the same seeds) with nothing around them."""
    import openai

    from amir_bench.backends.hf import row_seed

    async def go() -> int:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="EMPTY", max_retries=0,
                                    timeout=600)
        sem = asyncio.Semaphore(concurrency)

        async def one(msgs: list[dict], seed: int) -> int:
            async with sem:
                r = await client.chat.completions.create(
                    model=model, messages=msgs, temperature=1.0, top_p=1.0,
                    max_tokens=max_new, seed=seed, logprobs=True)
                return len(r.choices)

        try:
            got = await asyncio.gather(*(one(m, row_seed(0, key, s)) for key, m in prompts
                                         for s in range(n)))
        finally:
            await client.close()
        return sum(got)

    t0 = time.perf_counter()
    done = asyncio.run(go())
    return done / (time.perf_counter() - t0), done


def amir_bench_run(url: str, out: Path, problems: int, n: int, max_new: int,
                   concurrency: int) -> tuple[float, float]:
    """`amir-bench run --backend openai` in process: probe, generate, grade, write. Returns
    samples/s end to end, and from the first request to the last record written (without the
    fixed start: data loading, server probe, tokenizer, grader processes)."""
    from amir_bench.backends import endpoint
    from amir_bench.backends.endpoint import EndpointConfig
    from amir_bench.backends import Decoding
    from amir_bench.evaluate import run_eval
    from amir_bench.runconfig import RunConfig

    shutil.rmtree(out, ignore_errors=True)
    cfg = RunConfig(ckpt="", out=out, benchmarks=("arith",),
                    decoding=Decoding(n=n, temperature=1.0, max_new_tokens=max_new),
                    limit=problems, backend="openai",
                    backend_kwargs={"endpoint": EndpointConfig(endpoints=(url,),
                                                               concurrency=concurrency,
                                                               server_n=False)})
    started: list[float] = []
    generate = endpoint.OpenAIBackend.generate

    def timed(self, *a, **kw):  # noqa: ANN001 - marks when the first request goes out
        started.append(time.perf_counter())
        return generate(self, *a, **kw)

    endpoint.OpenAIBackend.generate = timed
    try:
        t0 = time.perf_counter()
        samples = run_eval(cfg)["arith"]["samples"]
        t1 = time.perf_counter()
    finally:
        endpoint.OpenAIBackend.generate = generate
    return samples / (t1 - t0), samples / (t1 - started[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                    help="server on CPU 0, client (and its graders) on the others")
    args = ap.parse_args()

    from amir_bench.prompts import build_messages
    from amir_bench.tiny import build_tiny_checkpoint
    from benchmarks.loaders import load_problems
    from servers import Server

    tmp = Path(tempfile.mkdtemp(prefix="amir-endpoint-perf-"))
    ckpt = build_tiny_checkpoint(tmp / "ckpt")
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = None
    if args.pin and len(cpus) >= 2:  # the server on its own core, as if on another machine
        server_cpus = {cpus[0]}
        os.sched_setaffinity(0, set(cpus[1:]))  # this process and its grading workers
    srv = Server(ckpt, tmp / "server.log", extra=("--continuous-batching",),
                 cpus=server_cpus).start()
    try:
        prompts = [(f"arith/{p.id}", build_messages(p.problem, "boxed"))
                   for p in load_problems("arith", limit=args.problems)]
        k = args.concurrency
        rates: dict[str, list[float]] = {"bare": [], "run": [], "run_gen": [], "bare1": []}
        cpu: dict[str, list[float]] = {"bare": [], "run": []}  # client CPU s per sample
        bare_loop(srv.url, str(ckpt), prompts[:2], 1, 4, 2)  # warm-up
        total = args.problems * args.n
        for r in range(args.rounds):
            c0 = cpu_seconds()
            rates["bare"].append(bare_loop(srv.url, str(ckpt), prompts, args.n,
                                           args.max_new_tokens, k)[0])
            c1 = cpu_seconds()
            run, run_gen = amir_bench_run(srv.url, tmp / "run", args.problems, args.n,
                                          args.max_new_tokens, k)
            cpu["bare"].append((c1 - c0) / total)
            cpu["run"].append((cpu_seconds() - c1) / total)
            rates["run"].append(run)
            rates["run_gen"].append(run_gen)
            quarter = prompts[:max(1, len(prompts) // 4)]  # a rate: a quarter is enough at 1
            rates["bare1"].append(bare_loop(srv.url, str(ckpt), quarter, args.n,
                                            args.max_new_tokens, 1)[0])
            print(f"round {r}: " + ", ".join(f"{a} {v[-1]:.2f}" for a, v in rates.items()) +
                  f" samples/s; client CPU {1000 * cpu['bare'][-1]:.1f} vs "
                  f"{1000 * cpu['run'][-1]:.1f} ms/sample", flush=True)
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report(args, rates, cpu, server_cpus)


def report(args: argparse.Namespace, rates: dict, cpu: dict, server_cpus: set | None) -> None:
    """Best of each side, and the median of the per-round (paired) ratios."""
    import statistics

    best = {a: max(v) for a, v in rates.items()}
    paired = statistics.median(r / b for r, b in zip(rates["run"], rates["bare"]))
    paired_gen = statistics.median(r / b for r, b in zip(rates["run_gen"], rates["bare"]))
    k = args.concurrency
    print(f"{args.problems} problems x n={args.n}, {args.max_new_tokens} new tokens, "
          f"transformers serve --continuous-batching (tiny model, CPU"
          f"{f' {sorted(server_cpus)}, client on the other CPUs' if server_cpus else ''}); "
          f"{args.rounds} rounds")
    print(f"amir-bench run / bare loop at concurrency {k}: best {best['run']:.2f} / "
          f"{best['bare']:.2f} samples/s = {best['run'] / best['bare']:.3f} end to end, "
          f"{best['run_gen'] / best['bare']:.3f} from the first request; median of paired "
          f"rounds {paired:.3f} / {paired_gen:.3f} (goal >= 0.95)")
    print(f"client CPU per sample (median): bare loop "
          f"{1000 * statistics.median(cpu['bare']):.1f} ms, amir-bench run (with grading "
          f"workers) {1000 * statistics.median(cpu['run']):.1f} ms")
    print(f"bare loop concurrency {k} / 1: {best['bare']:.2f} / {best['bare1']:.2f} "
          f"samples/s = {best['bare'] / best['bare1']:.2f}x")

if __name__ == "__main__":
    main()
