"""Length bias: token lengths of correct vs incorrect samples per run and benchmark, truncation,
accuracy by length quintile, point-biserial r, and between runs the per-problem paired
difference of mean length with a bootstrap CI. The returned dict is exactly length.json."""

from __future__ import annotations

from typing import Iterable

from amir_bench.jsonio import jsonable
from amir_bench.records import PathLike, RunSet, load_runs

from analysis.runs import duplicate_notes
from analysis.stats import (DEFAULT_RESAMPLES, bootstrap_means, bootstrap_summary, ci_dict,
                            combine_strata, describe, point_biserial, quintiles, stratum_seed)

HIST_BINS = 30


def _stats(tok, ok, trunc, edges) -> dict:
    """Length statistics of one set of samples."""
    import numpy as np

    corr = describe(tok[ok])
    inc = describe(tok[~ok])
    ratio = (inc["mean"] / corr["mean"]) if (corr["mean"] and inc["mean"] is not None) else None
    qs = quintiles(tok, ok)
    for q in qs:
        q["accuracy"] = q.pop("mean")
    hist = None
    if edges is not None:
        hist = {"edges": edges.tolist(),
                "correct": np.histogram(tok[ok], bins=edges)[0].tolist(),
                "incorrect": np.histogram(tok[~ok], bins=edges)[0].tolist()}
    return {
        "samples": int(len(tok)),
        "accuracy": float(ok.mean()) if len(ok) else None,
        "mean_tokens": float(tok.mean()) if len(tok) else None,
        "correct": corr,
        "incorrect": inc,
        "ratio_incorrect_correct": ratio,
        "truncation_rate": float(trunc.mean()) if len(trunc) else None,
        "truncation_rate_correct": float(trunc[ok].mean()) if ok.any() else None,
        "truncation_rate_incorrect": float(trunc[~ok].mean()) if (~ok).any() else None,
        "quintiles": qs,
        "point_biserial": point_biserial(tok, ok),
        "histogram": hist,
    }


def _within_problem(codes, tok, ok) -> dict:
    """Length gap inside problems that have both correct and incorrect samples (controls for
    difficulty, which the pooled numbers mix in). codes: problem code per sample."""
    import numpy as np

    k = int(codes.max()) + 1 if len(codes) else 0
    n_c = np.bincount(codes, weights=ok.astype(np.float64), minlength=k)
    n_i = np.bincount(codes, minlength=k) - n_c
    s_c = np.bincount(codes, weights=np.where(ok, tok, 0.0), minlength=k)
    s_i = np.bincount(codes, weights=np.where(ok, 0.0, tok), minlength=k)
    mixed = (n_c > 0) & (n_i > 0)
    if not mixed.any():
        return {"problems": 0, "mean_diff_incorrect_minus_correct": None,
                "mean_ratio_incorrect_correct": None}
    cor = s_c[mixed] / n_c[mixed]
    inc = s_i[mixed] / n_i[mixed]
    pos = cor > 0
    return {"problems": int(mixed.sum()),
            "mean_diff_incorrect_minus_correct": float((inc - cor).mean()),
            "mean_ratio_incorrect_correct": float((inc[pos] / cor[pos]).mean()) if pos.any()
            else None}


def _diff_block(va, vb, summ, i) -> dict:
    import numpy as np

    d = vb - va
    return {"problems": int(len(d)), "mean_a": float(va.mean()), "mean_b": float(vb.mean()),
            "median_diff": float(np.median(d)), "diff": ci_dict(summ, i)}


