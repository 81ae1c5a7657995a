"""Wall time and peak memory of the analysis pipeline: load + coverage + length + margin + report
over synthetic runs.

    python perf/analysis_pipeline.py [--records 100000] [--runs 3] [--out DIR] [--reuse]
    python perf/analysis_pipeline.py --records 1000000 --out /tmp/p1m --reuse   # 1M records

Builds the runs with analysis.synthetic (not timed), then renders one report with
reports.render.build_report, which loads each run once and hands the same frames to
coverage, length bias and margin (scores.jsonl included), then draws and writes the report.
Prints wall seconds per stage, the total (goal: <= 15 s on 2 cores for 100,000 records in 3
runs; <= 30 s and <= 4 GiB for 1,000,000) and the process's peak resident memory. The total
counts from before the heavy imports, so it is what a user waits. With --reuse, runs already
in --out are analysed again instead of generated anew (1,000,000 records take minutes to write).
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

GOAL_S = 15.0  # per 100,000 records ...
GOAL_1M_S = 30.0  # ... and for 1,000,000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000, help="samples in all runs together")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resamples", type=int, default=10_000)
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
            runs = make_synthetic_runs(work / "runs", a.runs, a.records, a.seed)
        gen = time.perf_counter() - t0
        n_samples = sum(sum(1 for _ in open(r / "samples.jsonl", encoding="utf-8")) for r in runs)
        print(f"generated or found {len(runs)} runs, {n_samples} samples in {gen:.2f}s "
              "(not timed below)")

        load_before = os.getloadavg()[0]
        cpu0 = time.process_time()
        t_start = time.perf_counter()
        from reports.render import build_report  # imports pandas/numpy; matplotlib comes later

        timings: dict[str, float] = {"imports": time.perf_counter() - t_start}
        build_report(runs, work / "report", seed=a.seed, resamples=a.resamples, timings=timings)
        total = time.perf_counter() - t_start
        cpu = time.process_time() - cpu0
        stages = ["imports", "load", "summaries", "coverage", "length", "margin", "drilldown",
                  "figures", "render+write"]
        goal = GOAL_1M_S if n_samples > 500_000 else GOAL_S
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB -> GiB
        cpu_t = timings.get("cpu", {})
        for k in stages:
            if k in timings:
                extra = f"  ({cpu_t[k]:5.2f}s cpu)" if k in cpu_t else ""
                print(f"{k:>13}: {timings[k]:6.2f}s{extra}")
        print(f"{'peak memory':>13}: {peak:6.2f} GiB (max resident set of this process)")
        print(f"{'total':>13}: {total:6.2f}s  (goal <= {goal:.0f}s; {os.cpu_count()} CPUs; "
              f"{n_samples} samples, {a.runs} runs, {a.resamples} resamples)")
        print(f"{'cpu':>13}: {cpu:6.2f}s  (this process; load average {load_before:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after: a busy machine inflates wall time)")
        if a.json:
            a.json.write_text(json.dumps({"samples": n_samples, "runs": a.runs,
                                          "resamples": a.resamples, "cpus": os.cpu_count(),
                                          "stages": {k: timings[k] for k in stages if k in timings},
                                          "stages_cpu": cpu_t,
                                          "total": total, "cpu": cpu, "peak_gib": peak},
                                         indent=2) + "\n")
        if a.out:
            print(f"report: {work / 'report' / 'report.html'}")
        return 0 if total <= goal else 1
    finally:
        if a.out is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
