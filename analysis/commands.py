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
JSON_OPTION = typer.Option(False, "--json", help="print the JSON to stdout instead of tables "
                           "(notes and warnings go to stderr)")


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
    from amir_bench.runlock import ensure_writable

    ensure_writable(out.parent if str(out.parent) else Path("."))


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
    runs: Optional[List[Path]] = typer.Argument(None, help=RUNS_HELP + " (optional with --group)",
                                                show_default=False, metavar="RUN"),
    base: Optional[Path] = typer.Option(None, "--base",
                                        help="run to put first (one of RUNS, or another run)"),
    criterion: str = typer.Option("any", "--criterion",
                                  help="solved = any | majority | avg>=T (e.g. avg>=0.5)"),
    force: bool = typer.Option(False, "--force",
                               help="compare incomparable runs on their shared problems"),
    out: Path = typer.Option(Path("coverage.json"), "--out", help="JSON output file"),
    seed: int = SEED_OPTION,
    resamples: int = RESAMPLES_OPTION,
    as_json: bool = JSON_OPTION,
    by: Optional[List[str]] = typer.Option(None, "--by",
                                           help="also break the comparison down by subject | "
                                                "level | difficulty (repeatable)"),
    difficulty_ref: Optional[str] = typer.Option(None, "--difficulty-ref",
                                                 help="run whose per-problem pass rate defines "
                                                      "the difficulty bins (a RUN, or another "
                                                      "run dir; default: the first run)"),
    group: Optional[List[str]] = typer.Option(None, "--group",
                                              help="replicate seeds NAME=RUN,RUN,... "
                                                   "(repeatable): mean ± t interval, two-level "
                                                   "bootstrap differences"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir",
                                           help="benchmark rows for --by subject|level "
                                                "(default: the manifest's source)"),
) -> None:
    """Which problems each run solves: 2^m partition, gains/losses, McNemar, bootstrap CIs."""
    from analysis.coverage import coverage

    runs = list(runs or [])

    def compute() -> dict:
        groups = _groups(group or [], runs)
        result: dict = {"kind": "coverage", "labels": [], "benchmarks": {}}
        if len(runs) >= 2 or not groups:
            result = coverage(runs, criterion=criterion, base=base, force=force, seed=seed,
                              resamples=resamples)
        if by:
            result["strata"] = _strata_results(result, by, runs, difficulty_ref, data_dir,
                                               seed, resamples)
        if groups:
            from analysis.replicates import replicates_of_runs
            result["replicates"] = replicates_of_runs(groups, seed=seed, resamples=resamples)
        return result

    _analyse(compute, _coverage_all_tables, out, resamples, [base, *runs] if base else runs,
             as_json)


def _coverage_all_tables(result: dict) -> list:
    """Coverage tables, then the strata and replicate-seed tables when present."""
    tables = coverage_tables(result) if result.get("benchmarks") else []
    for st in result.get("strata") or []:
        tables += strata_tables(st)
    if result.get("replicates"):
        tables += replicates_tables(result["replicates"])
    return tables


def _groups(specs: List[str], runs: List[Path]) -> dict:
    """{name: [loaded Run]} of --group options, plus each positional run as a one-seed group
    (empty when no --group is given)."""
    from amir_bench.errors import UserError
    from amir_bench.records import load_run
    from analysis.replicates import parse_group

    if not specs:
        return {}
    groups: dict = {}
    named = [(Path(r).name, [r]) for r in runs] + [parse_group(spec) for spec in specs]
    for name, members in named:
        if name in groups:
            raise UserError(f"group or run name {name!r} is used twice; rename a --group")
        groups[name] = [load_run(Path(m)) for m in members]
    return groups


def _strata_results(cov: dict, by: List[str], runs: List[Path], ref: Optional[str],
                    data_dir: Optional[str], seed: int, resamples: int) -> list:
    """One strata result per --by dimension, from the coverage result just computed."""
    from amir_bench.errors import UserError
    from amir_bench.records import read_manifest
    from analysis.strata import LABELERS, problem_metadata, strata

    if not cov.get("benchmarks"):
        raise UserError("--by needs two or more RUNs to compare")
    bad = [b for b in by if b not in LABELERS]
    if bad:
        raise UserError(f"--by {bad[0]!r}: use one of {', '.join(LABELERS)}")
    metadata = None
    if any(b != "difficulty" for b in by):
        metadata = problem_metadata([read_manifest(Path(r)) for r in runs], data_dir)
    ref_label, rates = _reference(cov, runs, ref) if "difficulty" in by else (None, None)
    return [strata(cov, b, metadata=metadata, ref_rates=rates, reference=ref_label, seed=seed,
                   resamples=resamples) for b in by]


