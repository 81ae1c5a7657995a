"""Length and tokens: accuracy against mean tokens per run (the Pareto front: no other run is
at least as accurate with at most as many tokens, and better in one), accuracy at matched
length (bins of completion length shared by all runs, so runs are compared on samples of the
same length), and reasoning vs answer tokens where completions have a reasoning part.

Inputs are aligned SampleMatrix lists per benchmark (analysis.matrices).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from analysis.matrices import SampleMatrix

LENGTH_BINS = 5


def pareto_front(tokens: Sequence[float], accuracy: Sequence[float]) -> list[bool]:
    """Per point: True when no other point has tokens <= and accuracy >= with one strict."""
    t = np.asarray(tokens, dtype=float)
    a = np.asarray(accuracy, dtype=float)
    out = []
    for i in range(len(t)):
        dominated = (t <= t[i]) & (a >= a[i]) & ((t < t[i]) | (a > a[i]))
        out.append(not bool(dominated.any()))
    return out


def length_edges(values: Sequence[np.ndarray], bins: int = LENGTH_BINS) -> np.ndarray:
    """Bin edges at the quantiles of all runs' lengths pooled (ties merge bins)."""
    pooled = np.concatenate([np.asarray(v, dtype=float).ravel() for v in values])
    return np.unique(np.quantile(pooled, np.linspace(0.0, 1.0, bins + 1)))


def matched_length(mats: Sequence[SampleMatrix], labels: Sequence[str],
                   bins: int = LENGTH_BINS) -> list[dict]:
    """Per shared length bin (right-closed, the shortest sample in the first): each run's
    sample count and accuracy."""
    edges = length_edges([m.tokens for m in mats], bins)
    inner = edges[1:-1]
    k = max(1, len(edges) - 1)
    rows = [{"bin": i + 1, "lo": float(edges[i]), "hi": float(edges[min(i + 1, len(edges) - 1)]),
             "runs": {}} for i in range(k)]
    for lab, m in zip(labels, mats):
        tok = m.tokens.ravel().astype(float)
        code = np.searchsorted(inner, tok, side="left")
        cnt = np.bincount(code, minlength=k)
        hit = np.bincount(code, weights=m.correct.ravel().astype(float), minlength=k)
        for i in range(k):
            rows[i]["runs"][lab] = {"samples": int(cnt[i]),
                                    "accuracy": float(hit[i] / cnt[i]) if cnt[i] else None}
    return rows


def reasoning_split(m: SampleMatrix) -> dict | None:
    """Mean reasoning and answer tokens of the samples that have a reasoning part, for correct
    and incorrect samples; None when no sample has one."""
    if m.reasoning_tokens is None:
        return None
    rt = m.reasoning_tokens.ravel()
    has = ~np.isnan(rt)
    if not has.any():
        return None
    tok = m.tokens.ravel().astype(float)
    ok = m.correct.ravel()

    def part(sel: np.ndarray) -> dict:
        s = sel & has
        if not s.any():
            return {"samples": 0, "reasoning_tokens": None, "answer_tokens": None}
        return {"samples": int(s.sum()), "reasoning_tokens": float(rt[s].mean()),
                "answer_tokens": float((tok[s] - rt[s]).mean())}

    return {"samples_with_reasoning": int(has.sum()), "samples": int(len(rt)),
            "all": part(np.ones_like(ok)), "correct": part(ok), "incorrect": part(~ok)}


def _scope(mats: Sequence[SampleMatrix], labels: Sequence[str], bins: int) -> dict:
    acc = [float(m.correct.mean()) for m in mats]
    tok = [float(m.tokens.mean()) for m in mats]
    front = pareto_front(tok, acc)
    return {"problems": int(len(mats[0].problem_ids)),
            "runs": {lab: {"accuracy": a, "mean_tokens": t, "pareto": f,
                           "truncation_rate": None if m.truncated is None
                           else float(m.truncated.mean()),
                           "reasoning": reasoning_split(m)}
                     for lab, m, a, t, f in zip(labels, mats, acc, tok, front)},
            "matched_length": matched_length(mats, labels, bins)}


def tokens(aligned: dict[str, Sequence[SampleMatrix]], labels: Sequence[str], *,
           bins: int = LENGTH_BINS, notes: Sequence[str] = ()) -> dict:
    """Accuracy vs tokens per benchmark (and all benchmarks pooled when there are several)."""
    benches = {b: _scope(mats, labels, bins) for b, mats in aligned.items()}
    overall = None
    if len(aligned) > 1:
        pooled = [_concat([mats[j] for mats in aligned.values()]) for j in range(len(labels))]
        overall = _scope(pooled, labels, bins)
    return {"kind": "tokens", "labels": list(labels), "bins": bins, "notes": list(notes),
            "benchmarks": benches, "overall": overall}


def _concat(mats: Sequence[SampleMatrix]) -> SampleMatrix:
    """One run's matrices of several benchmarks stacked (the first n samples each)."""
    n = min(m.n for m in mats)

    def cat(attr: str) -> Any:
        parts = [getattr(m, attr) for m in mats]
        return None if any(p is None for p in parts) else np.concatenate([p[:, :n] for p in parts])

    return SampleMatrix("all", [f"{m.benchmark}/{p}" for m in mats for p in m.problem_ids],
                        cat("correct"), cat("answers"), cat("tokens"), cat("reasoning_tokens"),
                        cat("truncated"))


def tokens_of_runs(runs: Sequence[Any], labels: Sequence[str], **kw: Any) -> dict:
    """tokens() of loaded runs (amir_bench.records.Run objects)."""
    from analysis.matrices import run_matrices

    aligned, notes = run_matrices(runs)
    return tokens(aligned, labels, notes=notes, **kw)
