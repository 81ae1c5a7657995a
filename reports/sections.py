"""Report data (report.json) -> blocks, one function per section.

Numbers are formatted here once; both documents are rendered from these blocks. Rates and
metrics are shown in %, differences in percentage points, CIs are 95% paired-bootstrap
percentile intervals over problems (from analysis.coverage / length / margin).
"""

from __future__ import annotations

import json
from typing import Any

from analysis.fmt import ci_text, is_num, num, pct, pval, snum, spct, with_all  # noqa: F401
from reports.blocks import Block, Cell, Details, Figure, Heading, Para, Table
from reports.headline import headline_section, scopes, warning_blocks

ID_LIST_LIMIT = 60  # gain/loss ids listed per pair in the documents (all are in report.json)


# ---------------------------------------------------------------- number formatting


def tone_of(ci_low: Any, ci_high: Any) -> str | None:
    """Green/red when a CI excludes 0; none for a degenerate CI (one problem, lo == hi)."""
    if not (is_num(ci_low) and is_num(ci_high)) or ci_low == ci_high:
        return None
    if ci_low > 0:
        return "up"
    if ci_high < 0:
        return "down"
    return None


def n_cell(x: Any) -> Cell:
    return Cell("—" if x is None else str(x), numeric=True)


# ---------------------------------------------------------------- document


def build_blocks(data: dict) -> list[Block]:
    blocks: list[Block] = [
        Heading(1, data["title"]),
        Para(f"Generated {data['generated_at']} by amir-bench {data['amir_bench_version']}; "
             f"bootstrap seed {data['seed']}, {data['resamples']} resamples. Metrics are "
             "recomputed from samples.jsonl; metrics and rates in %, differences in percentage "
             "points, CIs are 95% paired-bootstrap intervals over problems. Every number is also "
             "in report.json.", note=True),
    ]
    blocks += warning_blocks(data)
    blocks += headline_section(data)
    for note in data["notes"]:
        blocks.append(Para(note, note=True))
    blocks += setup_section(data)
    blocks += main_section(data)
    if data.get("coverage"):
        blocks += coverage_section(data)
    from reports.where import where_blocks

    blocks += where_blocks(data.get("where") or {})
    blocks += length_section(data)
    blocks += margin_section(data)
    if data.get("training"):
        blocks += training_section(data)
    if data.get("drilldown"):
        blocks += drilldown_section(data)
    return blocks


# ---------------------------------------------------------------- setup and provenance


def _n_text(r: dict) -> Any:
    """decoding.n, or each benchmark's n where they differ."""
    ns = r.get("n_per_benchmark") or {}
    if len(set(ns.values())) > 1:
        return ", ".join(f"{b}: {n}" for b, n in ns.items())
    return r["decoding"].get("n", next(iter(ns.values()), None))


