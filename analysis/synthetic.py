"""Synthetic run directories for performance checks and demos (no model, no grader).

`make_synthetic_runs(out, n_runs=3, n_records=100_000)` writes n_runs comparable runs (same
benchmark rows and n) with samples.jsonl and scores.jsonl whose statistics look like the
paper's: later runs solve a bit more, incorrect samples are longer and truncated more often,
and the log-prob margin grows from 0.006 (first run) to 0.016 (last run).

    python -m analysis.synthetic OUT_DIR [--records N] [--runs M]   # build + time analyses
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sys
import time
from pathlib import Path

from amir_bench.jsonio import atomic_write_json, atomic_write_text
from amir_bench.records import MANIFEST, SAMPLES, SCORES

# (name, relative size) of the benchmarks the suite reports on
BENCHMARKS = (("math500", 500), ("gsm8k", 1319), ("aime24", 30), ("aime25", 30), ("amc23", 40))


def _allocate(total: int, weights: list[int]) -> list[int]:
    """Split total into integer parts proportional to weights (largest remainder)."""
    w = [x / sum(weights) for x in weights]
    raw = [total * x for x in w]
    parts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True):
        if sum(parts) >= total:
            break
        parts[i] += 1
    return parts


def make_synthetic_runs(out_dir, n_runs: int = 3, n_records: int = 100_000, seed: int = 0,
                        n: int = 16, max_new_tokens: int = 4096) -> list[Path]:
    """Write n_runs run directories under out_dir with about n_records samples in all
    (floor(n_records / (n_runs * n)) problems, n samples each). Returns their paths."""
    import numpy as np

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    n_problems = max(1, n_records // (n_runs * n))
    sizes = _allocate(n_problems, [s for _, s in BENCHMARKS])
    benches = [(name, k) for (name, _), k in zip(BENCHMARKS, sizes) if k > 0]
    props = _problem_props(rng, benches, seed)
    paths = []
    for r in range(n_runs):
        frac = r / max(1, n_runs - 1)
        skill = 0.35 * frac
        margin = 0.006 + 0.010 * frac  # paper Fig. 4: GRPO 0.006 -> AMIR-GRPO 0.016
        run_dir = out_dir / f"run{r}"
        run_dir.mkdir(parents=True, exist_ok=True)
        sample_lines, score_lines = [], []
        manifest_b = {}
        for name, k in benches:
            pr = props[name]
            _benchmark_lines(rng, name, pr, n, (skill, margin, max_new_tokens),
                             f"synthetic/ckpt{r}", sample_lines, score_lines)
            manifest_b[name] = {"source": f"synthetic:{name}", "sha256": pr["sha"],
                                "count": k, "problem_ids": list(pr["ids"])}
        manifest = {
            "checkpoint": {"path": f"synthetic/ckpt{r}", "sha256": None},
            "backend": "synthetic",
            "decoding": {"n": n, "temperature": 1.0, "top_p": 1.0, "top_k": -1,
                         "max_new_tokens": max_new_tokens, "seed": seed},
            "template": "synthetic",
            "benchmarks": manifest_b,
            "shard": "0/1",
            "amir_bench_version": _version(),
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_text(run_dir / SAMPLES, "\n".join(sample_lines) + "\n")
        atomic_write_text(run_dir / SCORES, "\n".join(score_lines) + "\n")
        atomic_write_json(run_dir / MANIFEST, manifest)
        paths.append(run_dir)
    return paths


def _problem_props(rng, benches, seed: int) -> dict:
    """Shared problem properties per benchmark: ids, difficulty (logit), typical length, gold."""
    import numpy as np

    props = {}
    for name, k in benches:
        ids = [f"{name}-{i:05d}" for i in range(k)]
        base = {"gsm8k": 2.0, "math500": 0.5, "amc23": -0.5}.get(name, -2.0)
        props[name] = {
            "ids": ids,
            "logit": rng.normal(base, 1.5, size=k),  # (k,)
            "len": rng.lognormal(np.log(600 if name == "gsm8k" else 1400), 0.4, size=k),  # (k,)
            "gold": rng.integers(0, 1000, size=k),
            "sha": hashlib.sha256(f"{name}:{k}:{seed}".encode()).hexdigest(),
        }
    return props


def _benchmark_lines(rng, name: str, pr: dict, n: int, run_params: tuple, scorer: str,
                     sample_lines: list, score_lines: list) -> None:
    """Append one run's sample and score JSON lines of one benchmark.
    run_params: (skill added to the logit, log-prob margin, max_new_tokens)."""
    import numpy as np

    skill, margin, max_new_tokens = run_params
    k = len(pr["ids"])
    p = 1.0 / (1.0 + np.exp(-(pr["logit"] + skill + rng.normal(0, 0.3, size=k))))
    correct = rng.random((k, n)) < p[:, None]  # (k, n)
    factor = np.where(correct, 1.0, 1.35) * rng.lognormal(0, 0.35, size=(k, n))
    tokens = np.minimum((pr["len"][:, None] * factor).astype(np.int64) + 20,
                        max_new_tokens)  # (k, n)
    truncated = tokens >= max_new_tokens
    correct &= ~truncated
    wrong = pr["gold"][:, None] + rng.integers(1, 50, size=(k, n))
    answer = np.where(correct, pr["gold"][:, None], wrong)  # (k, n)
    no_answer = truncated | (rng.random((k, n)) < 0.03) & ~correct
    ell = (-0.45 + rng.normal(0, 0.05, size=k)[:, None]
           + rng.normal(0, 0.03, size=(k, n)) + np.where(correct, margin / 2, -margin / 2))
    for i, pid in enumerate(pr["ids"]):
        gold = str(int(pr["gold"][i]))
        for j in range(n):
            ok = bool(correct[i, j])
            na = bool(no_answer[i, j])
            ans = None if na else str(int(answer[i, j]))
            nt = int(tokens[i, j])
            sample_lines.append(json.dumps({
                "benchmark": name, "problem_id": pid, "sample_idx": j,
                "completion": f"Work for {pid} ... the answer is \\boxed{{{ans}}}"
                if ans is not None else f"Work for {pid} ...",
                "finish_reason": "length" if truncated[i, j] else "stop",
                "num_tokens": nt, "gen_logprob_sum": float(ell[i, j] * nt),
                "extracted": ans, "correct": ok,
                "grade_status": "no_answer" if na else "ok", "gold": gold}))
            score_lines.append(json.dumps({
                "benchmark": name, "problem_id": pid, "sample_idx": j,
                "logprob_sum": float(ell[i, j] * nt), "logprob_mean": float(ell[i, j]),
                "num_tokens": nt, "scorer": scorer}))


def _version() -> str:
    try:
        from amir_bench import __version__
        return __version__
    except Exception:  # pragma: no cover
        return "unknown"


def time_analyses(run_dirs, seed: int = 0) -> dict:
    """Seconds of load + coverage + length + margin over the runs (one shared load):
    {"wall": {step: s}, "cpu": {step: s}}; CPU time shows the cost on a busy machine."""
    from analysis.coverage import coverage
    from analysis.length import length_bias
    from analysis.margin import margin
    from amir_bench.records import load_runs

    wall, cpu = {}, {}
    t0, c0 = time.perf_counter(), time.process_time()
    holder = {}
    steps = (("load", lambda: holder.update(rs=load_runs(run_dirs, scores=True))),
             ("coverage", lambda: coverage(holder["rs"], seed=seed)),
             ("length", lambda: length_bias(holder["rs"], seed=seed)),
             ("margin", lambda: margin(holder["rs"], seed=seed)))
    for name, fn in steps:
        t1, c1 = time.perf_counter(), time.process_time()
        fn()
        wall[name] = time.perf_counter() - t1
        cpu[name] = time.process_time() - c1
    wall["total"] = time.perf_counter() - t0
    cpu["total"] = time.process_time() - c0
    return {"wall": wall, "cpu": cpu}


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    paths = make_synthetic_runs(a.out, a.runs, a.records, a.seed)
    print(f"generated {len(paths)} runs in {time.perf_counter() - t0:.2f}s")
    t = time_analyses(paths, a.seed)
    for k in t["wall"]:
        print(f"{k:>9}: {t['wall'][k]:.2f}s wall, {t['cpu'][k]:.2f}s cpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
