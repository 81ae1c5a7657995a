"""Where `amir-bench demo` spends its time, stage by stage; the warm start before vs after.

    python perf/demo_stages.py --out /tmp/ds                 # the demo, per-stage wall + CPU
    python perf/demo_stages.py --out /tmp/ds --before REF    # + commit REF's warm start
    python perf/demo_stages.py --out /tmp/ds --quick         # the toy-size demo
    python perf/demo_stages.py --step-cost                   # one warm-start step, 2 layouts
    python perf/demo_stages.py --chains 3,2,2,3 --base demo/base   # chain processes A/B

The demo runs in a child process (`amir-bench demo --out OUT/demo`, a fresh folder each
time); its demo.json holds the stage table: wall seconds, CPU seconds of the demo process
and CPU seconds of its finished child processes (graders). CPU seconds are what to compare
on a shared machine; wall seconds only on a quiet one.

--step-cost times one warm-start step (forward + backward) on the demo's model size for the
same batches in both layouts, interleaved: every row padded to the batch's longest (the
previous layout) and the shared system prompt run once per batch (this tree's), at 32 and
16 rows; CPU seconds of this process and wall seconds, medians over --steps batches.

--chains W1,W2,... runs the train + eval + score chains of the three models from an existing
warm-started base (--base), once per listed process count, in that order, each in a fresh
folder, and prints the stage's wall seconds per count (list counts more than once,
interleaved, on a shared machine).

--before REF runs the warm start of REF's `training/warmstart.py` (read with `git show`, so
the exact previous code: its schedule, batch layout and probe cadence) in a child process,
on a fresh tiny model of the demo's size with that module's default settings (what REF's
demo used), measured the same way, so both warm starts sit side by side in one script run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads; see amir_bench/cli.py


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed_child(argv: list[str]) -> dict:
    """Run argv to completion; its wall seconds and CPU seconds (it and its descendants)."""
    wall, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run(argv, cwd=REPO, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}"
                 f"\n{proc.stderr[-2000:]}")
    return {"wall_s": round(time.perf_counter() - wall, 1),
            "cpu_s": round(children_cpu() - cpu, 1), "stdout": proc.stdout}


def run_demo(out: Path, quick: bool) -> dict:
    """The demo in a fresh folder; demo.json plus the outside view of the whole run."""
    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, "-m", "amir_bench.cli", "demo", "--out", str(out)]
    res = timed_child(argv + (["--quick"] if quick else []))
    demo = json.loads((out / "demo.json").read_text())
    return {"outside": {k: res[k] for k in ("wall_s", "cpu_s")}, "demo": demo}


def warm_child(source: str, ckpt: str, hidden: int, layers: int) -> None:
    """(child) Build the demo's tiny model at `ckpt` and warm-start it with `source`'s code."""
    from amir_bench.tiny import build_tiny_checkpoint

    spec = importlib.util.spec_from_file_location("warmstart_under_test", source)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    build_tiny_checkpoint(ckpt, seed=0, hidden=hidden, layers=layers, intermediate=3 * hidden)
    info = mod.warm_start(Path(ckpt), mod.WarmStartConfig(), log=lambda s: print(s, file=sys.stderr))
    print(json.dumps({k: info[k] for k in ("steps", "probe_accuracy")}))


def run_before(ref: str, out: Path, demo_config: dict) -> dict:
    """REF's warm start on the demo's model size, measured from outside in a child process."""
    src = subprocess.run(["git", "show", f"{ref}:training/warmstart.py"], cwd=REPO,
                         capture_output=True, text=True)
    if src.returncode != 0:
        sys.exit(f"git show {ref}:training/warmstart.py failed: {src.stderr.strip()}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "warmstart_before.py"
    path.write_text(src.stdout)
    ckpt = out / "before-base"
    shutil.rmtree(ckpt, ignore_errors=True)
    res = timed_child([sys.executable, __file__, "_warm", str(path), str(ckpt),
                       str(demo_config["tiny_hidden"]), str(demo_config["tiny_layers"])])
    return {"wall_s": res["wall_s"], "cpu_s": res["cpu_s"],
            **json.loads(res["stdout"].strip().splitlines()[-1])}


def step_cost(steps: int, hidden: int = 128, layers: int = 4) -> str:
    """Median CPU and wall seconds of one SFT step per (layout, rows), interleaved."""
    import random
    import statistics

    from amir_bench.tiny import build_model, build_tokenizer
    from benchmarks import arith
    from benchmarks.specs import get_spec
    from training.warmstart import sft_examples, sft_loss, shared_prefix_len

    tok = build_tokenizer()
    model = build_model(tok, hidden=hidden, layers=layers, intermediate=3 * hidden, seed=0)
    data = sft_examples(tok, arith.generate("train"), get_spec("arith"), "amir-xml")
    prefix = shared_prefix_len(data)
    variants = [(name, p, rows) for rows in (32, 16)
                for name, p in (("padded rows", 0), ("shared prefix", prefix))]
    times: dict[tuple, list[tuple[float, float]]] = {(n, r): [] for n, _, r in variants}
    model.train()
    for k in range(steps + 1):  # round 0 warms up and is dropped
        for name, p, rows in variants:
            batch = random.Random(k).sample(data, rows)
            wall, cpu = time.perf_counter(), time.process_time()
            sft_loss(model, batch, tok.pad_token_id, p).backward()
            model.zero_grad(set_to_none=True)
            if k:
                times[(name, rows)].append((time.process_time() - cpu, time.perf_counter() - wall))
    lines = [f"shared prefix: {prefix} tokens", "",
             "| layout | rows | CPU s / step | wall s / step |", "|---|---:|---:|---:|"]
    for (name, rows), ts in times.items():
        lines.append(f"| {name} | {rows} | {statistics.median(t[0] for t in ts):.3f} | "
                     f"{statistics.median(t[1] for t in ts):.3f} |")
    return "\n".join(lines)


def chains_ab(base: Path, counts: list[int]) -> str:
    """Wall seconds of the demo's model chains per worker-process count, in the given order."""
    from amir_bench.demo import DemoConfig, run_chains

    if not (base / "warmstart.json").exists():
        sys.exit(f"{base}: not a warm-started demo base (no warmstart.json); run the demo first")
    rows = []
    for w in counts:
        out = Path(tempfile.mkdtemp(prefix=f"demo-chains-{w}-"))
        wall, cpu = time.perf_counter(), children_cpu()
        run_chains(DemoConfig(out=out, workers=w), base.resolve(), lambda s: None)
        rows.append(f"| {w} | {time.perf_counter() - wall:.1f} | {children_cpu() - cpu:.1f} |")
        shutil.rmtree(out, ignore_errors=True)
    return "\n".join(["| processes | wall s | CPU s (workers) |", "|---:|---:|---:|", *rows])