def setup_section(data: dict) -> list[Block]:
    runs = data["runs"]
    names = [r["name"] for r in runs]
    out: list[Block] = [Heading(2, "Setup and provenance", "setup")]

    def dec(r: dict, k: str) -> Any:
        return r["decoding"].get(k)

    fields = [
        ("path", lambda r: r["path"]),
        ("checkpoint", lambda r: r["checkpoint"]["path"]),
        ("checkpoint sha256", lambda r: (r["checkpoint"]["sha256"] or "—")[:16]),
        ("backend", lambda r: r["backend"]),
        ("template", lambda r: r["template"]),
        ("prompt", lambda r: r.get("prompt")),
        ("n (samples/problem)", _n_text),
        ("temperature", lambda r: dec(r, "temperature")),
        ("top_p", lambda r: dec(r, "top_p")),
        ("top_k", lambda r: dec(r, "top_k")),
        ("max_new_tokens", lambda r: dec(r, "max_new_tokens")),
        ("seed", lambda r: dec(r, "seed")),
        ("shard", lambda r: r["shard"]),
        ("created_at", lambda r: r["created_at"]),
        ("amir-bench version", lambda r: r["amir_bench_version"]),
        ("samples loaded", lambda r: r["samples"]),
        ("summary.json", lambda r: r["summary_json"]),
    ]
    rows = []
    for label, get in fields:
        vals = [get(r) for r in runs]
        differs = len(runs) > 1 and len({json.dumps(v, sort_keys=True, default=str) for v in vals}) > 1
        differs = differs and label not in ("path", "created_at", "samples loaded", "summary.json",
                                            "checkpoint", "checkpoint sha256")
        rows.append([label] + [Cell("—" if v is None else str(v), tone="differs" if differs else None)
                               for v in vals])
    out.append(Table(["field"] + names, rows,
                     caption="What produced each run (manifest.json); shaded rows differ between runs."))
    benches = sorted({b for r in runs for b in r["benchmarks"]})
    rows = []
    for b in benches:
        shas = {r["benchmarks"].get(b, {}).get("sha256") for r in runs if b in r["benchmarks"]}
        differs = len(shas) > 1
        row: list = [b]
        for r in runs:
            e = r["benchmarks"].get(b)
            if e is None:
                row.append(Cell("absent", tone="differs"))
                continue
            row.append(Cell(f"{e['problems']} problems, {e['samples']} samples",
                            sub=f"{e['source'] or '—'} · rows sha256 {(e['sha256'] or '—')[:12]} · "
                                f"manifest count {e['count'] if e['count'] is not None else '—'}",
                            tone="differs" if differs else None))
        rows.append(row)
    out.append(Table(["benchmark"] + names, rows,
                     caption="Benchmarks: what the samples hold, and the rows each run was built from."))
    for w in data.get("setup_warnings") or []:
        out.append(Para("Warning: " + w, note=True))
    if data["differences"]:
        out.append(Para("Configuration that differs between runs: " + ", ".join(data["differences"]),
                        note=True))
    pkgs = sorted({p for r in runs for p in r["package_versions"]})
    if pkgs:
        rows = []
        for p in pkgs:
            vals = [r["package_versions"].get(p) for r in runs]
            differs = len(runs) > 1 and len(set(map(str, vals))) > 1
            rows.append([p] + [Cell(v or "—", tone="differs" if differs else None) for v in vals])
        out.append(Details("Package versions", [Table(["package"] + names, rows)]))
    return out


# ---------------------------------------------------------------- main table


def main_section(data: dict) -> list[Block]:
    mt = data["main_table"]
    names = data["names"]
    metrics = mt["metrics"]
    out: list[Block] = [Heading(2, "Main results", "main")]
    header = ["benchmark", "run"] + metrics + ["avg@n ± se", "no answer", "truncated", "mean tokens",
                                               "n"]
    rows = []
    for b in mt["benchmarks"]:
        for name in names:
            s = mt["per_run"][name].get(b)
            if not s:
                continue
            rows.append([b, name] + [Cell(pct(s.get(m)), numeric=True) for m in metrics]
                        + [Cell("± " + pct(s.get("avg@n_se")), numeric=True),
                           Cell(pct(s.get("no_answer_rate")), numeric=True),
                           Cell(pct(s.get("truncation_rate")), numeric=True),
                           Cell(num(s.get("mean_tokens")), numeric=True),
                           n_cell(s.get("n"))])
    for name, s in mt["mean_over_benchmarks"].items():
        rows.append(["mean over benchmarks", name] + [Cell(pct(s.get(m)), numeric=True) for m in metrics]
                    + ["", "", "", "", ""])
    out.append(Table(header, rows, caption="Per run and benchmark, in % (mean tokens in tokens); "
                                           "the same metrics as summary.json, recomputed from samples."))
    comps = mt["comparisons"]
    if not comps:
        return out
    cmetrics = mt["comparison_metrics"]
    pairs: list[tuple[str, str]] = []
    for c in comps:
        if (c["a"], c["b"]) not in pairs:
            pairs.append((c["a"], c["b"]))
    for a, b in pairs:
        out.append(Heading(3, f"{a} → {b}"))
        cells = {(c["benchmark"], c["metric"]): c for c in comps if c["a"] == a and c["b"] == b}
        shown = [s for s in mt["benchmarks"] + ["all (pooled problems)"]
                 if any((s, m) in cells for m in cmetrics)]
        rows = []
        for scope in shown:
            probs = next(c["problems"] for (s, _), c in cells.items() if s == scope)
            row: list = [scope, n_cell(probs)]
            for m in cmetrics:
                c = cells.get((scope, m))
                if c is None:
                    row.append("—")
                    continue
                ps = f" · p {pval(c.get('p_value'))}, Holm {pval(c.get('p_holm'))}" \
                    if is_num(c.get("p_value")) else ""
                row.append(Cell(f"{pct(c['a_value'])} → {pct(c['b_value'])}",
                                sub=f"({spct(c['gain'])}) {ci_text(c)}".strip() + ps,
                                tone=tone_of(c.get("ci_low"), c.get("ci_high"))))
            rows.append(row)
        out.append(Table(["benchmark", "problems"] + cmetrics, rows,
                         caption=f"A → B (gain) [95% CI], A = {a}, B = {b}, on the problems both "
                                 "runs have (pass@1 equals avg@n and is not repeated). Green/red: "
                                 "the CI excludes 0. The pooled row resamples within each benchmark."))
    return out


