"""Typer command of the reports subsystem: `amir-bench report`.

Light at import (the CLI imports this module at startup): pandas, matplotlib and the
analyses are imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def report_cmd(
    runs: List[Path] = typer.Argument(..., help="run directories, baseline first "
                                                "(one run gives a single-run report)"),
    out: Path = typer.Option(..., "--out", help="output folder for report.html, report.md, "
                                                "report.json and figures/"),
    train_log: Optional[List[Path]] = typer.Option(None, "--train-log",
                                                   help="training output dir with metrics.jsonl "
                                                        "(repeatable)"),
    name: Optional[List[str]] = typer.Option(None, "--name", help="display name per run, in "
                                                                  "order (repeatable)"),
    seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
    resamples: int = typer.Option(10_000, "--resamples", help="bootstrap resamples"),
    force: bool = typer.Option(False, "--force", help="compare runs with different rows or n "
                                                      "on their shared problems"),
) -> None:
    """Render a Markdown + self-contained HTML report comparing runs (and training logs)."""
    from amir_bench.errors import UserError
    from reports.render import build_report

    if resamples < 1:
        raise UserError("--resamples must be at least 1")
    from amir_bench.runlock import RunLock

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    # one writer; the folder is proven writable before any run is read (a folder made for a
    # report that then fails is removed)
    with RunLock(out):
        data = build_report(runs, out, train_logs=train_log or (), names=name or None,
                            seed=seed, force=force, resamples=resamples)
    for w in data["warnings"]:
        typer.echo(f"warning: {w}", err=True)
    for note in data["notes"]:
        typer.echo(f"note: {note}", err=True)
    for w in data["setup_warnings"]:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(f"wrote {out / 'report.html'}, {out / 'report.md'}, {out / 'report.json'}")
