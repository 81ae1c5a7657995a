"""Log-prob margin: how far a run's scorer puts correct above incorrect reasoning.

For each problem with both correct and incorrect samples, margin = mean l(correct) -
mean l(incorrect), l = length-normalized log-prob (ScoreRecord.logprob_mean); the paper's
Figure 4 reports mean margins 0.016 (AMIR-GRPO) vs 0.006 (GRPO). Also the pair-level variant
over all (correct, incorrect) pairs inside a problem, counted from one sort per run (no
O(n^2) pairs), and the AUROC of l as a correctness score. The dict returned is margin.json.
"""

from __future__ import annotations

from typing import Iterable

from amir_bench.errors import UserError

from amir_bench.jsonio import jsonable
from amir_bench.records import PathLike, RunSet, load_runs

from analysis.runs import duplicate_notes
from analysis.stats import (DEFAULT_RESAMPLES, auroc, bootstrap_means, bootstrap_summary,
                            ci_dict, combine_strata, group_pair_counts, stratum_seed)


def _joined(run):
    """Samples joined with their scores; every sample must be scored."""
    import numpy as np

    keys = ["benchmark", "problem_id", "sample_idx"]
    sc = run.scores.drop_duplicates(keys, keep="first")
    df = run.to_frame()
    if len(sc) == len(df) and all(np.array_equal(sc[k].to_numpy(), df[k].to_numpy())
                                  for k in keys):
        # `amir-bench score` writes in sample order: then the join is by position
        j = df[keys + ["correct"]].assign(logprob_mean=sc["logprob_mean"].to_numpy(),
                                          scorer=sc["scorer"].to_numpy())
    else:
        j = _merge_scores(run, df, sc, keys)
    bad = ~np.isfinite(j["logprob_mean"].to_numpy(dtype=np.float64))
    if bad.any():
        raise UserError(f"{run.path}: scores.jsonl has {int(bad.sum())} non-finite logprob_mean "
                        f"value(s); re-score with `amir-bench score {run.path}`")
    return j


def _merge_scores(run, df, sc, keys: list[str]):
    """Samples left-joined with scores on the keys; a missing or an extra score is an error."""
    j = df[keys + ["correct"]].merge(sc[keys + ["logprob_mean", "scorer"]], on=keys,
                                     how="left", indicator=True)
    missing = int((j["_merge"] == "left_only").sum())
    if missing:
        raise UserError(f"{run.path}: scores.jsonl covers {len(j) - missing} of {len(j)} "
                        f"samples; finish it with `amir-bench score {run.path}` (it resumes)")
    extra = len(sc) - (len(j) - missing)
    if extra > 0:
        raise UserError(f"{run.path}: scores.jsonl has {extra} record(s) that match no sample "
                        f"(scored another run?); re-run `amir-bench score {run.path}`")
    return j.drop(columns="_merge")