# ---------------------------------------------------------------- coverage


def _cell_label(bits: str) -> list[Cell]:
    return [Cell("✓" if ch == "1" else "✗", tone="ok" if ch == "1" else "no") for ch in bits]


def coverage_section(data: dict) -> list[Block]:
    cov = data["coverage"]
    labels = cov["labels"]
    out: list[Block] = [Heading(2, "Coverage: which problems each run solves", "coverage"),
                        Para(f"A problem counts as solved under criterion “{cov['criterion']}” "
                             f"(n = {', '.join(map(str, sorted({x for _, b in cov['benchmarks'].items() for x in b.get('n') or cov['n']})))} samples per "
                             "problem). The partition gives, for every combination of runs, how "
                             "many problems exactly those runs solve; percentages are of the "
                             "problems solved by at least one run (as in the paper's Table 2).")]
    for note in cov.get("notes") or []:
        out.append(Para(note, note=True))
    out.append(Figure("coverage", "Venn / UpSet partition of solved problems"))
    shown = [("all", cov["overall"])] + list(cov["benchmarks"].items())
    rows = []
    for cell in [p["cell"] for p in cov["overall"]["partition"]]:
        row: list = _cell_label(cell)
        for _, blk in shown:
            p = next((x for x in blk["partition"] if x["cell"] == cell), None)
            if p is None or p["count"] == 0:
                row.append(Cell("—", numeric=True))
                continue
            sub = f"{p['pct_union']:.1f}%" if is_num(p.get("pct_union")) else "unsolved"
            row.append(Cell(str(p["count"]), sub=sub, numeric=True))
        rows.append(row)
    rows.append([Cell("solved by ≥1 run")] + [""] * (len(labels) - 1)
                + [Cell(f"{blk['union_solved']} / {blk['problems']}", numeric=True) for _, blk in shown])
    out.append(Table(labels + [s for s, _ in shown], rows,
                     caption="Problems per cell (count, % of problems solved by any run)."))
    rows = []
    details: list[Block] = []
    for scope, blk in scopes(cov):
        for p in blk["pairs"]:
            d = p["diff"].get("solved_rate") or {}
            rows.append([scope, f"{p['a']} vs {p['b']}", n_cell(p["both"]),
                         Cell(str(p["n_losses"]), numeric=True, tone="down" if p["n_losses"] else None),
                         Cell(str(p["n_gains"]), numeric=True, tone="up" if p["n_gains"] else None),
                         n_cell(p["neither"]), Cell(pval(p["mcnemar"]["p_value"]), numeric=True),
                         Cell(pval(p["mcnemar"].get("p_holm")), numeric=True),
                         Cell(spct(d.get("estimate")), sub=ci_text(d),
                              tone=tone_of(d.get("ci_low"), d.get("ci_high")))])
            if scope != "all" and (p["gains"] or p["losses"]):
                for kind, ids in (("solved only by " + p["b"], p["gains"]),
                                  ("solved only by " + p["a"], p["losses"])):
                    if ids:
                        shown = ", ".join(ids[:ID_LIST_LIMIT])
                        more = f" … and {len(ids) - ID_LIST_LIMIT} more" if len(ids) > ID_LIST_LIMIT else ""
                        details.append(Para(f"{scope}, {p['a']} vs {p['b']}: {kind} ({len(ids)}): "
                                            f"{shown}{more}"))
    out.append(Table(["scope", "A vs B", "both", "only A", "only B", "neither", "McNemar p",
                      "Holm p", "Δ solved (B − A)"], rows,
                     caption="Per pair: discordant problems and the exact McNemar test on them "
                             "(Holm p: adjusted over every test this report shows); Δ solved is "
                             "the difference in solved rate with its bootstrap CI."))
    if details:
        out.append(Details("Problem ids gained and lost", details))
    return out


