"""`amir-bench train`: the typer command (heavy imports happen inside, not at module import)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def train_cmd(
    recipe: str = typer.Option(..., "--recipe", help="built-in recipe name (tiny-cpu, paper-qwen2.5-3b, "
                               "paper-qwen2.5-7b, paper-gemma-3-4b) or a path to a YAML recipe"),
    algo: Optional[str] = typer.Option(None, "--algo", help="grpo | amir-grpo (default: the recipe's)"),
    out: Path = typer.Option(..., "--out", help="output directory: checkpoint, recipe.yaml, metrics.jsonl"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override a recipe key: "
                                             "section.key=value (repeatable), e.g. amir.beta=0.1, "
                                             "trl.learning_rate=1e-5"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint-N in --out"),
) -> None:
    """Train a GRPO or AMIR-GRPO checkpoint (evaluate it with `amir-bench run --ckpt OUT`)."""
    from training.config import load_config
    from training.train import train

    cfg = load_config(recipe, algo=algo, overrides=tuple(set_ or ()))
    path = train(cfg, out, resume=resume)
    typer.echo(f"checkpoint written to {path}")


def demo_cmd(
    out: Path = typer.Option(Path("demo"), "--out", help="output folder (re-running continues)"),
    seeds: int = typer.Option(1, "--seeds", help="training seeds; >1 reports mean ± CI"),
    quick: bool = typer.Option(False, "--quick", help="the same pipeline at toy size (CI)"),
    profile: bool = typer.Option(False, "--profile", help="also profile the run with cProfile: "
                                 "OUT/profile.pstats and the top functions by own time"),
) -> None:
    """Warm-start a tiny model, train GRPO and AMIR-GRPO, evaluate, analyse and report."""
    from rich.console import Console
    from rich.markdown import Markdown

    from amir_bench.errors import UserError
    from training.demo import DemoConfig, headline_markdown, run_demo, stages_markdown

    if seeds < 1:
        raise UserError("--seeds must be >= 1")
    console = Console()
    cfg = DemoConfig.make(out, seeds=seeds, quick=quick)
    log = lambda s: console.print(s, highlight=False)  # noqa: E731
    result = _profiled(run_demo, cfg, log, path=out / "profile.pstats") if profile else run_demo(cfg, log)
    console.print(Markdown(headline_markdown(result)))
    base = result["base_avg@n"]
    console.print(f"base avg@8 after warm start: {100 * base:.1f} % "
                  f"(warm start: {result['warm_start'].get('steps')} steps)")
    if not quick and not 0.2 <= base <= 0.6:
        console.print("[yellow]note: the base model's accuracy is outside the 20-60 % band the "
                      "warm start aims for; RL has less room to show differences[/yellow]")
    console.print(f"report: {result['report']['html']}\n        {result['report']['md']}")
    console.print(Markdown("Time per stage (also in demo.json):\n\n" + stages_markdown(result)))
    console.print(f"demo finished in {result['seconds']:.0f} s")


def _profiled(fn, *args, path: Path) -> dict:
    """fn(*args) under cProfile; the stats go to `path`, the top 25 by own time to stdout."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    result = prof.runcall(fn, *args)
    prof.dump_stats(str(path))
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
    typer.echo(buf.getvalue())
    return result
