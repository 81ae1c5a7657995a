"""`amir-bench demo`: the paper's story in miniature, offline on a CPU, with real training.

1. build a tiny tokenizer + model and warm-start it on `arith` reference solutions until
   its sampled accuracy sits in a band that leaves RL room (20-60 %);
2. train GRPO and AMIR-GRPO from that base with the `tiny-cpu` recipe (same seed, same data
   order, same steps);
3. evaluate base, GRPO and AMIR-GRPO on the `arith` test split (n = 8);
4. score the samples; coverage (base, GRPO, AMIR), length and margin analyses;
5. render the report and print a headline table.

Every stage leaves its output in OUT and is skipped when re-run (runs and scores resume), so
Ctrl-C loses at most the stage in progress. This is the one module, besides the CLI, that
calls every subsystem (training, evaluation, analysis, reports).
"""

from __future__ import annotations

import json
import resource
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from amir_bench.jsonio import atomic_write_json, atomic_write_text
from training.warmstart import WarmStartConfig

ALGOS = ("grpo", "amir-grpo")
LABELS = {"base": "base", "grpo": "GRPO", "amir-grpo": "AMIR-GRPO"}


@dataclass
class DemoConfig:
    out: Path = Path("demo")
    seeds: int = 1
    quick: bool = False
    recipe: str = "tiny-cpu"
    template: str = "amir-xml"
    tiny_hidden: int = 128
    tiny_layers: int = 4
    eval_n: int = 8
    eval_temperature: float = 1.0
    eval_limit: int | None = None  # None: the whole arith test split
    max_new_tokens: int = 48
    workers: int | None = None  # processes for the model chains (None: cores + 1; 1: in-process)
    train_steps: int | None = None  # None: the recipe's
    train_overrides: tuple[str, ...] = ()
    warm: WarmStartConfig = field(default_factory=WarmStartConfig)

    @classmethod
    def make(cls, out: Path, seeds: int = 1, quick: bool = False) -> "DemoConfig":
        cfg = cls(out=Path(out), seeds=seeds, quick=quick)
        if quick:  # the same pipeline at toy size: minutes in CI, no accuracy band enforced
            cfg.tiny_hidden, cfg.tiny_layers = 64, 2
            cfg.eval_limit = 24
            cfg.train_steps = 4
            cfg.max_new_tokens = 32
            cfg.warm = WarmStartConfig(min_steps=40, max_steps=40, steps_per_check=40,
                                       probe_problems=16, max_new_tokens=32)
        return cfg


@dataclass
class StageClock:
    """Wall and CPU seconds per demo stage. CPU is this process's plus that of finished child
    processes (graders and their workers), so it stays meaningful on a busy machine."""
    stages: list[dict] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu, kids = time.perf_counter(), time.process_time(), _children_cpu()
        try:
            yield
        finally:
            self.stages.append({"stage": name,
                                "wall_s": round(time.perf_counter() - wall, 2),
                                "cpu_s": round(time.process_time() - cpu, 2),
                                "children_cpu_s": round(_children_cpu() - kids, 2)})


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# ------------------------------------------------------------------------------ stages


def stage_base(cfg: DemoConfig, log: Callable[[str], None]) -> tuple[Path, dict]:
    """The warm-started tiny base model (built once; a finished one is reused)."""
    from amir_bench.tiny import build_tiny_checkpoint
    from training.warmstart import warm_start

    base = cfg.out / "base"
    info_path = base / "warmstart.json"
    if info_path.exists():
        log(f"[1/5] base model: reusing {base}")
        return base, json.loads(info_path.read_text())
    log("[1/5] base model: building a tiny model and warm-starting it on arith solutions")
    tmp = cfg.out / "base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    build_tiny_checkpoint(tmp, seed=0, hidden=cfg.tiny_hidden, layers=cfg.tiny_layers,
                          intermediate=3 * cfg.tiny_hidden)
    t0 = time.perf_counter()
    info = warm_start(tmp, cfg.warm, log=lambda s: log("      " + s))
    info["seconds"] = round(time.perf_counter() - t0, 1)
    info["config"] = asdict(cfg.warm)
    atomic_write_json(tmp / "warmstart.json", info)
    shutil.rmtree(base, ignore_errors=True)
    tmp.rename(base)
    return base, info


