"""Report sections for "where did it improve?": pass@k / maj@k curves with bands and crossings,
strata (subject, level, difficulty), accuracy vs tokens, and replicate seeds.

`collect_where(runs, names, coverage=...)` computes everything into one JSON-able dict (for
report.json); `where_blocks(data)` turns it into report blocks and `where_figures(data)` into
PNGs (keys "curves" and "pareto"). The report renderer calls the three with its loaded runs
(amir_bench.records.Run) and its coverage result.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

from amir_bench.errors import UserError
from reports.blocks import Block, Cell, Figure, Heading, Para, Table
from reports.sections import ci_text, is_num, n_cell, num, pct, pval, spct, tone_of

STRATA_BY = ("level", "subject", "difficulty")
FIGURE_KEYS = ("curves", "pareto")


# ============================================================================ data


def collect_where(runs: Sequence[Any], names: Sequence[str], *, coverage: dict | None = None,
                  groups: Mapping[str, Sequence[Any]] | None = None,
                  difficulty_ref: str | None = None, data_dir: str | None = None,
                  metadata: Mapping | None = None, seed: int = 0, resamples: int = 10_000,
                  max_subsets: int | None = None) -> dict:
    """Curves, strata, tokens (and replicates when groups of runs are given) as one dict.
    metadata: {(benchmark, problem id): {"subject", "level"}} when the caller has it; else
    it is read from the benchmark rows the manifests name."""
    from analysis.curves import MAX_SUBSETS, curves
    from analysis.matrices import run_matrices
    from analysis.tokens import tokens

    aligned, notes = run_matrices(runs)
    out: dict[str, Any] = {"notes": notes, "curves": None, "strata": {}, "strata_notes": [],
                           "tokens": None, "replicates": None}
    if aligned:
        out["curves"] = curves(aligned, names, seed=seed, resamples=resamples,
                               max_subsets=max_subsets or MAX_SUBSETS)
        out["tokens"] = tokens(aligned, names)
    if coverage:
        out["strata"], out["strata_notes"] = collect_strata(
            runs, coverage, difficulty_ref=difficulty_ref, data_dir=data_dir, metadata=metadata,
            seed=seed, resamples=resamples)
    if groups:
        from analysis.replicates import replicates_of_runs

        out["replicates"] = replicates_of_runs(groups, seed=seed, resamples=resamples)
    from amir_bench.jsonio import jsonable as clean

    return clean(out)


def collect_strata(runs: Sequence[Any], coverage: dict, *, difficulty_ref: str | None = None,
                   data_dir: str | None = None, metadata: Mapping | None = None, seed: int = 0,
                   resamples: int = 10_000) -> tuple[dict, list[str]]:
    """Strata by level, subject and difficulty that have at least two strata; notes say why a
    dimension is left out (no metadata, a single value)."""
    from analysis.strata import problem_metadata, reference_rates, strata

    notes: list[str] = []
    try:
        if metadata is None:
            metadata = problem_metadata([r.manifest for r in runs], data_dir)
    except UserError as e:
        metadata = None
        notes.append(f"Strata by level and subject omitted: the benchmark rows could not be "
                     f"read ({e}).")
    ref = difficulty_ref or coverage["labels"][0]
    out = {}
    for by in STRATA_BY:
        if by != "difficulty" and metadata is None:
            continue
        res = strata(coverage, by, metadata=metadata, ref_rates=reference_rates(coverage, ref),
                     reference=ref, seed=seed, resamples=resamples)
        if len(res["strata"]) < 2:
            notes.append(f"Strata by {by} omitted: every problem has the same {by} "
                         f"({res['strata'][0] if res['strata'] else 'none'}).")
            continue
        out[by] = res
    return out, notes


# ============================================================================ blocks


def _scopes(res: dict) -> list[tuple[str, dict]]:
    """Per benchmark, then the pooled "all" when there are several benchmarks."""
    scopes = list(res["benchmarks"].items())
    if res.get("overall"):
        scopes.append(("all", res["overall"]))
    return scopes


def _ci_cell(d: dict | None, signed: bool = False) -> Cell:
    d = d or {}
    fmt = spct if signed else pct
    return Cell(fmt(d.get("estimate")), sub=ci_text(d, fmt) or None, numeric=True,
                tone=tone_of(d.get("ci_low"), d.get("ci_high")) if signed else None)


def curves_section(cur: dict | None) -> list[Block]:
    out: list[Block] = [Heading(2, "pass@k and maj@k curves", "curves")]
    if not cur:
        out.append(Para("No curves: no benchmark has problems complete in every run.", note=True))
        return out
    out.append(Para(
        f"pass@k is the unbiased estimator over n = {cur['n']} samples; maj@k is the chance that "
        f"a majority vote over a random k-subset is correct (ties go to the answer seen first, as "
        f"maj@n): exact where there are at most {cur['max_subsets']} k-subsets, else the mean "
        f"over {cur['max_subsets']} random ones. Bands and intervals are 95% bootstrap CIs "
        "over problems, paired between runs. The crossing k is the smallest k at which the run "
        "behind at small k leads with a CI that excludes 0."))
    for note in cur.get("notes") or []:
        out.append(Para(note, note=True))
    out.append(Figure("curves", "pass@k (solid) and maj@k (dashed) per run with 95% bands"))
    ks = cur["ks"]
    for met in ("pass", "maj"):
        rows = []
        for scope, blk in _scopes(cur):
            for lab in cur["labels"]:
                rows.append([scope, lab] + [_ci_cell(d) for d in blk["runs"][lab][f"{met}@k"]])
        out.append(Table(["benchmark", "run"] + [f"{met}@{k}" for k in ks], rows,
                         caption=f"{met}@k in % [95% CI]."))
    rows = []
    for scope, blk in _scopes(cur):
        for pair in blk["pairs"]:
            for met in ("pass", "maj"):
                pm = pair[f"{met}@k"]
                cr = pm["crossing"]
                lead = {"a": pair["a"], "b": pair["b"]}.get(cr["small_k_leader"] or "", "—")
                rows.append([scope, f"{pair['a']} vs {pair['b']}", f"{met}@k",
                             _ci_cell(pm["diff"][0], True), _ci_cell(pm["diff"][-1], True),
                             lead, n_cell(cr["first_sign_flip_k"]), n_cell(cr["k"])])
    out.append(Table(["benchmark", "A vs B", "curve", f"Δ at k={ks[0]} (B − A)",
                      f"Δ at k={ks[-1]} (B − A)", "leads at small k", "sign flips at k",
                      "crossing k (CI excludes 0)"], rows,
                     caption="Differences in points with 95% paired CIs; “—”: no flip."))
    return out


def strata_section(strata: Mapping[str, dict], notes: Sequence[str]) -> list[Block]:
    out: list[Block] = [Heading(2, "Where the differences come from: strata", "strata")]
    for note in notes:
        out.append(Para(note, note=True))
    if not strata:
        if not notes:
            out.append(Para("No strata: give two or more runs to compare.", note=True))
        return out
    out.append(Para("The coverage comparison broken down by problem level, subject and "
                    "difficulty (bins of the reference run's per-problem pass rate). Strata add "
                    "up to the coverage tables: only A / only B are the problems solved by one "
                    "run of the pair; Δ avg@n in points with a 95% bootstrap CI."))
    for by, res in strata.items():
        ref = f" (reference: {res['reference']})" if by == "difficulty" else ""
        out.append(Heading(3, f"by {by}{ref}"))
        for note in res.get("notes") or []:
            out.append(Para(note, note=True))
        labels = res["labels"]
        rows = []
        for scope, blocks in _scopes(res):
            for v in res["strata"]:
                blk = blocks.get(v)
                if not blk:
                    continue
                row: list = [scope, v, n_cell(blk["problems"])]
                row += [Cell(pct(blk["metrics"][lab]["avg@n"]), numeric=True) for lab in labels]
                for p in blk["pairs"]:
                    row += [Cell(f"{p['n_losses']} / {p['n_gains']}", numeric=True,
                                 sub=f"p {pval(p['mcnemar']['p_value'])}"),
                            _ci_cell(p["diff"].get("avg@n"), True)]
                rows.append(row)
        pairs = list(itertools.combinations(labels, 2))  # the order of coverage's pairs
        header = ["benchmark", by, "problems"] + [f"avg@n {lab}" for lab in labels]
        for a, b in pairs:
            header += [f"only {a} / only {b}", f"Δ avg@n {b} − {a}"]
        out.append(Table(header, rows, caption=f"By {by}: avg@n in %, discordant problems "
                                               "(McNemar p), difference in points."))
    return out


def tokens_section(tok: dict | None) -> list[Block]:
    out: list[Block] = [Heading(2, "Accuracy vs tokens", "tokens")]
    if not tok:
        return out
    out.append(Figure("pareto", "accuracy against mean completion tokens per run"))
    rows = []
    for scope, blk in _scopes(tok):
        for lab, r in blk["runs"].items():
            rows.append([scope, lab, Cell(pct(r["accuracy"]), numeric=True),
                         Cell(num(r["mean_tokens"], 0), numeric=True),
                         Cell("✓" if r["pareto"] else "", tone="ok" if r["pareto"] else None)])
    out.append(Table(["benchmark", "run", "accuracy", "mean tokens", "Pareto front"], rows,
                     caption="A run is on the front when no other run is at least as accurate "
                             "with no more tokens."))
    labels = tok["labels"]
    rows = []
    for scope, blk in _scopes(tok):
        for b in blk["matched_length"]:
            cells = [Cell(pct(b["runs"][lab]["accuracy"]), sub=f"{b['runs'][lab]['samples']} "
                          "samples", numeric=True) for lab in labels]
            rows.append([scope, f"{num(b['lo'], 0)}–{num(b['hi'], 0)}"] + cells)
    out.append(Table(["benchmark", "tokens"] + [f"accuracy {lab}" for lab in labels], rows,
                     caption="Accuracy at matched length: bins of completion length shared by "
                             "all runs (quantiles of the pooled lengths)."))
    rows = []
    for scope, blk in _scopes(tok):
        for lab, r in blk["runs"].items():
            rs = r.get("reasoning")
            if not rs:
                continue
            rows.append([scope, lab, Cell(f"{rs['samples_with_reasoning']} / {rs['samples']}",
                                          numeric=True)]
                        + [Cell(f"{num(rs[k]['reasoning_tokens'], 0)} / "
                                f"{num(rs[k]['answer_tokens'], 0)}", numeric=True)
                           for k in ("all", "correct", "incorrect")])
    if rows:
        out.append(Table(["benchmark", "run", "with reasoning", "reasoning / answer tokens",
                          "correct", "incorrect"], rows,
                         caption="Samples with a reasoning part (a recorded count, or the share "
                                 "of characters before </think>): mean tokens of each part."))
    else:
        out.append(Para("No completion has a reasoning part (</think>), so reasoning and answer "
                        "tokens are not split.", note=True))
    return out


def _t_cell(d: dict) -> Cell:
    sub = f"[{pct(d['ci_low'])}, {pct(d['ci_high'])}]" if is_num(d.get("ci_low")) else \
        f"{d.get('seeds', 0)} seed"
    return Cell(pct(d.get("mean")), sub=sub, numeric=True)


def replicates_section(rep: dict | None) -> list[Block]:
    if not rep:
        return []
    out: list[Block] = [Heading(2, "Replicate seeds", "replicates"), Para(
        "Groups of runs that repeat one configuration with different seeds: each metric is the "
        "mean over seeds with a 95% t interval across seeds; differences between groups carry "
        "a two-level bootstrap CI (problems, then seeds).")]
    for note in rep.get("notes") or []:
        out.append(Para(note, note=True))
    metrics = rep["metrics"][:1] + rep["metrics"][-1:]
    rows = []
    for b, blk in rep["benchmarks"].items():
        for g, ms in blk["metrics"].items():
            rows.append([b, g, n_cell(rep["groups"][g])] + [_t_cell(ms[m]) for m in metrics])
    out.append(Table(["benchmark", "group", "seeds"] + metrics, rows,
                     caption="Mean over seeds in % [95% t interval]."))
    rows = [[b, f"{p['a']} → {p['b']}"] + [_ci_cell(p["diff"][m], True) for m in metrics]
            for b, blk in rep["benchmarks"].items() for p in blk["pairs"]]
    if rows:
        out.append(Table(["benchmark", "A → B"] + [f"Δ {m}" for m in metrics], rows,
                         caption="B − A in points [95% two-level bootstrap CI]."))
    return out


def where_blocks(data: dict) -> list[Block]:
    """All "where" sections, in reading order."""
    out: list[Block] = []
    for note in data.get("notes") or []:
        out.append(Para(note, note=True))
    out += curves_section(data.get("curves"))
    out += strata_section(data.get("strata") or {}, data.get("strata_notes") or [])
    out += tokens_section(data.get("tokens"))
    out += replicates_section(data.get("replicates"))
    return out


# ============================================================================ figures


def _panel_width(panels: int, w: float) -> float:
    """Panel width; a lone panel is wider so the figure title fits inside the PNG."""
    return max(w, 6.0) if panels == 1 else w


def curves_figure(cur: dict) -> bytes:
    """One panel per benchmark (and all): pass@k solid, maj@k dashed, 95% bands; k on a log2
    axis with integer ticks at the ks."""
    from reports.plots import PALETTE, _grid, to_png

    scopes = _scopes(cur)
    fig, axes = _grid(len(scopes), ncols=3, w=_panel_width(len(scopes), 4.2), h=3.2)
    ks = cur["ks"]
    for ax, (scope, blk) in zip(axes, scopes):
        for i, lab in enumerate(cur["labels"]):
            color = PALETTE[i % len(PALETTE)]
            for met, ls in (("pass", "-"), ("maj", "--")):
                pts = blk["runs"][lab][f"{met}@k"]
                y = [p["estimate"] for p in pts]
                ax.plot(ks, y, ls=ls, marker="o", ms=3, color=color,
                        label=f"{lab} {met}@k")
                if all(is_num(p["ci_low"]) for p in pts):
                    ax.fill_between(ks, [p["ci_low"] for p in pts], [p["ci_high"] for p in pts],
                                    color=color, alpha=0.12, lw=0)
        if len(ks) > 1:
            ax.set_xscale("log", base=2)
        ax.set_xticks(ks)
        ax.set_xticklabels([str(k) for k in ks])
        ax.minorticks_off()
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("k (samples)")
        ax.set_ylabel("rate")
        ax.set_title(f"{scope} ({blk['problems']} problems)", fontsize=10)
        ax.legend(fontsize=6)
    fig.suptitle("pass@k (solid) and maj@k (dashed), 95% bootstrap bands", fontsize=11,
                 wrap=True)
    return to_png(fig)


def pareto_figure(tok: dict) -> bytes:
    """Accuracy against mean tokens per run, one panel per benchmark; the front is joined."""
    from reports.plots import PALETTE, _grid, to_png

    scopes = _scopes(tok)
    fig, axes = _grid(len(scopes), ncols=3, w=_panel_width(len(scopes), 4.0), h=3.2)
    for ax, (scope, blk) in zip(axes, scopes):
        pts = [(r["mean_tokens"], r["accuracy"], r["pareto"], lab)
               for lab, r in blk["runs"].items()]
        for i, (x, y, front, lab) in enumerate(pts):
            ax.scatter([x], [y], s=40 if front else 20, color=PALETTE[i % len(PALETTE)],
                       edgecolor="#1d2330" if front else "none", zorder=3, label=lab)
        front = sorted((x, y) for x, y, f, _ in pts if f)
        if len(front) > 1:
            ax.plot(*zip(*front), color="#5b6475", lw=1, ls=":")
        ax.set_xlabel("mean tokens per sample")
        ax.set_ylabel("accuracy")
        ax.set_title(scope, fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle("Accuracy vs tokens (outlined: Pareto front)", fontsize=11, wrap=True)
    return to_png(fig)


def where_figures(data: dict) -> dict[str, bytes]:
    """PNG bytes per figure key ("curves", "pareto") for what data holds."""
    figs = {}
    if data.get("curves"):
        figs["curves"] = curves_figure(data["curves"])
    if data.get("tokens"):
        figs["pareto"] = pareto_figure(data["tokens"])
    return figs
