"""Per-benchmark metrics over SampleRecords: avg@n, pass@k, maj@n, rates, token means."""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np

from amir_bench.records import SampleRecord


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"k={k} > n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_array(n: int, c: np.ndarray, k: int) -> np.ndarray:
    """Vectorized pass@k for per-problem correct counts c (all with the same n).

    A table over c = 0..n is built once and indexed; pass@1 is exactly c / n."""
    c = np.asarray(c, dtype=np.int64)
    if k == 1:
        return c / n
    table = np.array([pass_at_k(n, x, k) for x in range(n + 1)])
    return table[c]


def ks_for(n: int) -> list[int]:
    """k = 1, 2, 4, ... <= n (and n itself)."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    if n >= 1 and ks[-1] != n:
        ks.append(n)
    return ks


def summarize_frame(df, n: int | Mapping[str, int] | None = None) -> dict[str, dict]:
    """{benchmark: metrics} of a run's per-sample frame (records.SAMPLE_COLUMNS); n is one for
    all benchmarks or {benchmark: n} (Run.ns); without one, the most samples of a problem."""
    return {str(b): summarize_benchmark(g, n.get(b) if isinstance(n, Mapping) else n)
            for b, g in df.groupby("benchmark", sort=True)}


def summarize_benchmark(d, n: int | None = None) -> dict:
    """Metrics for one benchmark's samples (a frame of records.SAMPLE_COLUMNS, or
    SampleRecords). maj@n counts a problem correct when its majority answer is correct
    (majority_correct); extract_mode/<mode> counts the verdicts by extractor."""
    d = _as_frame(d)
    g = d.groupby("problem_id", sort=False)["correct"].agg(["size", "sum"])
    if len(g) == 0:
        return {"problems": 0, "samples": 0}
    counts = g["size"].to_numpy()
    correct = g["sum"].to_numpy().astype(np.int64)
    n_eff = int(n or counts.max())
    acc = correct / counts
    out: dict = {
        "problems": int(len(g)),
        "samples": int(counts.sum()),
        "n": n_eff,
        "avg@n": float(acc.mean()),
        "avg@n_se": float(acc.std(ddof=1) / math.sqrt(len(acc))) if len(acc) > 1 else 0.0,
    }
    complete = counts == n_eff
    for k in ks_for(n_eff):
        if complete.all():
            out[f"pass@{k}"] = float(pass_at_k_array(n_eff, correct, k).mean())
        else:  # uneven sample counts (partial run): per-problem n
            out[f"pass@{k}"] = float(np.mean([pass_at_k(int(m), int(c), min(k, int(m)))
                                              for m, c in zip(counts, correct)]))
    maj = majority_correct(d["problem_id"], d["extracted"], d["correct"])
    out[f"maj@{n_eff}"] = sum(maj.values()) / len(g)
    ok = d["correct"].to_numpy(dtype=bool)
    tok = d["num_tokens"].to_numpy(dtype=float)
    out["no_answer_rate"] = float((d["grade_status"] == "no_answer").mean())
    out["timeout_rate"] = float((d["grade_status"] == "timeout").mean())
    out["truncation_rate"] = float((d["finish_reason"] == "length").mean())
    out["error_rate"] = float((d["finish_reason"] == "error").mean())
    out["mean_tokens"] = float(tok.mean())
    out["mean_tokens_correct"] = float(tok[ok].mean()) if ok.any() else None
    out["mean_tokens_incorrect"] = float(tok[~ok].mean()) if (~ok).any() else None
    out.update(verdicts_by_mode(d))
    return out


def verdicts_by_mode(samples) -> dict[str, int]:
    """{"extract_mode/MODE": verdicts}: how each verdict's answer was found ("none": nothing
    extracted, or a record written before extract_mode existed). Flat numbers, like every
    other summary value. samples: a frame or SampleRecords."""
    d = _as_frame(samples)
    modes = d["extract_mode"].astype(object).where(d["extract_mode"].notna(), "none")
    return {f"extract_mode/{m}": int(c) for m, c in sorted(modes.value_counts().items())}


def _as_frame(samples):
    """A frame of records.SAMPLE_COLUMNS from SampleRecords; a frame as it is."""
    if hasattr(samples, "columns"):
        return samples
    from amir_bench.records import records_frame

    return records_frame(list(samples))


def majority_correct(problem_ids, extracted, correct) -> dict[str, bool]:
    """Per problem: is the majority-vote answer correct? Answers pool when equal after strip,
    or when both were graded correct (the grader already judged them equivalent to the gold);
    ties go to the answer seen first; samples without an answer do not vote (a problem
    without any answer is absent). Columns as sequences or pandas Series."""
    import pandas as pd

    d = pd.DataFrame({"pid": np.asarray(problem_ids, dtype=object),
                      "ans": np.asarray(extracted, dtype=object),
                      "ok": np.asarray(correct, dtype=bool)})
    d["pos"] = np.arange(len(d))
    d = d[d["ans"].notna()]
    if len(d) == 0:
        return {}
    key = d["ans"].astype(str).str.strip().where(~d["ok"].to_numpy(), _CORRECT)
    g = (d.assign(key=key).groupby(["pid", "key"], sort=False)["pos"].agg(["size", "min"])
         .reset_index().sort_values(["pid", "size", "min"], ascending=[True, False, True])
         .drop_duplicates("pid", keep="first"))
    return dict(zip(g["pid"].tolist(), (g["key"] == _CORRECT).tolist()))


_CORRECT = "\x00correct"  # the answer key every correct sample shares


def summarize(records: Iterable[SampleRecord],
              n: int | Mapping[str, int] | None = None) -> dict[str, dict]:
    """{benchmark: metrics} over SampleRecords (see summarize_frame)."""
    return summarize_frame(_as_frame(records), n)
