"""Typer commands of the grading subsystem: grade."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from amir_bench.errors import UserError


def grade_cmd(
    file: Path = typer.Argument(..., help='JSONL of {"pred": ..., "gold": ...}'),
    out: Optional[Path] = typer.Option(None, "--out", help="default: FILE.graded.jsonl"),
    timeout: float = typer.Option(5.0, "--timeout", help="seconds per item"),
) -> None:
    """Grade predictions against golds; writes each line back with the verdict."""
    from amir_bench.grading.gradefile import grade_file

    if not file.exists():
        raise UserError(f"{file}: no such file")
    out = out or file.with_name(file.stem + ".graded.jsonl")
    counts = grade_file(file, out, timeout=timeout)
    typer.echo(f"{out}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
