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