def _reference(cov: dict, runs: List[Path], ref: Optional[str]):
    """(label, rates) of the difficulty reference: a compared run (by label or path), else
    another run directory read here."""
    import os

    from amir_bench.records import load_runs
    from analysis.strata import reference_rates

    if ref is None:
        return cov["labels"][0], reference_rates(cov)
    if ref in cov["labels"]:
        return ref, reference_rates(cov, ref)
    for lab, r in zip([d["label"] for d in cov["runs"]], [d["path"] for d in cov["runs"]]):
        if os.path.realpath(r) == os.path.realpath(ref):
            return lab, reference_rates(cov, lab)
    other = load_runs([ref]).runs[0]
    return other.label, reference_rates(cov, frame=other.to_frame())


def _analyse(compute, tables, out: Path, resamples: int, runs: List[Path],
             as_json: bool = False) -> None:
    """Shared command body: check options, compute, print the tables (or, with --json, the
    JSON on stdout), notes and setup warnings, write JSON."""
    import json

    from amir_bench.errors import UserError
    from amir_bench.setup_compare import setup_warnings_for

    if resamples < 1:
        raise UserError("--resamples must be at least 1")
    _check_out(out)
    result = compute()
    console = _quiet_console() if as_json else _console()
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        for t in tables(result):
            console.print(t)
    _notes(result, console)
    for w in setup_warnings_for(runs):
        console.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
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
    as_json: bool = JSON_OPTION,
) -> None:
    """Length bias: lengths of correct vs incorrect samples, truncation, quintiles, r_pb."""
    from analysis.length import length_bias

    _analyse(lambda: length_bias(runs, seed=seed, resamples=resamples), length_tables, out,
             resamples, runs, as_json)


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
    as_json: bool = JSON_OPTION,
) -> None:
    """Log-prob margin between correct and incorrect samples (needs `amir-bench score`)."""
    from analysis.margin import margin

    _analyse(lambda: margin(runs, seed=seed, resamples=resamples), margin_tables, out,
             resamples, runs, as_json)


# ---------------------------------------------------------------- curves, strata, replicates


def curves_tables(result: dict) -> list:
    """Rich tables for a curves result: each run's pass@k and maj@k, and per pair the
    differences at the smallest and largest k with the crossing k."""
    from rich.table import Table

    ks = result["ks"]
    scopes = list(result["benchmarks"].items())
    if result.get("overall"):
        scopes.append(("all", result["overall"]))
    t = Table(title="pass@k / maj@k (%), 95% bootstrap CI over problems", title_justify="left")
    for col in ["run", "benchmark", "curve"] + [f"k={k}" for k in ks]:
        t.add_column(col, justify="right" if col.startswith("k=") else "left")
    for scope, blk in scopes:
        for lab in result["labels"]:
            for met in ("pass", "maj"):
                t.add_row(lab, scope, f"{met}@k", *[estimate_ci(d, pct)
                                                    for d in blk["runs"][lab][f"{met}@k"]])
    tables = [t]
    rows = [(scope, p) for scope, blk in scopes for p in blk["pairs"]]
    if rows:
        c = Table(title="b − a in points; crossing k = smallest k where the small-k leader falls "
                        "behind with a CI excluding 0", title_justify="left")
        for col in ("a → b", "benchmark", "curve", f"Δ k={ks[0]}", f"Δ k={ks[-1]}",
                    "small-k leader", "sign flip k", "crossing k"):
            c.add_column(col, justify="left" if col in ("a → b", "benchmark", "curve") else "right")
        for scope, p in rows:
            for met in ("pass", "maj"):
                pm = p[f"{met}@k"]
                cr = pm["crossing"]
                lead = {"a": p["a"], "b": p["b"]}.get(cr["small_k_leader"] or "", MISSING)
                c.add_row(f"{p['a']} → {p['b']}", scope, f"{met}@k", estimate_ci(pm["diff"][0]),
                          estimate_ci(pm["diff"][-1]), lead,
                          str(cr["first_sign_flip_k"] or "none"), str(cr["k"] or "none"))
        tables.append(c)
    return tables