def _paired_lengths(rs: RunSet, benches, notes, *, seed: int, resamples: int) -> list[dict]:
    """Per pair of runs and benchmark: per-problem mean length b - a on the problems both
    have, with a bootstrap CI; overall pooled, its CI stratified by benchmark. Pairs that
    share a problem set share one resample matrix (one column per pair)."""
    import numpy as np

    runs = rs.runs
    m = len(runs)
    idx_pairs = [(a, b) for a in range(m) for b in range(a + 1, m)]
    per_bench_means = []
    for r in runs:
        mm = r.to_frame().groupby(["benchmark", "problem_id"], sort=False)["num_tokens"].mean()
        per_bench_means.append({b: g.droplevel("benchmark")
                                for b, g in mm.groupby(level="benchmark", sort=False)})
    out = {pair: {"benchmarks": {}, "parts": []} for pair in idx_pairs}
    for bench in benches:
        buckets: dict[tuple, list] = {}
        for a, b in idx_pairs:
            sa, sb = runs[a].bench_sha(bench), runs[b].bench_sha(bench)
            if sa and sb and sa != sb:
                notes.append(f"{runs[a].label} vs {runs[b].label}: {bench} skipped "
                             f"(different rows: manifest sha256 differs)")
                continue
            ma, mb = per_bench_means[a].get(bench), per_bench_means[b].get(bench)
            if ma is None or mb is None:
                continue
            shared = ma.index.intersection(mb.index, sort=False)
            if len(shared) == 0:
                continue
            buckets.setdefault(tuple(shared), []).append((a, b))
        for key, members in buckets.items():
            shared = list(key)
            vals = [(per_bench_means[a][bench].reindex(shared).to_numpy(float),
                     per_bench_means[b][bench].reindex(shared).to_numpy(float))
                    for a, b in members]
            d = np.stack([vb - va for va, vb in vals], axis=1)  # (P, pairs)
            reps = bootstrap_means(d, resamples=resamples, seed=stratum_seed(seed, bench))
            summ = bootstrap_summary(d.mean(axis=0), reps)
            for i, ((a, b), (va, vb)) in enumerate(zip(members, vals)):
                out[(a, b)]["benchmarks"][bench] = _diff_block(va, vb, summ, i)
                out[(a, b)]["parts"].append((va, vb, reps[:, i]))
    pairs = []
    for a, b in idx_pairs:
        parts = out[(a, b)]["parts"]
        overall = None
        if parts:
            va = np.concatenate([p[0] for p in parts])
            vb = np.concatenate([p[1] for p in parts])
            reps = combine_strata([p[2][:, None] for p in parts], [len(p[0]) for p in parts])
            overall = _diff_block(va, vb, bootstrap_summary((vb - va).mean(keepdims=True), reps),
                                  0)
        pairs.append({"a": runs[a].label, "b": runs[b].label,
                      "benchmarks": out[(a, b)]["benchmarks"], "overall": overall})
    return pairs


def length_bias(run_dirs: Iterable[PathLike] | RunSet, seed: int = 0,
                resamples: int = DEFAULT_RESAMPLES) -> dict:
    """Length statistics per run x benchmark and paired length differences between runs."""
    import numpy as np

    rs = load_runs(run_dirs)
    labels = rs.labels
    notes: list[str] = []
    benches = sorted(set().union(*[r.benchmarks for r in rs.runs]))
    # shared histogram edges per benchmark so runs overlay in plots
    edges = {}
    for b in benches + ["__all__"]:
        frames = [r.to_frame() for r in rs.runs]
        vals = [f["num_tokens"].to_numpy() if b == "__all__" else
                f.loc[f["benchmark"] == b, "num_tokens"].to_numpy() for f in frames]
        allv = np.concatenate(vals) if vals else np.array([])
        if len(allv):
            lo, hi = float(allv.min()), float(allv.max())
            edges[b] = np.linspace(lo, hi if hi > lo else lo + 1.0, HIST_BINS + 1)
        else:
            edges[b] = None

    per_run = {}
    for r in rs.runs:
        df = r.to_frame()
        tok_all = df["num_tokens"].to_numpy(dtype=np.float64)
        ok_all = df["correct"].to_numpy(dtype=bool)
        tr_all = (df["finish_reason"] == "length").to_numpy()
        bcodes = df["benchmark"].to_numpy()
        pcodes = df.groupby(["benchmark", "problem_id"], sort=False).ngroup().to_numpy()
        blocks = {}
        for b in benches:
            sel = bcodes == b
            if not sel.any():
                continue
            blocks[b] = _stats(tok_all[sel], ok_all[sel], tr_all[sel], edges[b])
            blocks[b]["within_problem"] = _within_problem(pcodes[sel], tok_all[sel], ok_all[sel])
        overall = _stats(tok_all, ok_all, tr_all, edges["__all__"])
        overall["within_problem"] = _within_problem(pcodes, tok_all, ok_all)
        per_run[r.label] = {"benchmarks": blocks, "overall": overall}

    pairs = _paired_lengths(rs, benches, notes, seed=seed, resamples=resamples)
    if len(rs.runs) > 1 and not any(p["benchmarks"] for p in pairs):
        pairs = []  # nothing shared: per-run statistics only, and say so
        notes.append("the runs have no benchmark problems in common: paired length "
                     "differences are not computed (per-run statistics only)")
    notes.extend(duplicate_notes(rs))
    return jsonable({
        "kind": "length",
        "runs": [r.describe() for r in rs.runs],
        "labels": labels,
        "seed": seed,
        "resamples": resamples,
        "ci": 0.95,
        "notes": notes,
        "per_run": per_run,
        "pairs": pairs,
    })
