"""Per-benchmark metrics over SampleRecords: avg@n, pass@k, maj@n, rates, token means."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Sequence

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


def summarize_benchmark(records: Sequence[SampleRecord], n: int | None = None) -> dict:
    """Metrics for one benchmark. maj@n counts a problem correct when the majority answer's
    cluster contains a correct sample (equivalence = same normalized answer, or both graded
    correct, which pools answers the grader found equivalent to the gold)."""
    by_pid: dict[str, list[SampleRecord]] = defaultdict(list)
    for r in records:
        by_pid[r.problem_id].append(r)
    if not by_pid:
        return {"problems": 0, "samples": 0}
    counts = np.array([len(v) for v in by_pid.values()])
    correct = np.array([sum(r.correct for r in v) for v in by_pid.values()])
    n_eff = int(n or counts.max())
    acc = correct / counts
    out: dict = {
        "problems": int(len(by_pid)),
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
    maj_hits = 0
    for v in by_pid.values():
        winner = _majority_record(v)
        maj_hits += bool(winner is not None and winner.correct)
    out[f"maj@{n_eff}"] = maj_hits / len(by_pid)
    recs = list(records)
    out["no_answer_rate"] = float(np.mean([r.grade_status == "no_answer" for r in recs]))
    out["timeout_rate"] = float(np.mean([r.grade_status == "timeout" for r in recs]))
    out["truncation_rate"] = float(np.mean([r.finish_reason == "length" for r in recs]))
    out["error_rate"] = float(np.mean([r.finish_reason == "error" for r in recs]))
    tok = np.array([r.num_tokens for r in recs], dtype=float)
    ok = np.array([r.correct for r in recs], dtype=bool)
    out["mean_tokens"] = float(tok.mean())
    out["mean_tokens_correct"] = float(tok[ok].mean()) if ok.any() else None
    out["mean_tokens_incorrect"] = float(tok[~ok].mean()) if (~ok).any() else None
    out.update(verdicts_by_mode(recs))
    return out


def verdicts_by_mode(records: Sequence[SampleRecord]) -> dict[str, int]:
    """{"extract_mode/MODE": verdicts}: how each verdict's answer was found ("none": nothing
    extracted, or a record written before extract_mode existed). Flat numbers, like every
    other summary value."""
    counts: dict[str, int] = {}
    for r in records:
        key = f"extract_mode/{r.extract_mode or 'none'}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _majority_record(samples: Sequence[SampleRecord]) -> SampleRecord | None:
    """The representative sample of the largest answer cluster.

    Answers are pooled when they are the same string, or when both were graded correct
    against the same gold (the grader already judged them equivalent)."""
    clusters: list[list[SampleRecord]] = []
    for r in samples:
        if r.extracted is None:
            continue
        for cl in clusters:
            head = cl[0]
            if r.extracted.strip() == head.extracted.strip() or (r.correct and head.correct):
                cl.append(r)
                break
        else:
            clusters.append([r])
    if not clusters:
        return None
    best = max(range(len(clusters)), key=lambda i: (len(clusters[i]), -i))
    return clusters[best][0]


def summarize(records: Iterable[SampleRecord], n: int | None = None) -> dict[str, dict]:
    """{benchmark: metrics} over all records of a run."""
    by_bench: dict[str, list[SampleRecord]] = defaultdict(list)
    for r in records:
        by_bench[r.benchmark].append(r)
    return {b: summarize_benchmark(v, n) for b, v in sorted(by_bench.items())}