# ---------------------------------------------------------------- length


def _desc(d: dict | None) -> Cell:
    if not d or d.get("count", 0) == 0:
        return Cell("—", numeric=True)
    return Cell(f"{num(d['mean'], 0)} / {num(d['median'], 0)}",
                sub=f"IQR {num(d['q1'], 0)}–{num(d['q3'], 0)}, {d['count']} samples", numeric=True)


def length_section(data: dict) -> list[Block]:
    ln = data.get("length")
    out: list[Block] = [Heading(2, "Length and correctness", "length")]
    out.append(Figure("length", "completion length by correctness per run and benchmark"))
    if not ln:
        return out
    for note in ln.get("notes") or []:
        out.append(Para(note, note=True))
    rows = []
    for name in ln["labels"]:
        pr = ln["per_run"][name]
        for scope, s in with_all(pr["benchmarks"], pr["overall"]):
            pb = s.get("point_biserial") or {}
            wp = s.get("within_problem") or {}
            rows.append([scope, name, Cell(pct(s.get("accuracy")), numeric=True),
                         _desc(s.get("correct")), _desc(s.get("incorrect")),
                         Cell(num(s.get("ratio_incorrect_correct"), 2), numeric=True),
                         Cell(snum(wp.get("mean_diff_incorrect_minus_correct"), 0),
                              sub=f"{wp.get('problems', 0)} problems", numeric=True),
                         Cell(pct(s.get("truncation_rate")),
                              sub=f"correct {pct(s.get('truncation_rate_correct'))} / incorrect "
                                  f"{pct(s.get('truncation_rate_incorrect'))}", numeric=True),
                         Cell(num(pb.get("r"), 3), sub=f"p {pval(pb.get('p_value'))}"
                              if is_num(pb.get("p_value")) else None, numeric=True)])
    out.append(Table(["benchmark", "run", "accuracy", "tokens correct (mean / median)",
                      "tokens incorrect (mean / median)", "ratio incorrect/correct",
                      "within-problem Δ (incorrect − correct)", "truncated", "point-biserial r"],
                     rows, caption="Length of correct vs incorrect samples. Within-problem Δ "
                                   "averages the gap inside problems that have both (controls "
                                   "for difficulty); r correlates length with correctness."))
    out.append(Figure("length_quintiles", "accuracy by length quintile"))
    rows = []
    for p in ln.get("pairs") or []:
        for scope, s in with_all(p.get("benchmarks") or {}, p.get("overall")):
            if not s:
                continue
            d = s["diff"]
            rows.append([scope, f"{p['a']} → {p['b']}", n_cell(s["problems"]),
                         Cell(f"{num(s['mean_a'], 0)} → {num(s['mean_b'], 0)}", numeric=True),
                         Cell(snum(d.get("estimate"), 1), sub=ci_text(d, lambda v: snum(v, 1)),
                              tone=tone_of(d.get("ci_low"), d.get("ci_high")), numeric=True),
                         Cell(snum(s.get("median_diff"), 1), numeric=True)])
    if rows:
        out.append(Table(["benchmark", "A → B", "problems", "mean tokens", "Δ mean tokens [95% CI]",
                          "median Δ"], rows,
                         caption="Paired per-problem difference of mean completion length (B − A) "
                                 "on shared problems; colored when the CI excludes 0."))
    return out


# ---------------------------------------------------------------- margin