def report(after: dict, before: dict | None, ref: str | None) -> str:
    demo = after["demo"]
    lines = ["| stage | wall s | CPU s (demo process) | CPU s (children) |", "|---|---:|---:|---:|"]
    for st in demo["stages"]:
        lines.append(f"| {st['stage']} | {st['wall_s']:.1f} | {st['cpu_s']:.1f} | "
                     f"{st['children_cpu_s']:.1f} |")
    o = after["outside"]
    lines += [f"| whole command (from outside) | {o['wall_s']:.1f} | {o['cpu_s']:.1f} (all) | |",
              "", f"demo finished in {demo['seconds']:.0f} s (its own count)"]
    if before:
        ws = next(s for s in demo["stages"] if s["stage"] == "warm start")
        lines += ["", "| warm start | steps | probe accuracy | wall s | CPU s (all processes) |",
                  "|---|---:|---:|---:|---:|",
                  f"| before ({ref}) | {before['steps']} | {100 * before['probe_accuracy']:.1f} % | "
                  f"{before['wall_s']:.1f} | {before['cpu_s']:.1f} |",
                  f"| after (this tree) | {demo['warm_start']['steps']} | "
                  f"{100 * demo['warm_start']['probe_accuracy']:.1f} % | {ws['wall_s']:.1f} | "
                  f"{ws['cpu_s'] + ws['children_cpu_s']:.1f} |",
                  "", f"warm start CPU ratio before/after: "
                  f"{before['cpu_s'] / max(1e-9, ws['cpu_s'] + ws['children_cpu_s']):.1f}x"]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "_warm":
        warm_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--quick", action="store_true", help="the toy-size demo")
    ap.add_argument("--before", metavar="REF", default=None,
                    help="also time the warm start of this git ref (full-size demo only)")
    ap.add_argument("--step-cost", action="store_true",
                    help="only time one warm-start step in both batch layouts")
    ap.add_argument("--steps", type=int, default=5, help="batches per variant (--step-cost)")
    ap.add_argument("--chains", metavar="W1,W2,...", default=None,
                    help="only time the model chains with these worker-process counts")
    ap.add_argument("--base", type=Path, default=Path("demo/base"),
                    help="warm-started base for --chains (default: demo/base)")
    args = ap.parse_args()
    if args.chains:
        try:
            counts = [int(w) for w in args.chains.split(",")]
        except ValueError:
            sys.exit(f"--chains must be comma-separated process counts, got {args.chains!r}")
        if not counts or min(counts) < 1:
            sys.exit(f"--chains: process counts must be >= 1, got {args.chains!r}")
        print(f"machine: {os.cpu_count()} cores, {cpu_model()}; load average "
              f"{os.getloadavg()[0]:.1f}")
        print(chains_ab(args.base, counts))
        return
    if args.step_cost:
        print(f"machine: {os.cpu_count()} cores, {cpu_model()}; load average "
              f"{os.getloadavg()[0]:.1f}")
        print(step_cost(args.steps))
        return
    if args.before and args.quick:
        sys.exit("--before compares the full-size warm start; drop --quick")
    out = args.out or Path(tempfile.mkdtemp(prefix="demo-stages-"))
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; load average {os.getloadavg()[0]:.1f}")
    after = run_demo(out / "demo", args.quick)
    before = run_before(args.before, out, after["demo"]["config"]) if args.before else None
    text = report(after, before, args.before)
    print(text)
    (out / "demo_stages.json").write_text(json.dumps(
        {"after": after, "before": before, "ref": args.before}, indent=2) + "\n")
    print(f"\nwritten: {out / 'demo_stages.json'}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
