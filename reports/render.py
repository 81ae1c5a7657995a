"""Build a run comparison report: report.md, ONE self-contained report.html, report.json.

`build_report` loads each run once (amir_bench.records.load_runs: one per-sample frame per
run), recomputes the metrics from it (summary.json is only checked, never trusted), hands the
same runs to the analyses (coverage, length bias, margin), reads the completions of only the
problems the drill-down shows, draws the figures, and renders both documents from
one data dict that is also written as report.json, so every number in report.md can be
checked against it. Everything is rendered in memory first and each file is written
atomically (temp file + rename): bad input or a failure leaves no half-written report.

A single run renders a single-run report: the comparison parts (A → B table, coverage
partition, drill-down of disagreements, paired length differences) are omitted with a note.
Runs that cannot be compared (different benchmark rows or n) are an error unless force=True,
which compares the shared problems (analysis.coverage decides and says how many were kept).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from amir_bench import __version__
from amir_bench.errors import UserError
from amir_bench.jsonio import atomic_write_bytes, iter_jsonl, jsonable
from amir_bench.records import (SAMPLES, SCORES, SUMMARY, Run, RunSet, dedupe, load_runs,
                                read_samples_where, run_labels)
from amir_bench.setup_compare import prompt_label, setup_warnings

from analysis.fmt import is_num

DRILLDOWN_LIMIT = 25  # disagreeing problems shown per benchmark (all ids are in report.json)
EXCERPT_CHARS = 300   # tail of the completion shown in the drill-down
TRAIN_LOG = "metrics.jsonl"
# manifest keys whose differences the setup section does not list (ids and sources vary
# with shards and data folders; the rows' sha256 and count say what matters)
REPORT_DIFF_SKIP = ("problem_ids", "source")

# (panel title, [(metrics.jsonl key, label)], std key for a ±1 sd band)
TRAIN_PANELS: list[tuple[str, list[tuple[str, str]], str | None]] = [
    ("reward", [("reward", "reward")], "reward_std"),
    ("accuracy", [("accuracy", "accuracy")], None),
    ("completion length", [("completion_length_correct", "correct"),
                           ("completion_length_incorrect", "incorrect"),
                           ("completion_length", "all")], None),
    ("λ (AMIR weight)", [("amir/lambda", "λ")], None),
    ("preference pairs", [("amir/pairs", "pairs")], None),
    ("preference loss", [("amir/pref_loss", "pref loss")], None),
    ("implicit margin", [("amir/margin", "margin")], None),
    ("loss", [("loss", "loss")], None),
]


# ============================================================================ entry point


def build_report(run_dirs: Sequence[str | Path], out_dir: str | Path,
                 train_logs: Sequence[str | Path] = (), names: Sequence[str] | None = None,
                 seed: int = 0, *, force: bool = False, resamples: int = 10_000,
                 timings: dict | None = None) -> dict:
    """Render report.md, report.html, report.json (+ figures/*.png for the Markdown) in out_dir.

    Returns the report data (what report.json holds). Bad input raises UserError before
    anything is written. `timings`, when given, receives wall seconds per stage.
    """
    t: dict = timings if timings is not None else {}
    with _timed(t, "report total"):
        out_dir = Path(out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise UserError(f"--out {out_dir}: exists and is not a directory")
        with _timed(t, "load"):
            ctx = load_context(run_dirs, names, seed=seed, force=force, resamples=resamples)
            logs = load_train_logs(train_logs)
        data = collect(ctx, logs, timings=t)
        with _timed(t, "figures"):
            figures = make_figures(ctx, data)
        with _timed(t, "render+write"):
            data["figures"] = {key: f"figures/{key}.png" for key in figures}
            data = jsonable(data)
            from reports.blocks import to_markdown
            from reports.html import render_page
            from reports.sections import build_blocks

            blocks = build_blocks(data)
            md = to_markdown(blocks, data["figures"])
            page = render_page(data["title"], blocks, figures)
            write_outputs(out_dir, data, md, page, figures)

    return data


# ============================================================================ loading


@dataclasses.dataclass
class Context:
    """The loaded runs (labelled with their display names) and the analysis options."""

    runset: RunSet
    seed: int
    force: bool
    resamples: int

    @property
    def runs(self) -> list[Run]:
        return self.runset.runs

    @property
    def names(self) -> list[str]:
        return self.runset.labels


def load_context(run_dirs: Sequence[str | Path], names: Sequence[str] | None, *, seed: int = 0,
                 force: bool = False, resamples: int = 10_000) -> Context:
    """Load the runs once (amir_bench.records.load_runs) and check each summary.json parses."""
    if not run_dirs:
        raise UserError("report needs at least one run directory")
    rs = load_runs(run_dirs, names)
    for run in rs.runs:
        spath = run.path / SUMMARY
        if spath.exists():
            try:
                json.loads(spath.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise UserError(f"{spath}: not valid JSON (truncated?); rebuild it with "
                                f"`amir-bench summary {run.path}`") from None
    return Context(runset=rs, seed=seed, force=force, resamples=resamples)


def load_train_logs(dirs: Sequence[str | Path]) -> list[dict]:
    """Read DIR/metrics.jsonl of each training output dir into numeric series.

    A last line without its newline that fails to parse is what a trainer still writing
    leaves behind: it is skipped and noted. Any other malformed line is a file:line error.
    """
    paths = [Path(d) for d in dirs]
    logs = []
    for name, d in zip(run_labels(paths) if paths else [], paths):
        if d.is_file() and d.suffix == ".jsonl":  # the metrics file itself is fine too
            d, f = d.parent, d
        elif not d.is_dir():
            raise UserError(f"--train-log {d}: not a directory")
        else:
            f = d / TRAIN_LOG
        if not f.exists():
            raise UserError(f"--train-log {d}: no {TRAIN_LOG} (expected a training output dir)")
        rows = [obj for _, obj in iter_jsonl(f, tolerate_truncated_tail=True)]
        raw = f.read_bytes()
        tail = raw[raw.rfind(b"\n") + 1:]
        partial = bool(tail.strip()) and not _parses(tail)
        if not rows:
            raise UserError(f"{f}: no logged steps")
        series: dict[str, list[list[float]]] = {}
        for i, row in enumerate(rows):
            step = row.get("step", i)
            step = step if is_num(step) else i
            for key, val in row.items():
                if key != "step" and is_num(val):
                    series.setdefault(key, []).append([float(step), float(val)])
        logs.append({"name": name, "path": str(d), "steps": len(rows),
                     "partial_last_line_skipped": partial, "series": series,
                     "last": {k: v[-1][1] for k, v in series.items()}})
    return logs


def _parses(raw: bytes) -> bool:
    try:
        json.loads(raw)
        return True
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


# ============================================================================ data


@contextlib.contextmanager
def _timed(t: dict, key: str):
    """Add the wall seconds of the block to t[key], its process CPU seconds to t["cpu"][key]."""
    import time

    t0, c0 = time.perf_counter(), time.process_time()
    yield
    t[key] = t.get(key, 0.0) + time.perf_counter() - t0
    cpu = t.setdefault("cpu", {})
    cpu[key] = cpu.get(key, 0.0) + time.process_time() - c0


def collect(ctx: Context, logs: list[dict], timings: dict | None = None) -> dict:
    """Everything the documents show, as one JSON-able dict (report.json)."""
    from amir_bench.metrics import summarize_frame
    from reports.headline import apply_holm, headline, warnings

    t = timings if timings is not None else {}
    multi = len(ctx.runs) >= 2
    with _timed(t, "summaries"):
        summaries = {run.label: summarize_frame(run.to_frame(), run.ns) for run in ctx.runs}
    data: dict[str, Any] = {
        "kind": "report",
        "title": "amir-bench report: " + " vs ".join(ctx.names),
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "amir_bench_version": __version__,
        "seed": ctx.seed,
        "resamples": ctx.resamples,
        "names": ctx.names,
        "runs": [provenance(run, summaries[run.label]) for run in ctx.runs],
        "differences": config_differences(ctx.runs) if multi else [],
        "setup_warnings": setup_warnings([r.manifest for r in ctx.runs], ctx.names) if multi
        else [],
        "main_table": main_table(summaries),
        "coverage": None, "multiple_comparisons": None, "length": None, "margin": None,
        "margin_note": None, "training": logs, "drilldown": None,
    }
    if multi:
        from analysis.coverage import coverage

        with _timed(t, "coverage"):
            cov = data["coverage"] = coverage(ctx.runset, criterion="any", force=ctx.force,
                                              seed=ctx.seed, resamples=ctx.resamples)
        data["multiple_comparisons"] = apply_holm(
            cov, ["avg@n"] + [f"pass@{k}" for k in cov["ks"] if k > 1])
        data["main_table"].update(comparisons_from_coverage(cov))
    data["headline"] = headline(summaries, ctx.names, data["coverage"])
    from analysis.length import length_bias

    with _timed(t, "length"):
        data["length"] = length_bias(ctx.runset, seed=ctx.seed, resamples=ctx.resamples)
    with _timed(t, "margin"):
        data["margin"], data["margin_note"] = run_margin(ctx)
    data["warnings"] = warnings(summaries, data["margin_note"], data["margin"] is not None)
    if multi:
        with _timed(t, "drilldown"):
            data["drilldown"] = drilldown(ctx, data["coverage"])
    from reports.where import collect_where

    with _timed(t, "where"):  # pass@k / maj@k curves, strata, accuracy vs tokens
        data["where"] = collect_where(ctx.runs, ctx.names, coverage=data["coverage"],
                                      seed=ctx.seed, resamples=ctx.resamples)
    data["notes"] = _notes(ctx, logs, data)
    return data


def _notes(ctx: Context, logs: list[dict], data: dict) -> list[str]:
    """What the reader should know about the inputs (not warnings about the results)."""
    notes = []
    if len(ctx.runs) < 2:
        notes.append("Single run: the comparison sections (A → B table, coverage partition, "
                     "paired length differences, drill-down of disagreements) are omitted; give "
                     "two or more runs to compare them.")
    if data["margin"] is not None and data["margin_note"]:
        notes.append(data["margin_note"])
    for run in ctx.runs:
        if run.duplicates_dropped:
            notes.append(f"{run.label}: {run.duplicates_dropped} duplicate sample(s) (same "
                         "benchmark, problem and sample_idx) were ignored by the analyses.")
    for lg in logs:
        if lg["partial_last_line_skipped"]:
            notes.append(f"Training log {lg['name']}: its last line is incomplete (a trainer "
                         "still writing?) and was skipped.")
    return notes


def run_margin(ctx: Context) -> tuple[dict | None, str | None]:
    """(margin.json of the scored runs, note). Runs without scores.jsonl are left out with a
    note (none scored: the section says how to add it); a scores.jsonl that is present but
    truncated, malformed or incomplete is an error, like any other broken run file."""
    from analysis.margin import margin
    has = [(r.path / SCORES).exists() for r in ctx.runs]
    scored = [r for r, h in zip(ctx.runs, has) if h]
    missing = [r.label for r, h in zip(ctx.runs, has) if not h]
    if not scored:
        return None, ("Log-prob margin omitted: no run has scores.jsonl; run `amir-bench score "
                      "RUN` on each run to add it.")
    result = margin(RunSet(scored), seed=ctx.seed, resamples=ctx.resamples)
    note = None
    if missing:
        note = (f"Log-prob margin shown for {', '.join(r.label for r in scored)} only: "
                f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no scores.jsonl "
                "(run `amir-bench score RUN`).")
    return result, note


# ---------------------------------------------------------------- provenance


def provenance(run: Run, summary: dict) -> dict:
    """What produced the run (manifest), plus what the samples actually hold."""
    m = run.manifest
    g = run.to_frame().groupby("benchmark", sort=True)["problem_id"]
    per_bench = g.size().to_dict()
    problems = g.nunique().to_dict()
    mb = m.get("benchmarks") if isinstance(m.get("benchmarks"), dict) else {}
    benches = {}
    for b in sorted(set(mb) | set(per_bench)):
        e = mb.get(b) if isinstance(mb.get(b), dict) else {}
        benches[b] = {"source": e.get("source"), "sha256": e.get("sha256"), "count": e.get("count"),
                      "problems": int(problems.get(b, 0)), "samples": int(per_bench.get(b, 0))}
    ck = m.get("checkpoint")
    ck = ck if isinstance(ck, dict) else {"path": ck}
    dec = m.get("decoding")
    pv = m.get("package_versions")
    return {
        "name": run.label,
        "path": str(run.path),
        "checkpoint": {"path": ck.get("path"), "sha256": ck.get("sha256")},
        "backend": m.get("backend"),
        "template": m.get("template"),
        "prompt": prompt_label(m),
        "decoding": dec if isinstance(dec, dict) else {},
        "n_per_benchmark": run.ns,
        "shard": m.get("shard"),
        "created_at": m.get("created_at"),
        "amir_bench_version": m.get("amir_bench_version"),
        "package_versions": {str(k): str(v) for k, v in pv.items()} if isinstance(pv, dict) else {},
        "benchmarks": benches,
        "samples": len(run.to_frame()) + run.duplicates_dropped,  # records in samples.jsonl
        "duplicate_samples_ignored": run.duplicates_dropped,
        "summary_json": _summary_check(run, summary),
    }


def _summary_check(run: Run, fresh: dict) -> str:
    """Whether summary.json agrees with the metrics recomputed from samples (`fresh`)."""
    path = run.path / SUMMARY
    if not path.exists():
        return "absent (recomputed from samples)"
    stored = json.loads(path.read_text(encoding="utf-8"))
    bad = []
    for b, vals in fresh.items():
        old = stored.get(b) if isinstance(stored, dict) else None
        if not isinstance(old, dict):
            bad.append(b)
            continue
        for k, v in vals.items():
            o = old.get(k)
            if is_num(v) and (not is_num(o) or abs(float(o) - float(v)) > 1e-9):
                bad.append(f"{b}/{k}")
                break
    return "matches samples" if not bad else f"stale ({', '.join(bad[:4])}); recomputed values shown"


def config_differences(runs: Sequence[Run]) -> list[str]:
    """Dotted manifest keys (backend, template, decoding, benchmark rows) that differ."""
    from amir_bench.runstore import differing_keys

    return differing_keys([r.manifest for r in runs], ("backend", "benchmarks", "decoding",
                                                        "template"), skip=REPORT_DIFF_SKIP)


# ---------------------------------------------------------------- main table


def _metric_rank(k: str) -> tuple:
    if k == "avg@n":
        return (0, 0)
    kind, _, v = k.partition("@")
    return ({"pass": 1, "maj": 2}[kind], int(v))


def main_table(per_run: dict[str, dict]) -> dict:
    """Per run and benchmark: the metrics of summary.json (amir_bench.metrics.summarize over
    the samples, passed in as per_run), the metric columns and the mean over benchmarks."""
    metrics = sorted({k for s in per_run.values() for v in s.values() for k in v
                      if k == "avg@n" or re.fullmatch(r"(pass|maj)@\d+", k)}, key=_metric_rank)
    benchmarks = sorted({b for s in per_run.values() for b in s})
    mean = {}
    if len(benchmarks) > 1:
        for name, s in per_run.items():
            if all(b in s for b in benchmarks):
                mean[name] = {m: float(sum(s[b][m] for b in benchmarks) / len(benchmarks))
                              for m in metrics if all(m in s[b] for b in benchmarks)}
    return {"metrics": metrics, "benchmarks": benchmarks, "per_run": per_run,
            "mean_over_benchmarks": mean, "comparison_metrics": [], "comparisons": []}


POOLED = "all (pooled problems)"


def comparisons_from_coverage(cov: dict) -> dict:
    """A → B (gain) [CI], p and Holm p per pair, benchmark (pooled too, with several) and
    metric, from coverage's paired bootstrap.

    Values are on the problems coverage compared (all of them unless --force dropped some).
    pass@1 is omitted: it equals avg@n.
    """
    from reports.headline import scopes

    metrics = ["avg@n"] + [f"pass@{k}" for k in cov["ks"] if k > 1]
    rows = []
    for scope, blk in scopes(cov):
        for p in blk["pairs"]:
            for m in metrics:
                d = p["diff"].get(m)
                if d is None:
                    continue
                rows.append({"a": p["a"], "b": p["b"], "benchmark": POOLED if scope == "all"
                             else scope, "metric": m,
                             "a_value": blk["metrics"][p["a"]].get(m),
                             "b_value": blk["metrics"][p["b"]].get(m),
                             "gain": d.get("estimate"), "ci_low": d.get("ci_low"),
                             "ci_high": d.get("ci_high"), "p_value": d.get("p_value"),
                             "p_holm": d.get("p_holm"), "problems": blk["problems"]})
    return {"comparison_metrics": metrics, "comparisons": rows}


# ---------------------------------------------------------------- drill-down


def drilldown(ctx: Context, cov: dict, limit: int = DRILLDOWN_LIMIT) -> dict:
    """Problems the runs disagree on (solved under coverage's criterion by some, not all)."""
    import numpy as np

    labels = cov["labels"]
    first, last = labels[0], labels[-1]
    per_bench: dict[str, dict] = {}
    shown: list[tuple[str, str, str]] = []  # (benchmark, problem id, kind)
    total = 0
    for b, blk in cov["benchmarks"].items():
        ids = blk["problem_ids"]
        flags = np.array([blk["solved"][lab] for lab in labels], dtype=bool).T  # (P, m)
        dis = flags.any(axis=1) & ~flags.all(axis=1)
        gain = flags[:, -1] & ~flags[:, 0]
        loss = flags[:, 0] & ~flags[:, -1]
        kind = np.where(gain, 0, np.where(loss, 1, 2))
        order = sorted(np.flatnonzero(dis).tolist(), key=lambda i: (kind[i], _natural(ids[i])))
        total += len(order)
        per_bench[b] = {"shared_problems": len(ids), "disagree": len(order),
                        "problem_ids": [ids[i] for i in order],
                        "shown": [ids[i] for i in order[:limit]]}
        shown += [(b, ids[i], ("gain", "loss", "mixed")[kind[i]]) for i in order[:limit]]
    wanted = {(b, pid) for b, pid, _ in shown}
    picks: dict[tuple[str, str], dict[str, dict]] = {k: {} for k in wanted}
    for run in ctx.runs:
        name = run.label
        groups: dict[tuple[str, str], list] = {}
        for r in dedupe(read_samples_where(run.path / SAMPLES, wanted))[0]:
            k = (r.benchmark, r.problem_id)
            if k in wanted:
                groups.setdefault(k, []).append(r)
        for k, recs in groups.items():
            recs.sort(key=lambda r: r.sample_idx)
            picks[k][name] = _representative(recs)
    rows = []
    for b, pid, kind in shown:
        runs = picks[(b, pid)]
        gold = next((p["gold"] for p in runs.values()), None)
        rows.append({"benchmark": b, "problem_id": pid, "kind": kind, "gold": gold,
                     "solved": {lab: bool(cov["benchmarks"][b]["solved"][lab][
                         cov["benchmarks"][b]["problem_ids"].index(pid)]) for lab in labels},
                     "runs": runs})
    return {"criterion": cov["criterion"], "limit": limit, "gain_loss_of": [first, last],
            "total": total, "per_benchmark": per_bench, "rows": rows}


def _representative(recs: list) -> dict:
    """First correct sample, else the first sample of the most common answer, else sample 0."""
    correct = [r for r in recs if r.correct]
    if correct:
        pick = correct[0]
    else:
        answers = Counter(r.extracted.strip() for r in recs if r.extracted is not None)
        pick = recs[0]
        if answers:
            top = answers.most_common(1)[0][0]
            pick = next(r for r in recs if r.extracted is not None and r.extracted.strip() == top)
    text = pick.completion or ""
    excerpt = text if len(text) <= EXCERPT_CHARS else "…" + text[-EXCERPT_CHARS:]
    return {"sample_idx": pick.sample_idx, "extracted": pick.extracted, "correct": bool(pick.correct),
            "gold": pick.gold, "finish_reason": pick.finish_reason, "excerpt": excerpt,
            "n_correct": len(correct), "n": len(recs)}


def _natural(s: str) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t)


# ============================================================================ figures


def make_figures(ctx: Context, data: dict) -> dict[str, bytes]:
    """PNG bytes per figure key: coverage, length, length_quintiles, margin, training."""
    import pandas as pd

    from reports import plots

    figs: dict[str, bytes] = {}
    names = ctx.names
    cov = data.get("coverage")
    if cov:
        panels = list(cov["benchmarks"].items())
        if len(panels) > 1:
            panels.insert(0, ("all benchmarks", cov["overall"]))
        figs["coverage"] = plots.coverage_figure(
            cov["labels"], [(title, {tuple(int(ch) for ch in p["cell"]): p["count"]
                                     for p in blk["partition"]}) for title, blk in panels])
    frames = []
    for r in ctx.runs:
        f = r.to_frame()[["benchmark", "num_tokens", "correct"]].copy()
        f["run"] = r.label
        frames.append(f)
    lf = pd.concat(frames, ignore_index=True)
    figs["length"] = plots.length_figure(lf, names, data["main_table"]["benchmarks"])
    ln = data.get("length")
    if ln:
        series: dict[str, dict[str, list]] = {}
        for name in ln["labels"]:
            for b, s in ln["per_run"][name]["benchmarks"].items():
                pts = [(q["bin"], q["accuracy"]) for q in s.get("quintiles") or []]
                if pts:
                    series.setdefault(b, {})[name] = pts
        if series:
            figs["length_quintiles"] = plots.quintile_figure(series, names)
    mg = data.get("margin")
    if mg:
        rows = []
        for name in mg["labels"]:
            for b, s in mg["per_run"][name]["benchmarks"].items():
                pp = s.get("per_problem") or {}
                for v in pp.get("margin") or []:
                    rows.append((name, b, v))
        mf = pd.DataFrame(rows, columns=["run", "benchmark", "margin"])
        if len(mf):
            benches = [b for b in sorted(mf["benchmark"].unique())]
            figs["margin"] = plots.margin_figure(mf, names, benches, "margin (nats/token)")
    from reports.headline import forest_rows

    rows = forest_rows(data["headline"])
    if rows:
        figs["forest"] = plots.forest_figure(rows)
    panels = training_panels(data.get("training") or [])
    if panels:
        figs["training"] = plots.training_figure(panels)
    from reports.where import where_figures

    figs.update(where_figures(data.get("where") or {}))
    return figs


def training_panels(logs: list[dict]) -> list:
    panels = []
    for title, keys, std_key in TRAIN_PANELS:
        lines = []
        for lg in logs:
            for key, label in keys:
                pts = lg["series"].get(key)
                if not pts:
                    continue
                steps = [p[0] for p in pts]
                vals = [p[1] for p in pts]
                std = None
                if std_key and std_key in lg["series"]:
                    sd = {p[0]: p[1] for p in lg["series"][std_key]}
                    if all(s in sd for s in steps):
                        std = [sd[s] for s in steps]
                lines.append((lg["name"], label, steps, vals, std))
        if lines:
            panels.append((title, lines))
    return panels


# ============================================================================ output


def write_outputs(out_dir: Path, data: dict, md: str, page: str, figures: dict[str, bytes]) -> None:
    """Atomic writes (temp + rename); figures first so report.md never points at nothing.

    Figures of an earlier report that this one does not draw are removed afterwards.
    """
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for key, png in figures.items():
        atomic_write_bytes(fig_dir / f"{key}.png", png)
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_bytes(out_dir / "report.json", text.encode("utf-8"))
    atomic_write_bytes(out_dir / "report.md", md.encode("utf-8"))
    atomic_write_bytes(out_dir / "report.html", page.encode("utf-8"))
    for old in fig_dir.glob("*.png"):
        if old.stem not in figures:
            old.unlink()
