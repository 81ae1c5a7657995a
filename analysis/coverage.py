"""Coverage: which problems each run solves, the full 2^m partition over runs (the paper's
Table 2), gains/losses per pair with a McNemar exact test, and paired-bootstrap CIs for the
difference in avg@n and pass@k. The returned dict is exactly coverage.json."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable, Sequence

from amir_bench.errors import UserError

from amir_bench.jsonio import jsonable
from amir_bench.records import PathLike, RunSet, load_runs

from analysis.runs import align, reorder
from analysis.stats import (DEFAULT_RESAMPLES, bootstrap_means,
                            bootstrap_summary, ci_dict, combine_strata, mcnemar_exact,
                            problems_needed, samples_needed, stratum_seed,
                            wald_p_value)

if TYPE_CHECKING:
    import numpy as np

def parse_criterion(text: str) -> tuple[str, float | None]:
    """'any' | 'majority' | 'avg>=T' (0 < T <= 1) -> (kind, T)."""
    t = (text or "any").strip().lower().replace(" ", "")
    if t in ("any", "majority"):
        return t, None
    m = re.fullmatch(r"avg>=([0-9]*\.?[0-9]+)", t)
    if m:
        thr = float(m.group(1))
        if 0.0 < thr <= 1.0:
            return "avg", thr
    raise UserError(f"--criterion {text!r}: use any, majority or avg>=T with 0 < T <= 1 "
                    f"(e.g. avg>=0.5)")


def majority_solved(df, benchmark: str, problem_ids: Sequence[str]):
    """Per problem: is the majority-vote answer correct (amir_bench.metrics.majority_correct,
    the rule maj@n uses)?"""
    import numpy as np

    from amir_bench.metrics import majority_correct

    d = df[df["benchmark"] == benchmark]
    won = majority_correct(d["problem_id"].tolist(), d["extracted"].tolist(),
                           d["correct"].tolist())
    return np.array([won.get(p, False) for p in problem_ids], dtype=bool)


def _solved(kind: str, thr: float | None, c, ns):
    import numpy as np

    if kind == "any":
        return c >= 1
    n = np.asarray(ns, dtype=np.float64)[None, :]
    return (c / n) >= thr - 1e-12


def _per_problem_metrics(c, ns, ks):
    """{metric: (P, m) per-problem values}: avg@n and pass@k for each k."""
    import numpy as np

    from amir_bench.metrics import pass_at_k_array

    out = {"avg@n": c / np.asarray(ns, dtype=np.float64)[None, :]}
    for k in ks:
        out[f"pass@{k}"] = np.stack([pass_at_k_array(n, c[:, j], k) for j, n in enumerate(ns)],
                                    axis=1)
    return out


def _block(labels, ids, per: dict, solved) -> tuple[dict, "np.ndarray", list[str]]:
    """Everything coverage reports for one set of problems (a benchmark, or all pooled),
    except the bootstrap CIs. per: {metric: (P, m) per-problem values}. Returns (block,
    per-problem differences (P, pairs*metrics), metric names); the caller bootstraps the
    differences and fills each pair's "diff"."""
    import numpy as np

    m = len(labels)
    p = len(ids)
    bits = (solved.astype(np.int64) << np.arange(m - 1, -1, -1)[None, :]).sum(axis=1)  # (P,)
    cell_counts = np.bincount(bits, minlength=2 ** m)
    union = int((bits > 0).sum())
    partition = []
    for code in range(2 ** m - 1, -1, -1):  # 11..1 first, as the paper's table
        cell = format(code, f"0{m}b")
        cnt = int(cell_counts[code])
        partition.append({
            "cell": cell,
            "solved_by": [lab for lab, ch in zip(labels, cell) if ch == "1"],
            "count": cnt,
            "pct_all": 100.0 * cnt / p if p else None,
            "pct_union": (100.0 * cnt / union if union else None) if code else None,
        })

    per = dict(per)
    per["solved_rate"] = solved.astype(np.float64)
    metric_names = list(per)
    metrics = {}
    for j, lab in enumerate(labels):
        metrics[lab] = {name: float(per[name][:, j].mean()) if p else None
                        for name in metric_names}
        metrics[lab]["solved"] = int(solved[:, j].sum())

    pair_idx = [(a, b) for a in range(m) for b in range(a + 1, m)]
    cols = [per[name][:, b] - per[name][:, a] for a, b in pair_idx for name in metric_names]
    diffs = np.stack(cols, axis=1) if cols else np.zeros((p, 0))  # (P, pairs*metrics)
    ids_arr = np.asarray(ids, dtype=object)
    pairs = []
    for a, b in pair_idx:
        gains = solved[:, b] & ~solved[:, a]
        losses = solved[:, a] & ~solved[:, b]
        pairs.append({
            "a": labels[a], "b": labels[b],
            "gains": ids_arr[gains].tolist(), "losses": ids_arr[losses].tolist(),
            "n_gains": int(gains.sum()), "n_losses": int(losses.sum()),
            "both": int((solved[:, a] & solved[:, b]).sum()),
            "neither": int((~solved[:, a] & ~solved[:, b]).sum()),
            "mcnemar": mcnemar_exact(int(losses.sum()), int(gains.sum())),
            "diff": {},
        })
    block = {"problems": p, "union_solved": union, "unsolved": int(cell_counts[0]),
             "metrics": metrics, "partition": partition, "pairs": pairs}
    return block, diffs, metric_names


