"""Per-benchmark metrics over SampleRecords: avg@n, pass@k, maj@n, rates, token means."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Mapping, Sequence

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
    recs = list(records)
    maj = majority_correct([r.problem_id for r in recs], [r.extracted for r in recs],
                           [r.correct for r in recs])
    out[f"maj@{n_eff}"] = sum(maj.values()) / len(by_pid)
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


def majority_correct(problem_ids: Sequence[str], extracted: Sequence[str | None],
                     correct: Sequence[bool]) -> dict[str, bool]:
    """Per problem: is the majority-vote answer correct? Answers pool when equal after strip,
    or when both were graded correct (the grader already judged them equivalent to the gold);
    ties go to the answer seen first; samples without an answer do not vote (a problem
    without any answer is absent)."""
    votes: dict[tuple[str, object], list[int]] = {}  # (problem, answer key) -> [count, first]
    for pos, (pid, ans, ok) in enumerate(zip(problem_ids, extracted, correct)):
        if ans is None or ans != ans:  # None, or NaN from a pandas column
            continue
        key = (pid, True if ok else str(ans).strip())  # every correct answer shares one key
        v = votes.get(key)
        if v is None:
            votes[key] = [1, pos]
        else:
            v[0] += 1
    best: dict[str, tuple[int, int, bool]] = {}
    for (pid, key), (count, first) in votes.items():
        b = best.get(pid)
        if b is None or count > b[0] or (count == b[0] and first < b[1]):
            best[pid] = (count, first, key is True)
    return {pid: b[2] for pid, b in best.items()}


def summarize(records: Iterable[SampleRecord],
              n: int | Mapping[str, int] | None = None) -> dict[str, dict]:
    """{benchmark: metrics} over all records of a run; n is one for all benchmarks or
    {benchmark: n} (Run.ns); a benchmark without one uses the most samples of a problem."""
    by_bench: dict[str, list[SampleRecord]] = defaultdict(list)
    for r in records:
        by_bench[r.benchmark].append(r)
    return {b: summarize_benchmark(v, n.get(b) if isinstance(n, Mapping) else n)
            for b, v in sorted(by_bench.items())}