def _stats(codes, ell, ok, pid_of_code, *, seed, resamples: int,
           strata_reps: list | None = None, with_ids: bool = True) -> dict:
    """Margin statistics over samples given as arrays: problem code (N,), l (N,), correct
    (N,); pid_of_code maps a code to its problem id. strata_reps: the benchmarks'
    (bootstrap replicates, problems) for the pooled CI stratified by benchmark. The "_reps"
    key is for the caller to pop."""
    import numpy as np

    uniq, local = np.unique(codes, return_inverse=True)  # codes are in file order
    n_groups = len(uniq)
    n_c = np.bincount(local, weights=ok.astype(float), minlength=n_groups)
    n_all = np.bincount(local, minlength=n_groups).astype(float)
    n_i = n_all - n_c
    s_c = np.bincount(local, weights=np.where(ok, ell, 0.0), minlength=n_groups)
    s_i = np.bincount(local, weights=np.where(ok, 0.0, ell), minlength=n_groups)
    mixed = (n_c > 0) & (n_i > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        margins = (s_c / n_c - s_i / n_i)[mixed]  # (P_mixed,)

    out: dict = {
        "samples": int(len(ell)),
        "problems": n_groups,
        "problems_mixed": int(mixed.sum()),
        "problems_all_correct": int(((n_i == 0) & (n_c > 0)).sum()),
        "problems_all_incorrect": int(((n_c == 0) & (n_i > 0)).sum()),
        "mean_logprob_correct": float(ell[ok].mean()) if ok.any() else None,
        "mean_logprob_incorrect": float(ell[~ok].mean()) if (~ok).any() else None,
        "auroc": auroc(ell, ok),
    }
    reps = None
    if len(margins):
        if strata_reps is not None:  # overall: combine the benchmarks' replicates
            reps = combine_strata([x for x, _ in strata_reps], [k for _, k in strata_reps])
        else:
            reps = bootstrap_means(margins, resamples=resamples, seed=seed)
        summ = bootstrap_summary(np.array([margins.mean()]), reps)
        out.update({
            "mean_margin": float(margins.mean()),
            "median_margin": float(np.median(margins)),
            "mean_margin_ci": ci_dict(summ, 0),
            "frac_positive": float((margins > 0).mean()),
        })
    else:
        out.update({"mean_margin": None, "median_margin": None, "mean_margin_ci": None,
                    "frac_positive": None})
    out["_reps"] = (reps, len(margins))

    pc = group_pair_counts(local, ell, ok)
    pairs = int(pc["pairs"].sum())
    if pairs:
        w = (n_c * n_i)[mixed]
        out["pairs"] = {
            "count": pairs,
            "mean_margin": float((w * margins).sum() / w.sum()),
            "frac_positive": float(pc["greater"].sum() / pairs),
            "frac_ties": float(pc["ties"].sum() / pairs),
            "auroc_within_problem": float((pc["greater"].sum() + 0.5 * pc["ties"].sum())
                                          / pairs),
        }
    else:
        out["pairs"] = {"count": 0, "mean_margin": None, "frac_positive": None,
                        "frac_ties": None, "auroc_within_problem": None}
    if with_ids:
        pid = pid_of_code[uniq][mixed]
        out["per_problem"] = {"problem_id": pid.tolist(), "margin": margins.tolist()}
    return out


def margin(run_dirs: Iterable[PathLike] | RunSet, seed: int = 0,
           resamples: int = DEFAULT_RESAMPLES) -> dict:
    """Margin statistics per run x benchmark and per run overall. Needs scores.jsonl."""
    import numpy as np

    rs = load_runs(run_dirs, scores=True)
    per_run = {}
    notes = []
    for r in rs.runs:
        j = _joined(r)
        codes = j.groupby(["benchmark", "problem_id"], sort=False).ngroup().to_numpy()
        pid_of_code = j["problem_id"].to_numpy(dtype=object)[
            np.unique(codes, return_index=True)[1]]
        bench = j["benchmark"].to_numpy(dtype=object)
        ell = j["logprob_mean"].to_numpy(dtype=np.float64)
        ok = j["correct"].to_numpy(dtype=bool)
        blocks, strata = {}, []
        for b in sorted(set(bench)):
            sel = bench == b
            blocks[b] = _stats(codes[sel], ell[sel], ok[sel], pid_of_code,
                               seed=stratum_seed(seed, b), resamples=resamples)
            reps, k = blocks[b].pop("_reps")
            if k:
                strata.append((reps, k))
        overall = _stats(codes, ell, ok, pid_of_code, seed=seed, resamples=resamples,
                         strata_reps=strata, with_ids=False)
        overall.pop("_reps")
        scorers = sorted(set(r.scores["scorer"].unique()) - {""})
        per_run[r.label] = {"scorers": scorers, "benchmarks": blocks, "overall": overall}
        if len(scorers) > 1:
            notes.append(f"{r.label}: scores come from {len(scorers)} scorers; "
                         f"margins mix them")
    notes.extend(duplicate_notes(rs))
    return jsonable({
        "kind": "margin",
        "runs": [r.describe() for r in rs.runs],
        "labels": rs.labels,
        "measure": "logprob_mean (length-normalized teacher-forced log-prob)",
        "seed": seed,
        "resamples": resamples,
        "ci": 0.95,
        "notes": notes,
        "per_run": per_run,
    })