def _fill_diffs(block: dict, diffs, reps, names: list[str]) -> None:
    """Put the bootstrap CI of every pair x metric into the block's pairs."""
    import numpy as np

    summ = bootstrap_summary(diffs.mean(axis=0) if len(diffs) else
                             np.full(diffs.shape[1], np.nan), reps)
    pv = wald_p_value(summ["estimate"], summ["se"])
    col = 0
    for pair in block["pairs"]:
        for name in names:
            pair["diff"][name] = ci_dict(summ, col)
            pair["diff"][name]["p_value"] = None if np.isnan(pv[col]) else float(pv[col])
            col += 1


def _bernoulli_var(c, ns):
    """(P, m) unbiased per-sample variance of correctness, p(1 - p) n / (n - 1), per problem
    and run (0 where n = 1)."""
    import numpy as np

    n = np.asarray(ns, dtype=np.float64)[None, :]
    p = c / n
    return np.where(n > 1, p * (1.0 - p) * n / np.maximum(n - 1.0, 1.0), 0.0)


def _fill_power(block: dict, labels: list[str], avg, within, n: int) -> None:
    """Per pair, for the avg@n difference: the problems (at this n) and the samples per
    problem (on these problems) a two-sided test at alpha 0.05 needs for 80 % power to detect
    the observed difference (analysis.stats.problems_needed / samples_needed)."""
    import numpy as np

    index = {lab: j for j, lab in enumerate(labels)}
    p = len(avg)
    for pair in block["pairs"]:
        a, b = index[pair["a"]], index[pair["b"]]
        d = avg[:, b] - avg[:, a]
        delta = float(d.mean()) if p else float("nan")
        var_d = float(d.var(ddof=1)) if p > 1 else float("nan")
        var_w = float((within[:, a] + within[:, b]).mean()) if p else float("nan")
        pair["power"] = {
            "metric": "avg@n", "alpha": 0.05, "power": 0.8, "difference": delta,
            "sd_per_problem": float(np.sqrt(var_d)) if p > 1 else None,
            "problems_needed": problems_needed(np.sqrt(var_d), delta),
            "samples_per_problem_needed": samples_needed(var_d, var_w, n, p, delta),
            "n": n, "problems": p,
        }


def coverage(run_dirs: Iterable[PathLike] | RunSet, criterion: str = "any",
             base: PathLike | None = None, force: bool = False, seed: int = 0,
             resamples: int = DEFAULT_RESAMPLES) -> dict:
    """Compare runs problem by problem; see the module docstring. Returns coverage.json."""
    import numpy as np

    from amir_bench.metrics import ks_for

    kind, thr = parse_criterion(criterion)
    rs = reorder(load_runs(run_dirs), base)
    al = align(rs, force=force, need=2, what="coverage")
    labels = rs.labels
    ks = [k for k in ks_for(min(min(v) for v in al.ns.values()))]  # pass@k every benchmark has
    blocks = {}
    pooled: dict[str, list] = {"per": [], "solved": [], "ids": [], "reps": [], "sizes": [],
                               "within": []}
    names: list[str] = []
    for b in al.benchmarks:
        ids, c, ns = al.problem_ids[b], al.counts[b], al.ns[b]
        if kind == "majority":
            solved = np.stack([majority_solved(r.to_frame(), b, ids) for r in rs.runs], axis=1)
        else:
            solved = _solved(kind, thr, c, ns)
        per = _per_problem_metrics(c, ns, ks_for(min(ns)))
        blk, diffs, names = _block(labels, ids, per, solved)
        reps = bootstrap_means(diffs, resamples=resamples, seed=stratum_seed(seed, b))
        _fill_diffs(blk, diffs, reps, names)
        within = _bernoulli_var(c, ns)
        _fill_power(blk, labels, per["avg@n"], within, min(ns))
        blk["problem_ids"] = list(ids)
        blk["solved"] = {lab: solved[:, j].tolist() for j, lab in enumerate(labels)}
        blk["correct"] = {lab: c[:, j].tolist() for j, lab in enumerate(labels)}
        blk["kept"] = al.kept[b]
        blk["n"] = list(ns)
        blocks[b] = blk
        pooled["per"].append(per)
        pooled["within"].append(within)
        pooled["solved"].append(solved)
        pooled["ids"].extend(f"{b}/{pid}" for pid in ids)
        pooled["sizes"].append(len(ids))
        # the pooled CI combines each benchmark's replicates of the metrics all of them have
        pooled["reps"].append(_columns(reps, blk, names, ks))
    # overall: all problems pooled; CI from a bootstrap stratified by benchmark
    common = ["avg@n"] + [f"pass@{k}" for k in ks]
    per_all = {m: np.concatenate([p[m] for p in pooled["per"]]) for m in common}
    overall, diffs, names = _block(labels, pooled["ids"], per_all, np.concatenate(pooled["solved"]))
    _fill_diffs(overall, diffs, combine_strata(pooled["reps"], pooled["sizes"]), names)
    _fill_power(overall, labels, per_all["avg@n"], np.concatenate(pooled["within"]),
                min(min(v) for v in al.ns.values()))
    out = {
        "kind": "coverage",
        "runs": [r.describe() for r in rs.runs],
        "labels": labels,
        "base": labels[0] if base is not None else None,
        "criterion": criterion if kind != "avg" else f"avg>={thr:g}",
        "n": [r.n for r in rs.runs],
        "ks": ks,
        "seed": seed,
        "resamples": resamples,
        "ci": 0.95,
        "forced": force,
        "notes": al.notes,
        "benchmarks": blocks,
        "overall": overall,
    }
    return jsonable(out)


def _columns(reps, blk: dict, names: list[str], ks: list[int]):
    """The replicate columns (pairs x metrics, as _block orders them) of the pooled metrics."""
    common = ["avg@n"] + [f"pass@{k}" for k in ks] + ["solved_rate"]
    keep = [i * len(names) + names.index(m) for i in range(len(blk["pairs"])) for m in common]
    return reps[:, keep]
