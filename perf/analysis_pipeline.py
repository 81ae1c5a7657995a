"""Wall time of the analysis pipeline: coverage + length + margin + report, then the "where"
analyses (pass@k / maj@k curves, strata by level / subject / difficulty, accuracy vs tokens,
their figures) over synthetic runs.

    python perf/analysis_pipeline.py [--records 100000] [--runs 3] [--n 16] [--out DIR]
    python perf/analysis_pipeline.py --records 1000000 --n 64 --goal 30   # the 1M target

Builds the runs with analysis.synthetic (not timed), then renders one report with
reports.render.build_report, which loads each run once and hands the same frames to
coverage, length bias and margin (scores.jsonl included), then draws and writes the report.
The "where" stage (reports.where) then runs on the same runs and the report's coverage; its
second load of the runs is timed apart ("where load") and left out of the total, since a
report that includes these sections loads once. Synthetic problems get a level (1-5) and a
subject (7) from their index, so strata by level and subject are computed too. Prints wall
seconds per stage, the total (counted from before the heavy imports, so it is what a user
waits) and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL_S = 15.0
SUBJECTS = ("Algebra", "Counting & Probability", "Geometry", "Intermediate Algebra",
            "Number Theory", "Prealgebra", "Precalculus")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000, help="samples in all runs together")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=16, help="samples per problem")
    ap.add_argument("--goal", type=float, default=GOAL_S, help="wall-time goal in seconds")
    ap.add_argument("--out", type=Path, default=None, help="keep runs and report here")
    ap.add_argument("--json", type=Path, default=None, help="also write the timings as JSON")
    ap.add_argument("--reuse", action="store_true", help="analyse the runs already in --out")
    a = ap.parse_args(argv)

    work = a.out or Path(tempfile.mkdtemp(prefix="amir-perf-"))
    try:
        from analysis.synthetic import make_synthetic_runs

        t0 = time.perf_counter()
        runs = sorted((work / "runs").glob("run*")) if a.reuse else []
        if not runs:
            runs = make_synthetic_runs(work / "runs", a.runs, a.records, a.seed, n=a.n)
        gen = time.perf_counter() - t0
        n_samples = sum(sum(1 for _ in open(r / "samples.jsonl", encoding="utf-8")) for r in runs)
        print(f"generated or found {len(runs)} runs, {n_samples} samples in {gen:.2f}s "
              "(not timed below)")

        load_before = os.getloadavg()[0]
        cpu0 = time.process_time()
        t_start = time.perf_counter()
        from reports.render import build_report  # imports pandas/numpy; matplotlib comes later

        timings: dict[str, float] = {"imports": time.perf_counter() - t_start}
        data = build_report(runs, work / "report", seed=a.seed, resamples=a.resamples,
                            timings=timings)
        where_stage(runs, data, a, timings)
        total = time.perf_counter() - t_start - timings["where load"]
        cpu = time.process_time() - cpu0
        stages = ["imports", "load", "summaries", "coverage", "length", "margin", "drilldown",
                  "figures", "where", "render+write", "where load",
                  "strata by level, subject"]
        for k in stages:
            if k in timings:
                print(f"{k:>25}: {timings[k]:6.2f}s")
        print(f"{'total':>25}: {total:6.2f}s  (goal <= {a.goal:.0f}s; {os.cpu_count()} CPUs; "
              f"{n_samples} samples, {a.runs} runs, n = {a.n}, {a.resamples} resamples; "
              f"without 'where load')")
        print(f"{'where cpu':>13}: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings["cpu"].items())
              + "  (process CPU time of each where step)")
        peak = peak_rss_gib()
        print(f"{'peak memory':>13}: {peak:6.2f} GiB (max resident set size of this process)")
        print(f"{'cpu':>13}: {cpu:6.2f}s  (this process; load average {load_before:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after: a busy machine inflates wall time)")
        if a.json:
            a.json.write_text(json.dumps({"samples": n_samples, "runs": a.runs,
                                          "resamples": a.resamples, "cpus": os.cpu_count(),
                                          "stages": {k: timings[k] for k in stages if k in timings},
                                          "where_cpu": timings["cpu"],
                                          "total": total, "cpu": cpu, "peak_rss_gib": peak,
                                          "n": a.n}, indent=2) + "\n")
        if a.out:
            print(f"report: {work / 'report' / 'report.html'}")
        return 0 if total <= a.goal else 1
    finally:
        if a.out is None:
            shutil.rmtree(work, ignore_errors=True)


def where_stage(runs, data: dict, a, timings: dict) -> None:
    """What the report cannot compute on synthetic runs: strata by level and subject (their
    rows carry neither; each problem gets one here from its index). The report itself already
    holds the curves, the difficulty strata, tokens and their figures."""
    from amir_bench.records import load_run
    from reports.where import collect_strata

    t0 = time.perf_counter()
    loaded = [load_run(p) for p in runs]
    timings["where load"] = time.perf_counter() - t0
    cov = data["coverage"]
    meta = {(b, pid): {"subject": SUBJECTS[i % len(SUBJECTS)], "level": 1 + i % 5}
            for b, blk in cov["benchmarks"].items() for i, pid in enumerate(blk["problem_ids"])}
    t1, c1 = time.perf_counter(), time.process_time()
    collect_strata(loaded, cov, metadata=meta, seed=a.seed, resamples=a.resamples)
    timings["strata by level, subject"] = time.perf_counter() - t1
    timings.setdefault("cpu", {})["strata by level, subject"] = time.process_time() - c1


def peak_rss_gib() -> float:
    """Peak resident memory of this process in GiB (ru_maxrss is KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


if __name__ == "__main__":
    sys.exit(main())