def margin_section(data: dict) -> list[Block]:
    mg = data.get("margin")
    out: list[Block] = [Heading(2, "Log-prob margin", "margin")]
    if not mg:
        out.append(Para(data.get("margin_note") or "No scores.jsonl: margin omitted.", note=True))
        return out
    out.append(Para("Per problem with both correct and incorrect samples: margin = mean ℓ(correct) − "
                    "mean ℓ(incorrect), ℓ the length-normalized teacher-forced log-prob (nats per "
                    "token). The paper's Figure 4 reports mean margins 0.016 (AMIR-GRPO) vs 0.006 "
                    "(GRPO). Pair level: over all (correct, incorrect) pairs inside a problem."))
    for note in mg.get("notes") or []:
        out.append(Para(note, note=True))
    rows = []
    for name in mg["labels"]:
        pr = mg["per_run"][name]
        for scope, s in with_all(pr["benchmarks"], pr["overall"]):
            ci = s.get("mean_margin_ci") or {}
            pairs = s.get("pairs") or {}
            rows.append([scope, name,
                         Cell(f"{s['problems_mixed']} / {s['problems']}", numeric=True),
                         Cell(num(s.get("mean_margin"), 4), sub=ci_text(ci, lambda v: num(v, 4)),
                              tone=tone_of(ci.get("ci_low"), ci.get("ci_high")), numeric=True),
                         Cell(num(s.get("median_margin"), 4), numeric=True),
                         Cell(pct(s.get("frac_positive")), numeric=True),
                         Cell(num(pairs.get("mean_margin"), 4), sub=f"{pairs.get('count', 0)} pairs",
                              numeric=True),
                         Cell(pct(pairs.get("frac_positive")), numeric=True),
                         Cell(num(s.get("auroc"), 3), numeric=True),
                         Cell(num(pairs.get("auroc_within_problem"), 3), numeric=True)])
    out.append(Table(["benchmark", "run", "mixed problems", "mean margin [95% CI]", "median",
                      "% problems > 0", "pair mean margin", "% pairs > 0", "AUROC",
                      "AUROC within problem"], rows))
    out.append(Figure("margin", "violins of per-problem log-prob margins"))
    return out


# ---------------------------------------------------------------- training


TRAIN_TABLE_KEYS = ["reward", "accuracy", "completion_length_correct", "completion_length_incorrect",
                    "amir/lambda", "amir/pairs", "amir/pref_loss", "amir/margin", "loss"]


def training_section(data: dict) -> list[Block]:
    logs = data["training"]
    out: list[Block] = [Heading(2, "Training curves", "training"),
                        Figure("training", "training curves"),
                        Para("Curves from each training output dir's metrics.jsonl; a panel appears "
                             "when some log has its key (GRPO logs have no amir/* keys).")]
    keys = [k for k in TRAIN_TABLE_KEYS if any(k in lg["last"] for lg in logs)]
    rows = [[lg["name"], n_cell(lg["steps"])] + [Cell(num(lg["last"].get(k), 4), numeric=True)
                                                  for k in keys] for lg in logs]
    out.append(Table(["log", "steps"] + keys, rows, caption="Last logged value of each curve."))
    return out


# ---------------------------------------------------------------- drill-down


def drilldown_section(data: dict) -> list[Block]:
    dd = data["drilldown"]
    names = data["names"]
    first, last = dd["gain_loss_of"]
    out: list[Block] = [
        Heading(2, "Where the runs disagree", "disagree"),
        Para(f"{dd['total']} problems are solved (under “{dd['criterion']}”) by some runs but not "
             f"all. Gains ({last} solves, {first} does not) first, then losses, then mixed; at most "
             f"{dd['limit']} per benchmark here (all ids are in report.json). Per run: ✓/✗ of the "
             "answer shown, correct samples / n, the extracted answer, and the tail of that "
             "completion (the first correct sample, else the most common answer)."),
    ]
    for b, info in dd["per_benchmark"].items():
        if not info["disagree"]:
            continue
        out.append(Heading(3, f"{b}: {info['disagree']} of {info['shared_problems']} problems"))
        rows = []
        for row in (r for r in dd["rows"] if r["benchmark"] == b):
            cells: list = [row["problem_id"], row["kind"], Cell(str(row["gold"]))]
            for name in names:
                p = row["runs"].get(name)
                if p is None:
                    cells.append("—")
                    continue
                ans = p["extracted"] if p["extracted"] is not None else "(no answer)"
                cells.append(Cell(f"{'✓' if p['correct'] else '✗'} {ans}",
                                  sub=f"{p['n_correct']}/{p['n']} correct"
                                      + (", truncated" if p["finish_reason"] == "length" else ""),
                                  tone="ok" if p["correct"] else "no", excerpt=p["excerpt"]))
            rows.append(cells)
        out.append(Table(["problem", "kind", "gold"] + list(names), rows))
    return out
