"""`amir-bench` command line: the one place that wires commands to subsystems.

Each subsystem defines its typer command functions in its own `commands.py`; this module
registers them. Errors meant for the user (UserError, bad flags) print one line and exit 2.
"""

from __future__ import annotations

import importlib
import os
import sys

# OpenMP threads that spin while waiting make torch up to 20x slower on a busy 2-core machine
# (measured: 7.4 s vs 0.33 s per tiny-model training step); must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from typing import Optional

import typer

from amir_bench.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="amir-bench: evaluate, compare and train math-reasoning checkpoints.")

# (command name, "module:function"): commands that live in other packages.
SUBSYSTEM_COMMANDS: list[tuple[str, str]] = [
    ("run", "amir_bench.commands:run_cmd"),
    ("summary", "amir_bench.commands:summary_cmd"),
    ("merge", "amir_bench.commands:merge_cmd"),
    ("grade", "amir_bench.commands:grade_cmd"),
    ("benchmarks", "amir_bench.commands:benchmarks_cmd"),
    ("train", "training.commands:train_cmd"),
    ("score", "amir_bench.commands:score_cmd"),
    ("import", "amir_bench.commands:import_cmd"),
    ("export", "amir_bench.commands:export_cmd"),
    ("coverage", "analysis.commands:coverage_cmd"),
    ("length", "analysis.commands:length_cmd"),
    ("margin", "analysis.commands:margin_cmd"),
    ("report", "reports.commands:report_cmd"),
    ("demo", "training.commands:demo_cmd"),
]


def _register() -> None:
    for name, target in SUBSYSTEM_COMMANDS:
        mod, fn = target.split(":")
        app.command(name)(getattr(importlib.import_module(mod), fn))


_register()


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry point: UserError and usage errors become one line + exit 2."""
    import click

    try:
        app(args=argv, standalone_mode=False, prog_name="amir-bench")
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        return e.exit_code
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted; records written so far are kept (re-run with --resume)", err=True)
        return 130
    except click.ClickException as e:
        typer.echo(f"error: {e.format_message()}", err=True)
        return 2
    except click.exceptions.Exit as e:
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
