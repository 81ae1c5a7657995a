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
    import os

    from amir_bench.errors import Interrupted
    from amir_bench.runlock import RunLock, ensure_writable
    from training.config import load_config

    cfg = load_config(recipe, algo=algo, overrides=tuple(set_ or ()))
    ensure_writable(out)
    from training.train import train

    rank0 = int(os.environ.get("RANK", "0")) == 0  # under accelerate every rank runs this
    lock = RunLock(out) if rank0 else None
    try:
        if lock:
            lock.acquire()
        path = train(cfg, out, resume=resume)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; checkpoints already saved in {out} are kept — "
                          f"re-run with --resume") from None
    finally:
        if lock:
            lock.release()
    typer.echo(f"checkpoint written to {path}")


def demo_cmd(
    out: Path = typer.Option(Path("demo"), "--out", help="output folder (re-running continues)"),
    seeds: int = typer.Option(1, "--seeds", help="training seeds; >1 reports mean ± CI"),
    quick: bool = typer.Option(False, "--quick", help="the same pipeline at toy size (CI)"),
) -> None:
    """Warm-start a tiny model, train GRPO and AMIR-GRPO, evaluate, analyse and report."""
    from rich.console import Console
    from rich.markdown import Markdown

    from amir_bench.errors import UserError
    from training.demo import DemoConfig, headline_markdown, run_demo

    if seeds < 1:
        raise UserError("--seeds must be >= 1")
    console = Console()
    result = run_demo(DemoConfig.make(out, seeds=seeds, quick=quick),
                      log=lambda s: console.print(s, highlight=False))
    console.print(Markdown(headline_markdown(result)))
    base = result["base_avg@n"]
    console.print(f"base avg@8 after warm start: {100 * base:.1f} % "
                  f"(warm start: {result['warm_start'].get('steps')} steps)")
    if not quick and not 0.2 <= base <= 0.6:
        console.print("[yellow]note: the base model's accuracy is outside the 20-60 % band the "
                      "warm start aims for; RL has less room to show differences[/yellow]")
    console.print(f"report: {result['report']['html']}\n        {result['report']['md']}")
    console.print(f"demo finished in {result['seconds']:.0f} s")
