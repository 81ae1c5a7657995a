"""`amir-bench` command line: the one place that wires commands to subsystems.

Each subsystem defines its typer command functions in its own `commands.py` (light to import:
heavy imports happen when a command runs); this module imports them and registers them.
Errors meant for the user (UserError, bad flags) print one line and exit 2.
"""

from __future__ import annotations

import os
import sys

# OpenMP threads that spin while waiting make torch up to 20x slower on a busy 2-core machine
# (measured: 7.4 s vs 0.33 s per tiny-model training step); must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from typing import Callable, Optional

import typer

from amir_bench import commands as core
from amir_bench.errors import UserError
from amir_bench.grading import commands as grading_commands
from analysis import commands as analysis_commands
from reports import commands as reports_commands
from training import commands as training_commands

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="amir-bench: evaluate, compare and train math-reasoning checkpoints.")

# (command name, function): every command, wherever its subsystem defines it.
SUBSYSTEM_COMMANDS: list[tuple[str, Callable[..., None]]] = [
    ("run", core.run_cmd),
    ("summary", core.summary_cmd),
    ("merge", core.merge_cmd),
    ("grade", grading_commands.grade_cmd),
    ("audit", grading_commands.audit_cmd),
    ("benchmarks", core.benchmarks_cmd),
    ("train", training_commands.train_cmd),
    ("score", core.score_cmd),
    ("import", core.import_cmd),
    ("coverage", analysis_commands.coverage_cmd),
    ("length", analysis_commands.length_cmd),
    ("margin", analysis_commands.margin_cmd),
    ("report", reports_commands.report_cmd),
    ("demo", core.demo_cmd),
]

for _name, _fn in SUBSYSTEM_COMMANDS:
    app.command(_name)(_fn)


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
