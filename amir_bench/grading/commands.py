"""Typer commands of the grading subsystem: grade, audit."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from amir_bench.errors import UserError
from amir_bench.limits import GRADE_TIMEOUT_S
from amir_bench.runlock import RunLock, ensure_writable

_BENCHMARK_HELP = ("extract as `amir-bench run` does for this benchmark (whole file; "
                   "default: each line's `benchmark` field, else the documented default)")
_MAP_HELP = "rename benchmarks first, e.g. math=math500,mgsm_en=gsm8k"


def grade_cmd(
    file: Path = typer.Argument(..., help='JSONL of {"pred": ..., "gold": ...}'),
    out: Optional[Path] = typer.Option(None, "--out", help="default: FILE.graded.jsonl"),
    timeout: float = typer.Option(GRADE_TIMEOUT_S, "--timeout", help="seconds per item"),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", help=_BENCHMARK_HELP),
    bench_map: Optional[str] = typer.Option(None, "--map", help=_MAP_HELP),
) -> None:
    """Grade predictions against golds; writes each line back with the verdict."""
    from amir_bench.grading.gradefile import grade_file, parse_map

    if not file.exists():
        raise UserError(f"{file}: no such file")
    out = out or file.with_name(file.stem + ".graded.jsonl")
    ensure_writable(out.parent)  # before any grading
    counts = grade_file(file, out, timeout=timeout, benchmark=benchmark,
                        bench_map=parse_map(bench_map))
    modes = counts.pop("by_extract_mode")
    typer.echo(f"{out}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    typer.echo("extract modes: " + ", ".join(f"{k}={v}" for k, v in modes.items()))


def audit_cmd(
    source: Path = typer.Argument(..., help="JSONL of prediction lines, or a run directory"),
    against: str = typer.Option(..., "--against", help="field holding the other verdict"),
    by: Optional[str] = typer.Option(None, "--by", help="also group by this field"),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default SOURCE.audit)"),
    timeout: float = typer.Option(GRADE_TIMEOUT_S, "--timeout",
                                  help="seconds per item when grading"),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", help=_BENCHMARK_HELP),
    bench_map: Optional[str] = typer.Option(None, "--map", help=_MAP_HELP),
) -> None:
    """Compare amir-bench's verdicts with another harness's: confusion matrices, agreement
    with a 95 % interval, and every disagreement for a person to adjudicate."""
    from amir_bench.grading.audit import audit_rows, compare, write_audit
    from amir_bench.grading.gradefile import grade_lines, parse_map

    mapping = parse_map(bench_map)

    def grade(path: Path, lines: list) -> list[dict]:
        return grade_lines(path, lines, timeout=timeout, benchmark=benchmark, bench_map=mapping)

    out = out or source.with_name(source.name.rstrip("/") + ".audit")
    with RunLock(out):  # writable before any grading; removed again if nothing is written
        rows, graded = audit_rows(source, grade)
        res = compare(rows, against, by, source=str(source))
        write_audit(res, out, rows if graded else None, audit_markdown(res, against))
    _print_audit(res)
    typer.echo(f"{len(res.disagreements)} disagreements: {out / 'disagreements.md'} "
               f"(and disagreements.jsonl, audit.json{', graded.jsonl' if graded else ''})")


def audit_markdown(res, against: str) -> str:
    """The disagreements as a Markdown table for adjudication (cells escaped)."""
    from reports.blocks import Heading, Para, Table, to_markdown

    overall = res.overall.to_dict()
    head = ["#", "benchmark", "id", "pred (end)", "extracted", "gold", "amir-bench", against,
            "extract_mode"]
    rows = [[str(i), d.get("benchmark"), d.get("id"), d["pred_excerpt"], d.get("extracted"),
             d.get("gold"), str(d["amir_bench"]), str(d[against]), d.get("extract_mode")]
            for i, d in enumerate(res.disagreements, 1)]
    blocks = [Heading(1, f"amir-bench vs {against}: disagreements"),
              Para(f"{overall['n']} lines compared, agreement {100 * overall['agreement']:.1f} %; "
                   f"amir-bench accepts where {against} rejects: {overall['ours_only']}; "
                   f"{against} accepts where amir-bench rejects: {overall['theirs_only']}."),
              Table(head, rows)]
    return to_markdown(blocks, {})


def _print_audit(res) -> None:
    """One rich table: overall, then each group of each scope."""
    import sys

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"amir-bench vs {res.against}")
    for c in ("scope", "group", "n", "agree %", "95 % CI", "both ✓", "ours only", "theirs only",
              "both ✗"):
        t.add_column(c, justify="left" if c in ("scope", "group") else "right")
    scopes = [("overall", "all", res.overall)] + [
        (scope, name, c) for scope, g in res.groups.items() for name, c in sorted(g.items())]
    for scope, name, c in scopes:
        d = c.to_dict()
        lo, hi = d["agreement_ci95"]
        t.add_row(scope, name, str(d["n"]), f"{100 * d['agreement']:.1f}",
                  f"{100 * lo:.1f}–{100 * hi:.1f}", str(d["both_correct"]), str(d["ours_only"]),
                  str(d["theirs_only"]), str(d["both_wrong"]))
    Console(width=None if sys.stdout.isatty() else 160).print(t)
    if res.missing:
        print(f"{res.missing} lines have no verdict in {res.against!r} (not compared)")
