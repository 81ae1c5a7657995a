"""Typer commands of the analysis subsystem: coverage, length, margin.

Each prints rich tables and writes its JSON (coverage.json / length.json / margin.json, or
--out) atomically, after everything is computed: an error leaves no file behind. Heavy
imports happen inside the functions; the CLI imports this module at startup.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from analysis.fmt import MISSING, estimate_ci, num, pct, snum, with_all

RUNS_HELP = "run directories (manifest.json + samples.jsonl)"


# options every analysis command takes (one declaration, shared)
SEED_OPTION = typer.Option(0, "--seed", help="bootstrap seed")
RESAMPLES_OPTION = typer.Option(10_000, "--resamples", help="bootstrap resamples")


def _snum4(x) -> str:
    return snum(x, 4)


def _console():
    """Rich console; wide when output is not a terminal so tables are not cut in logs."""
    import sys

    from rich.console import Console
    return Console(width=None if sys.stdout.isatty() else 160)


def _check_out(out: Path) -> None:
    """Fail before any work when --out cannot be a file."""
    from amir_bench.errors import UserError

    if out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file name (e.g. {out}/result.json)")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise UserError(f"--out {out}: {parent} is not a directory")


def _write(out: Path, result: dict, console) -> None:
    """Write the JSON atomically (temp file + rename): no half-written file on error."""
    from amir_bench.errors import UserError
    from amir_bench.jsonio import atomic_write_json

    try:
        atomic_write_json(out, result)
    except OSError as e:
        raise UserError(f"cannot write {out} ({e.strerror or e})") from None
    console.print(f"wrote {out}")


def _notes(result: dict, console) -> None:
    for note in result.get("notes") or []:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)


# ---------------------------------------------------------------- coverage


def coverage_tables(result: dict) -> list:
    """Rich tables for a coverage result: the partition (one column per benchmark), the
    pairwise comparisons, and each run's metrics."""
    from rich.table import Table

    labels = result["labels"]
    scopes = with_all(result["benchmarks"], result["overall"], "overall")
    part = Table(title=f"coverage partition · solved = {result['criterion']} · "
                       f"problems (% of those solved by any run)", title_justify="left")
    for lab in labels:
        part.add_column(lab, justify="center")
    for scope, blk in scopes:
        part.add_column(f"{scope} ({blk['problems']})", justify="right")
    for i, cell in enumerate(scopes[0][1]["partition"]):
        row = ["✓" if ch == "1" else "✗" for ch in cell["cell"]]
        for _, blk in scopes:
            c = blk["partition"][i]
            share = "" if c["pct_union"] is None else f" ({c['pct_union']:.1f}%)"
            row.append(f"{c['count']}{share}")
        part.add_row(*row)

    ks = [k for k in result["ks"] if k > 1]
    shown_k = sorted({ks[0], ks[-1]}) if ks else []
    pairs = Table(title="pairs: b − a in points, 95% bootstrap CI over problems; gains = solved "
                        "by b only, losses = by a only", title_justify="left")
    for col in ("a → b", "benchmark", "gains", "losses", "McNemar p", "Δ avg@n"):
        pairs.add_column(col, justify="left" if col in ("a → b", "benchmark") else "right")
    for k in shown_k:
        pairs.add_column(f"Δ pass@{k}", justify="right")
    for scope, blk in scopes:
        for pair in blk["pairs"]:
            row = [f"{pair['a']} → {pair['b']}", scope, str(pair["n_gains"]),
                   str(pair["n_losses"]), f"{pair['mcnemar']['p_value']:.3g}",
                   estimate_ci(pair["diff"].get("avg@n"))]
            row += [estimate_ci(pair["diff"].get(f"pass@{k}")) for k in shown_k]
            pairs.add_row(*row)

    met = Table(title="metrics (%)", title_justify="left")
    met.add_column("run")
    met.add_column("benchmark")
    met.add_column("solved", justify="right")
    met.add_column("avg@n", justify="right")
    for k in ks:
        met.add_column(f"pass@{k}", justify="right")
    for lab in labels:
        for scope, blk in scopes:
            mm = blk["metrics"][lab]
            met.add_row(lab, scope, f"{mm['solved']}/{blk['problems']}",
                        pct(mm.get("avg@n")),
                        *[pct(mm.get(f"pass@{k}")) for k in ks])
    return [part, pairs, met]


def coverage_cmd(
    runs: List[Path] = typer.Argument(..., help=RUNS_HELP, show_default=False, metavar="RUN"),
    base: Optional[Path] = typer.Option(None, "--base",
                                        help="run to put first (one of RUNS, or another run)"),
    criterion: str = typer.Option("any", "--criterion",
                                  help="solved = any | majority | avg>=T (e.g. avg>=0.5)"),
    force: bool = typer.Option(False, "--force",
                               help="compare incomparable runs on their shared problems"),
    out: Path = typer.Option(Path("coverage.json"), "--out", help="JSON output file"),
    seed: int = SEED_OPTION,
    resamples: int = RESAMPLES_OPTION,
) -> None:
    """Which problems each run solves: 2^m partition, gains/losses, McNemar, bootstrap CIs."""
    from analysis.coverage import coverage

    _analyse(lambda: coverage(runs, criterion=criterion, base=base, force=force, seed=seed,
                              resamples=resamples), coverage_tables, out, resamples)


