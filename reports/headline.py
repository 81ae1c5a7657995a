"""The report's first screen: the headline (per benchmark, each run's avg@n ± SE and the
paired differences with CI, p and Holm-adjusted p, and what a non-significant difference would
need), the warnings about degenerate runs, and the Holm adjustment over every test the
report shows. Data functions fill report.json; block functions render it."""

from __future__ import annotations

from typing import Any

from analysis.fmt import ci_text, is_num, pct, pval, spct, with_all
from reports.blocks import Block, Cell, Figure, Heading, Para, Table

ALPHA = 0.05


# ---------------------------------------------------------------- data


def scopes(cov: dict) -> list[tuple[str, dict]]:
    """The coverage blocks a report shows: each benchmark, and the pooled one when there are
    several (with one benchmark it repeats that benchmark)."""
    return with_all(cov["benchmarks"], cov["overall"])


def apply_holm(cov: dict, metrics: list[str]) -> dict:
    """Holm-adjust, as one family, every test the report shows: per benchmark (and pooled) and
    pair, the bootstrap test of each compared metric and the McNemar test of solved problems.
    Sets "p_holm" next to each raw "p_value"; returns the family's description."""
    from analysis.stats import holm

    tests: list[dict] = []
    for _, blk in scopes(cov):
        for pair in blk["pairs"]:
            tests += [pair["diff"][m] for m in metrics if pair["diff"].get(m)]
            tests.append(pair["mcnemar"])
    adjusted = holm([t.get("p_value") for t in tests])
    for t, p in zip(tests, adjusted):
        t["p_holm"] = p
    return {"method": "holm", "alpha": ALPHA, "tests": sum(p is not None for p in adjusted),
            "family": "per benchmark (and pooled) and pair: the bootstrap test of each of "
                      f"{', '.join(metrics)} and the McNemar test of solved problems"}


def headline(summaries: dict[str, dict], names: list[str], cov: dict | None) -> dict:
    """Per benchmark: each run's avg@n ± SE (n, problems) and, with several runs, each pair's
    avg@n difference with CI, p, Holm p and the power block (coverage's paired bootstrap)."""
    benches = sorted({b for s in summaries.values() for b in s})
    out: dict[str, Any] = {"metric": "avg@n", "benchmarks": {}}
    for b in benches:
        runs = [{"name": nm, "avg@n": s.get("avg@n"), "se": s.get("avg@n_se"), "n": s.get("n"),
                 "problems": s.get("problems")}
                for nm in names if (s := summaries[nm].get(b))]
        diffs = []
        blk = (cov or {}).get("benchmarks", {}).get(b)
        for pair in (blk or {}).get("pairs", []):
            d = pair["diff"].get("avg@n") or {}
            diffs.append({"a": pair["a"], "b": pair["b"], **{k: d.get(k) for k in (
                "estimate", "ci_low", "ci_high", "p_value", "p_holm")},
                "significant": _significant(d), "power": pair.get("power")})
        out["benchmarks"][b] = {"runs": runs, "differences": diffs,
                                "problems_compared": blk["problems"] if blk else None}
    return out


def _significant(d: dict) -> bool:
    """The Holm-adjusted p is below alpha (the raw p when no adjustment was made)."""
    p = d.get("p_holm", d.get("p_value"))
    return is_num(p) and p < ALPHA


def warnings(summaries: dict[str, dict], margin_note: str | None,
             has_margin: bool) -> list[str]:
    """Degenerate runs, said plainly: every sample truncated, no answer extracted, nothing
    solved; and a margin section without scores."""
    out = []
    checks = (("truncation_rate", 1.0, "every sample hit max_new_tokens (finish_reason "
               "length): raise max_new_tokens or the numbers mean little"),
              ("no_answer_rate", 1.0, "no sample has an extractable answer: check the prompt "
               "template and the extractor"),
              ("avg@n", 0.0, "no sample is correct: coverage and pass@k cannot tell runs apart "
               "here"))
    for name, per_bench in summaries.items():
        for key, bad, why in checks:
            hit = [b for b, s in per_bench.items() if s.get(key) == bad]
            if hit:
                where = "every benchmark" if len(hit) == len(per_bench) and len(hit) > 1 \
                    else ", ".join(hit)
                out.append(f"{name} on {where}: {why}.")
    if not has_margin and margin_note:
        out.append(margin_note)
    return out