def stage_train(cfg: DemoConfig, base: Path, algo: str, seed: int,
                log: Callable[[str], None], bars: bool = True) -> Path:
    """One training run from the shared base; a finished run (train_info.json) is reused."""
    from training.config import load_config
    from training.train import train

    out = cfg.out / "train" / f"{algo}-s{seed}"
    if (out / "train_info.json").exists():
        log(f"[2/5] train {LABELS[algo]} seed {seed}: reusing {out}")
        return out
    overrides = [f"model.name_or_path={base.resolve()}", f"seed={seed}",
                 f"data.template={cfg.template}",
                 f"trl.max_completion_length={cfg.max_new_tokens}", *cfg.train_overrides]
    if cfg.train_steps is not None:
        overrides.append(f"trl.max_steps={cfg.train_steps}")
    tcfg = load_config(cfg.recipe, algo=algo, overrides=overrides)
    from transformers.trainer_utils import get_last_checkpoint
    resume = out.is_dir() and get_last_checkpoint(str(out)) is not None
    if out.exists() and not resume:
        shutil.rmtree(out)  # interrupted before its first checkpoint: start it again
    log(f"[2/5] train {LABELS[algo]} seed {seed}: {tcfg.trl.get('max_steps')} steps"
        + (" (resuming)" if resume else ""))
    t0 = time.perf_counter()
    bar = [_progress_callback(LABELS[algo], seed)] if bars else []
    train(tcfg, out, resume=resume, callbacks=bar, quiet=True)
    log(f"      done in {time.perf_counter() - t0:.0f} s")
    return out


def stage_eval(cfg: DemoConfig, ckpt: Path, name: str, log: Callable[[str], None],
               bars: bool = True) -> Path:
    from amir_bench.backends import Decoding
    from amir_bench.evaluate import run_eval
    from amir_bench.runconfig import RunConfig

    out = cfg.out / "runs" / name
    log(f"[3/5] evaluate {name}: arith test, n={cfg.eval_n}")
    dec = Decoding(n=cfg.eval_n, temperature=cfg.eval_temperature,
                   max_new_tokens=cfg.max_new_tokens, seed=0)
    run_eval(RunConfig(ckpt=str(ckpt), out=out, benchmarks=("arith",), decoding=dec,
                       template=cfg.template, backend="hf", resume=True,
                       limit=cfg.eval_limit, grade_workers=1), console=_console(bars))
    return out


def stage_score(run: Path, log: Callable[[str], None], bars: bool = True) -> None:
    from amir_bench.scoring import score_run

    res = score_run(run, console=_console(bars))
    log(f"[4/5] score {run.name}: {res['scored']} new, {res['already']} already scored")


def _console(bars: bool) -> Any:
    """None (the default console, progress bars shown) or a silent one (worker processes)."""
    from rich.console import Console

    return None if bars else Console(quiet=True)


# ------------------------------------------------------------------------------ parallel
# Training, evaluating and scoring each model is one chain of stages; chains run in
# cfg.workers spawned processes with one torch thread each. A tiny model's generation and
# small matmuls gain little from a second thread, so chains side by side use the cores. The
# default is one process more than cores: with two training chains and the short base chain
# on 2 cores, the base chain shares the cores instead of waiting for a training chain to end
# (`python perf/demo_stages.py --chains 3,2` measures both).


def model_chain(cfg: DemoConfig, base: Path, algo: str | None, seed: int,
                log: Callable[[str], None], bars: bool = True) -> dict:
    """Train (unless algo is None: the base itself), evaluate and score one model."""
    clock = StageClock()
    ckpt, name = base, "base"
    if algo is not None:
        name = f"{algo}-s{seed}"
        with clock.stage(f"train {LABELS[algo]} s{seed}"):
            ckpt = stage_train(cfg, base, algo, seed, log, bars)
    with clock.stage(f"eval {name}"):
        run = stage_eval(cfg, ckpt, name, log, bars)
    with clock.stage(f"score {name}"):
        stage_score(run, log, bars)
    return {"name": name, "algo": algo, "seed": seed, "ckpt": ckpt, "run": run,
            "stages": clock.stages}