def _analyse(compute, tables, out: Path, resamples: int) -> None:
    """Shared command body: check options, compute, print the tables and notes, write JSON."""
    from amir_bench.errors import UserError

    if resamples < 1:
        raise UserError("--resamples must be at least 1")
    _check_out(out)
    result = compute()
    console = _console()
    for t in tables(result):
        console.print(t)
    _notes(result, console)
    _write(out, result, console)


# ---------------------------------------------------------------- length


def length_tables(result: dict) -> list:
    from rich.table import Table

    t = Table(title="length bias (tokens)", title_justify="left")
    for col in ("run", "benchmark", "samples", "acc %", "correct mean / median [IQR]",
                "incorrect mean / median [IQR]", "inc/cor", "trunc %", "r_pb",
                "acc % by length quintile"):
        t.add_column(col, justify="left" if col in ("run", "benchmark") else "right")

    def desc(d):
        if not d or d.get("mean") is None:
            return MISSING
        return f"{d['mean']:.0f} / {d['median']:.0f} [{d['iqr']:.0f}]"

    for lab in result["labels"]:
        pr = result["per_run"][lab]
        scopes = with_all(pr["benchmarks"], pr["overall"], "overall")
        for b, s in scopes:
            q = " ".join(f"{100 * x['accuracy']:.0f}" for x in s["quintiles"])
            t.add_row(lab, b, str(s["samples"]), pct(s["accuracy"]),
                      desc(s["correct"]), desc(s["incorrect"]),
                      num(s["ratio_incorrect_correct"], 2), pct(s["truncation_rate"]),
                      num(s["point_biserial"]["r"], 3), q)
    tables = [t]
    if result["pairs"]:
        p = Table(title="paired mean length per problem (b − a, tokens, 95% CI)",
                  title_justify="left")
        for col in ("a → b", "benchmark", "problems", "mean a", "mean b", "Δ mean"):
            p.add_column(col, justify="left" if col in ("a → b", "benchmark") else "right")
        for pair in result["pairs"]:
            scopes = with_all(pair["benchmarks"], pair["overall"], "overall")
            for b, s in scopes:
                p.add_row(f"{pair['a']} → {pair['b']}", b, str(s["problems"]),
                          f"{s['mean_a']:.0f}", f"{s['mean_b']:.0f}", estimate_ci(s["diff"], snum))
        tables.append(p)
    return tables


def length_cmd(
    runs: List[Path] = typer.Argument(..., help=RUNS_HELP, show_default=False, metavar="RUN"),
    out: Path = typer.Option(Path("length.json"), "--out", help="JSON output file"),
    seed: int = SEED_OPTION,
    resamples: int = RESAMPLES_OPTION,
) -> None:
    """Length bias: lengths of correct vs incorrect samples, truncation, quintiles, r_pb."""
    from analysis.length import length_bias

    _analyse(lambda: length_bias(runs, seed=seed, resamples=resamples), length_tables, out,
             resamples)


# ---------------------------------------------------------------- margin


def margin_tables(result: dict) -> list:
    from rich.table import Table

    t = Table(title="log-prob margin: mean ℓ(correct) − mean ℓ(incorrect) per problem "
                    "(ℓ = per-token log-prob)", title_justify="left")
    for col in ("run", "benchmark", "mixed problems", "mean margin [95% CI]", "median",
                "% > 0", "pairs", "pair margin", "pairs % > 0", "AUROC in-problem", "AUROC"):
        t.add_column(col, justify="left" if col in ("run", "benchmark") else "right")
    for lab in result["labels"]:
        pr = result["per_run"][lab]
        scopes = with_all(pr["benchmarks"], pr["overall"], "overall")
        for b, s in scopes:
            pp = s["pairs"]
            t.add_row(lab, b, f"{s['problems_mixed']}/{s['problems']}",
                      estimate_ci(s["mean_margin_ci"], _snum4), num(s["median_margin"], 4),
                      pct(s["frac_positive"]), str(pp["count"]),
                      num(pp["mean_margin"], 4), pct(pp["frac_positive"]),
                      num(pp["auroc_within_problem"], 3), num(s["auroc"], 3))
    return [t]


def margin_cmd(
    runs: List[Path] = typer.Argument(..., help="scored run directories (scores.jsonl)",
                                      metavar="RUN",
                                      show_default=False),
    out: Path = typer.Option(Path("margin.json"), "--out", help="JSON output file"),
    seed: int = SEED_OPTION,
    resamples: int = RESAMPLES_OPTION,
) -> None:
    """Log-prob margin between correct and incorrect samples (needs `amir-bench score`)."""
    from analysis.margin import margin

    _analyse(lambda: margin(runs, seed=seed, resamples=resamples), margin_tables, out,
             resamples)