def forest_rows(head: dict) -> list[tuple]:
    """(benchmark, "A → B", estimate, ci_low, ci_high) in percentage points for the plot."""
    rows = []
    for b, blk in head["benchmarks"].items():
        for d in blk["differences"]:
            if is_num(d["estimate"]):
                rows.append((b, f"{d['a']} → {d['b']}", 100.0 * d["estimate"],
                             100.0 * d["ci_low"] if is_num(d["ci_low"]) else None,
                             100.0 * d["ci_high"] if is_num(d["ci_high"]) else None))
    return rows


# ---------------------------------------------------------------- blocks


def warning_blocks(data: dict) -> list[Block]:
    return [Para(w, warn=True) for w in data.get("warnings") or []]


def headline_section(data: dict) -> list[Block]:
    """The headline table (and forest plot with several runs)."""
    head = data["headline"]
    out: list[Block] = [Heading(2, "Headline", "headline")]
    rows = []
    for b, blk in head["benchmarks"].items():
        cells = [b]
        for name in data["names"]:
            r = next((x for x in blk["runs"] if x["name"] == name), None)
            cells.append(Cell(f"{pct(r['avg@n'])} ± {pct(r['se'])}",
                              sub=f"n = {r['n']}, {r['problems']} problems", numeric=True)
                         if r else Cell("—", sub="not evaluated", numeric=True))
        rows.append(cells)
    out.append(Table(["benchmark"] + list(data["names"]), rows,
                     caption="avg@n ± standard error over problems, in %."))
    diffs = [(b, d) for b, blk in head["benchmarks"].items() for d in blk["differences"]]
    if not diffs:
        out.append(Para("One run: no paired differences to show; give two or more runs to "
                        "compare them.", note=True))
        return out
    out.append(Figure("forest", "paired avg@n differences with 95% CIs"))
    out.append(Table(["benchmark", "A → B", "Δ avg@n [95% CI]", "p", "Holm p", "to detect it"],
                     [_diff_row(b, d) for b, d in diffs], caption=_caption(data)))
    return out


def _diff_row(b: str, d: dict) -> list:
    sig = _significant(d)
    tone = ("up" if d["estimate"] > 0 else "down") if sig and is_num(d["estimate"]) else None
    return [b, f"{d['a']} → {d['b']}",
            Cell(spct(d["estimate"]), sub=ci_text(d), tone=tone, numeric=True),
            Cell(pval(d["p_value"]), numeric=True), Cell(pval(d["p_holm"]), numeric=True),
            Cell("significant" if sig else _need_text(d.get("power")))]


def _need_text(pw: dict | None) -> str:
    """What a not-significant difference would need at 80 % power, in words."""
    if not pw or not is_num(pw.get("difference")) or pw["difference"] == 0:
        return "no difference observed"
    parts = []
    if pw.get("problems_needed"):
        parts.append(f"≈{pw['problems_needed']} problems at n = {pw['n']}")
    if pw.get("samples_per_problem_needed"):
        parts.append(f"≈{pw['samples_per_problem_needed']} samples per problem on these "
                     f"{pw['problems']} problems")
    elif pw.get("problems_needed"):
        parts.append("more samples alone would not do")
    return "; or ".join(parts) if parts else "—"


def _caption(data: dict) -> str:
    mc = data.get("multiple_comparisons") or {}
    return (f"B − A in percentage points, 95% paired-bootstrap CI over problems; p from the "
            f"bootstrap standard error (normal approximation); Holm p adjusts over the {mc.get('tests', 0)} tests this report "
            f"shows ({mc.get('family', '')}). Where the difference is not significant (Holm p "
            f"≥ {ALPHA}), the last column gives the problems or samples per problem a "
            "two-sided test would need to detect the observed difference with 80% power.")
