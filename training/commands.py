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