def curves_cmd(
    runs: List[Path] = typer.Argument(..., help=RUNS_HELP, show_default=False, metavar="RUN"),
    force: bool = typer.Option(False, "--force",
                               help="compare incomparable runs on their shared problems"),
    out: Optional[Path] = typer.Option(None, "--out", help="also write the JSON to this file"),
    as_json: bool = typer.Option(False, "--json", help="print the JSON instead of tables"),
    seed: int = typer.Option(0, "--seed", help="bootstrap and subset seed"),
    resamples: int = typer.Option(10_000, "--resamples", help="bootstrap resamples"),
    max_subsets: int = typer.Option(64, "--maj-subsets",
                                    help="maj@k: exact when C(n,k) <= this, else this many "
                                         "random k-subsets"),
) -> None:
    """pass@k and maj@k curves (k = 1, 2, 4, …, n) with bootstrap bands and crossing k."""
    import json

    from amir_bench.errors import UserError
    from analysis.curves import curves
    from amir_bench.jsonio import jsonable
    from amir_bench.records import load_runs
    from analysis.matrices import align_matrices, frame_from_records, matrices_from_frame
    from analysis.runs import align

    if resamples < 1 or max_subsets < 1:
        raise UserError("--resamples and --maj-subsets must be at least 1")
    if out is not None:
        _check_out(out)
    rs = load_runs(runs)
    al = align(rs, force=force, need=1, what="curves")
    per_run = [matrices_from_frame(frame_from_records(r.samples), r.ns)[0] for r in rs.runs]
    aligned, notes = align_matrices(per_run)
    result = jsonable(curves(aligned, rs.labels, seed=seed, resamples=resamples,
                          max_subsets=max_subsets, notes=al.notes + notes))
    result["runs"] = [r.describe() for r in rs.runs]
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        console = _console()
        for t in curves_tables(result):
            console.print(t)
        _notes(result, console)
    if out is not None:
        _write(out, result, _console() if not as_json else _quiet_console())


def _quiet_console():
    """A console that writes to stderr, so --json keeps stdout pure JSON."""
    import sys

    from rich.console import Console
    return Console(file=sys.stderr)


def strata_tables(result: dict) -> list:
    """Rich table of a strata result: per stratum, each pair's only-a / only-b counts and
    Δ avg@n with its CI."""
    from rich.table import Table

    t = Table(title=f"strata by {result['by']}"
                    + (f" (reference {result['reference']})" if result["by"] == "difficulty"
                       else "") + " · only a / only b, Δ avg@n in points", title_justify="left")
    for col in ("a → b", "benchmark", result["by"], "problems", "only a / only b", "McNemar p",
                "Δ avg@n"):
        t.add_column(col, justify="left" if col in ("a → b", "benchmark", result["by"])
                     else "right")
    scopes = list(result["benchmarks"].items())
    if result.get("overall"):
        scopes.append(("all", result["overall"]))
    for scope, blocks in scopes:
        for v in result["strata"]:
            blk = blocks.get(v)
            for p in (blk or {}).get("pairs", []):
                t.add_row(f"{p['a']} → {p['b']}", scope, v, str(blk["problems"]),
                          f"{p['n_losses']} / {p['n_gains']}", f"{p['mcnemar']['p_value']:.3g}",
                          estimate_ci(p["diff"].get("avg@n")))
    return [t]


def replicates_tables(result: dict) -> list:
    """Rich tables of a replicates result: group means with t intervals, pair differences."""
    from rich.table import Table

    metrics = result["metrics"][:1] + result["metrics"][-1:]
    g = Table(title="replicate groups: mean over seeds (%) [95% t interval]", title_justify="left")
    for col in ["group", "benchmark", "seeds"] + metrics:
        g.add_column(col, justify="left" if col in ("group", "benchmark") else "right")
    p = Table(title="groups b − a (points) [95% two-level bootstrap CI: problems, then seeds]",
              title_justify="left")
    for col in ["a → b", "benchmark"] + [f"Δ {m}" for m in metrics]:
        p.add_column(col, justify="left" if col in ("a → b", "benchmark") else "right")
    for b, blk in result["benchmarks"].items():
        for name, ms in blk["metrics"].items():
            g.add_row(name, b, str(result["groups"][name]),
                      *[estimate_ci({"estimate": ms[m]["mean"], "ci_low": ms[m]["ci_low"],
                                     "ci_high": ms[m]["ci_high"]}, pct) for m in metrics])
        for pair in blk["pairs"]:
            p.add_row(f"{pair['a']} → {pair['b']}", b,
                      *[estimate_ci(pair["diff"][m]) for m in metrics])
    return [g, p]