def run_chains(cfg: DemoConfig, base: Path, log: Callable[[str], None]) -> list[dict]:
    """Every model's chain: in worker processes when cfg.workers > 1, else in this one."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    jobs: list[tuple[str | None, int]] = [(a, s) for s in range(cfg.seeds) for a in ALGOS]
    jobs.append((None, 0))
    workers = max(1, min(cfg.workers or (os.cpu_count() or 1) + 1, len(jobs)))
    if workers == 1:
        return [model_chain(cfg, base, a, s, log) for a, s in jobs]
    log(f"      training, evaluating and scoring {len(jobs)} models in {workers} processes")
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init) as pool:
        futures = [pool.submit(model_chain, cfg, base, a, s, _print_line, False)
                   for a, s in jobs]
        return [f.result() for f in futures]


def _worker_init() -> None:
    import warnings

    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


def _print_line(s: str) -> None:
    print(s, flush=True)


# ------------------------------------------------------------------------------ pipeline


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> dict:
    from analysis.coverage import coverage
    from analysis.length import length_bias
    from analysis.margin import margin
    from reports.render import build_report

    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the demo draws its own progress bars
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    t_start = time.perf_counter()
    clock = StageClock()
    cfg.out.mkdir(parents=True, exist_ok=True)
    with clock.stage("warm start"):
        base, warm = stage_base(cfg, log)
    with clock.stage("train + eval + score, all models"):
        chains = run_chains(cfg, base, log)
    for c in chains:
        clock.stages.extend(c["stages"])
    trained = {(c["algo"], c["seed"]): c["ckpt"] for c in chains if c["algo"]}
    runs = {c["name"]: c["run"] for c in chains}

    log("[5/5] analyses and report")
    analysis_dir = cfg.out / "analysis"
    per_seed = []
    with clock.stage("analyses + report"):
        for s in range(cfg.seeds):
            trio = [runs["base"], runs[f"grpo-s{s}"], runs[f"amir-grpo-s{s}"]]
            cov = coverage(trio, seed=s)
            mar = margin(trio)
            per_seed.append(_headline(runs, s, cov, mar))
            if s == 0:
                atomic_write_json(analysis_dir / "coverage.json", cov)
                atomic_write_json(analysis_dir / "length.json", length_bias(trio))
                atomic_write_json(analysis_dir / "margin.json", mar)
        report_dir = cfg.out / "report"
        build_report([runs["base"], runs["grpo-s0"], runs["amir-grpo-s0"]], report_dir,
                     train_logs=[trained[("grpo", 0)], trained[("amir-grpo", 0)]],
                     names=["base", "GRPO", "AMIR-GRPO"])
    result = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "warm_start": {k: warm[k] for k in ("steps", "probe_accuracy", "seconds") if k in warm},
        "base_avg@n": per_seed[0]["avg@n"]["base"],
        "per_seed": per_seed,
        "across_seeds": _across_seeds(per_seed) if cfg.seeds > 1 else None,
        "report": {"html": str(report_dir / "report.html"), "md": str(report_dir / "report.md")},
        "stages": clock.stages,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    atomic_write_json(cfg.out / "demo.json", result)
    atomic_write_text(cfg.out / "headline.md", headline_markdown(result))
    return result


def _headline(runs: dict, seed: int, cov: dict, mar: dict) -> dict:
    """avg@n, pass@k per model; coverage cells (base, GRPO, AMIR); mean margin per model."""
    summaries = {}
    for key, name in (("base", "base"), ("grpo", f"grpo-s{seed}"), ("amir-grpo", f"amir-grpo-s{seed}")):
        summaries[key] = json.loads((runs[name] / "summary.json").read_text())["arith"]
    n = summaries["base"]["n"]
    ks = sorted(int(k.split("@")[1]) for k in summaries["base"] if k.startswith("pass@"))
    block = cov["benchmarks"]["arith"]
    cells = {c["cell"]: {"count": c["count"], "pct_union": c["pct_union"]}
             for c in block["partition"]}
    margins = {}
    for key, label in zip(("base", "grpo", "amir-grpo"), mar["labels"]):
        m = mar["per_run"][label]["benchmarks"]["arith"]
        margins[key] = {"mean_margin": m.get("mean_margin"), "auroc": m.get("auroc"),
                        "problems_mixed": m.get("problems_mixed")}
    return {
        "seed": seed, "n": n,
        "avg@n": {k: s["avg@n"] for k, s in summaries.items()},
        "pass@k": {k: {str(kk): s[f"pass@{kk}"] for kk in ks} for k, s in summaries.items()},
        "maj@n": {k: s[f"maj@{n}"] for k, s in summaries.items()},
        "coverage_cells": cells, "union_solved": block["union_solved"],
        "problems": block["problems"], "margin": margins,
    }


def _mean_ci(xs: list[float]) -> dict:
    """Mean and a 95 % t interval across seeds (the replicate-seed analysis's own interval)."""
    from analysis.replicates import t_interval

    r = t_interval(xs)
    return {"mean": r["mean"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "n": r["seeds"]}


def _across_seeds(per_seed: list[dict]) -> dict:
    out: dict[str, Any] = {}
    for model in ("grpo", "amir-grpo"):
        out[model] = {
            "avg@n": _mean_ci([p["avg@n"][model] for p in per_seed]),
            f"pass@{per_seed[0]['n']}": _mean_ci([p["pass@k"][model][str(p["n"])] for p in per_seed]),
            "mean_margin": _mean_ci([p["margin"][model]["mean_margin"] for p in per_seed]),
        }
    out["amir_minus_grpo"] = {
        "avg@n": _mean_ci([p["avg@n"]["amir-grpo"] - p["avg@n"]["grpo"] for p in per_seed]),
    }
    return out


def headline_markdown(result: dict) -> str:
    """The headline table (terminal and headline.md); numbers come from demo.json."""
    s0 = result["per_seed"][0]
    n = s0["n"]
    ks = list(s0["pass@k"]["base"])
    lines = ["| model | avg@%d | %s | maj@%d | mean margin | AUROC |" % (
        n, " | ".join(f"pass@{k}" for k in ks), n),
        "|---|---:|" + "---:|" * len(ks) + "---:|---:|---:|"]
    for key in ("base", "grpo", "amir-grpo"):
        mg = s0["margin"][key]
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            LABELS[key], _pct(s0["avg@n"][key]),
            " | ".join(_pct(s0["pass@k"][key][k]) for k in ks), _pct(s0["maj@n"][key]),
            _num(mg["mean_margin"]), _num(mg["auroc"])))
    lines += ["", f"Coverage over {s0['problems']} problems (cells: base, GRPO, AMIR-GRPO; "
              f"{s0['union_solved']} solved by some model):", "",
              "| cell | problems | % of solved |", "|---|---:|---:|"]
    for cell, c in s0["coverage_cells"].items():
        marks = "".join("✓" if ch == "1" else "✗" for ch in cell)
        pct = "-" if c["pct_union"] is None else f"{c['pct_union']:.1f}"
        lines.append(f"| {marks} | {c['count']} | {pct} |")
    if result.get("across_seeds"):
        lines += ["", "Across seeds (mean [95% CI]):", "", "| model | metric | mean | CI |",
                  "|---|---|---:|---|"]
        for model, metrics in result["across_seeds"].items():
            for name, v in metrics.items():
                ci = "-" if v["ci_low"] is None else f"[{v['ci_low']:.4f}, {v['ci_high']:.4f}]"
                mean = "-" if v["mean"] is None else f"{v['mean']:.4f}"
                lines.append(f"| {model} | {name} | {mean} | {ci} |")
    return "\n".join(lines) + "\n"


def stages_markdown(result: dict) -> str:
    """Per-stage wall and CPU seconds of this invocation (a reused stage shows ~0 s)."""
    lines = ["| stage | wall s | CPU s (this process) | CPU s (child processes) |",
             "|---|---:|---:|---:|"]
    for st in result.get("stages", []):
        lines.append(f"| {st['stage']} | {st['wall_s']:.1f} | {st['cpu_s']:.1f} | "
                     f"{st['children_cpu_s']:.1f} |")
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _progress_callback(label: str, seed: int):
    """The training progress bar, labelled with the algorithm and seed."""
    from training.progress import TrainProgress

    return TrainProgress(f"train {label} s{seed}")
