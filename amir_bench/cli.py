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
from amir_bench.errors import Interrupted, UserError
from amir_bench.grading import commands as grading_commands
from analysis import commands as analysis_commands
from reports import commands as reports_commands
from training import commands as training_commands

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,  # plain click help: flags without `<bool>` metavars
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
    ("export", core.export_cmd),
    ("coverage", analysis_commands.coverage_cmd),
    ("curves", analysis_commands.curves_cmd),
    ("length", analysis_commands.length_cmd),
    ("margin", analysis_commands.margin_cmd),
    ("report", reports_commands.report_cmd),
    ("demo", core.demo_cmd),
    ("ls", core.ls_cmd),
]

for _name, _fn in SUBSYSTEM_COMMANDS:
    app.command(_name)(_fn)


def _print_version(value: bool) -> None:
    if value:
        from amir_bench import __version__

        typer.echo(f"amir-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version,
                                       is_eager=True, help="print the version and exit")) -> None:
    """amir-bench: evaluate, compare and train math-reasoning checkpoints."""


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry point: usage and user errors become `error: …` + exit 2, Ctrl-C exit 130.

    Typer may carry its own copy of click, so click's exceptions are recognised by what they
    are (an exit code and a formatted message), not by importing click's classes.
    """
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="amir-bench")
    except Interrupted as e:
        typer.echo(str(e), err=True)
        return e.exit_code
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        return e.exit_code
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted", err=True)
        return 130
    except typer.Exit as e:
        return int(getattr(e, "exit_code", 0) or 0)
    except Exception as e:  # noqa: BLE001 - only click's own exceptions are handled here
        if not (hasattr(e, "format_message") and hasattr(e, "exit_code")):
            raise
        if type(e).__name__ == "NoArgsIsHelpError" or not e.format_message().strip():
            typer.echo(e.format_message().rstrip(), err=True)  # a command alone: its help
            return 2
        usage = _usage_line(e)
        if usage:
            typer.echo(usage, err=True)
        typer.echo(f"error: {e.format_message()}", err=True)
        return 2
    if rv == 130:  # a KeyboardInterrupt that no command turned into a message
        typer.echo("interrupted", err=True)
        return 130
    return rv if isinstance(rv, int) else 0


def _usage_line(err: Exception) -> str:
    """`Usage: amir-bench run [OPTIONS]` for the command the error belongs to, if known."""
    ctx = getattr(err, "ctx", None)
    if ctx is None:
        return ""
    try:
        return ctx.get_usage().splitlines()[0].strip()
    except Exception:  # noqa: BLE001 - a usage line is a nicety, never a second error
        return ""


if __name__ == "__main__":
    sys.exit(main())
