"""Plain inputs of the "where" analyses (curves, strata, replicate seeds, tokens).

Per benchmark, one SampleMatrix: (problems x samples) arrays of correctness, answer clusters
and token counts, built from a per-sample frame (columns benchmark, problem_id, sample_idx,
correct, num_tokens, extracted [, reasoning_tokens]) whatever reader produced it. The analyses
never see records or files, so they do not depend on how runs are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

NO_ANSWER = -1
THINK_CLOSE = "</think>"


@dataclass
class SampleMatrix:
    """One run's samples of one benchmark, problems x samples in sample_idx order."""

    benchmark: str
    problem_ids: list[str]
    correct: np.ndarray  # (P, n) bool
    answers: np.ndarray  # (P, n) int: cluster code (first sample index of the cluster), -1 none
    tokens: np.ndarray  # (P, n) int64
    reasoning_tokens: np.ndarray | None = None  # (P, n) float, NaN where no reasoning part
    truncated: np.ndarray | None = None  # (P, n) bool: finish_reason == "length"

    @property
    def n(self) -> int:
        return int(self.correct.shape[1])

    @property
    def counts(self) -> np.ndarray:
        """Correct samples per problem (P,)."""
        return self.correct.sum(axis=1)

    def take(self, ids: Sequence[str]) -> "SampleMatrix":
        """The rows of the given problem ids, in that order."""
        pos = {p: i for i, p in enumerate(self.problem_ids)}
        idx = np.asarray([pos[p] for p in ids], dtype=np.intp)
        opt = (lambda a: None if a is None else a[idx])
        return SampleMatrix(self.benchmark, list(ids), self.correct[idx], self.answers[idx],
                            self.tokens[idx], opt(self.reasoning_tokens), opt(self.truncated))


def cluster_codes(keys: np.ndarray) -> np.ndarray:
    """Per row, each entry's cluster code = the column of the first entry with an equal key;
    -1 where the key is -1 (no answer). keys: (P, n) int, equal ints = same answer."""
    keys = np.asarray(keys)
    eq = keys[:, :, None] == keys[:, None, :]  # (P, n, n): [p, j, i] key j == key i
    first = eq.argmax(axis=2)  # (P, n) first i equal to j
    return np.where(keys == NO_ANSWER, NO_ANSWER, first)


def answer_keys(pcode: np.ndarray, extracted: Sequence[Any], correct: np.ndarray) -> np.ndarray:
    """Integer answer keys per sample: -1 no answer; one key per problem for the samples graded
    correct and for any answer string a correct sample of the same problem gave (the grader
    judged them equivalent, as maj@n in amir_bench.metrics pools them); else one key per
    distinct stripped string."""
    import pandas as pd

    s = pd.Series(list(extracted), dtype=object)
    none = s.isna().to_numpy()
    text = s.where(~none, "").astype(str).str.strip()
    codes, _ = pd.factorize(text)
    keys = codes.astype(np.int64) + 1  # 1.. ; 0 reserved for "correct"
    ok = np.asarray(correct, dtype=bool)
    if ok.any():
        pairs = pd.MultiIndex.from_arrays([pcode[ok], keys[ok]])
        hit = pd.MultiIndex.from_arrays([pcode, keys]).isin(pairs)
        keys = np.where(hit & ~none, 0, keys)
    keys = np.where(ok, 0, keys)
    return np.where(none, NO_ANSWER, keys)  # skipped by the vote, as in maj@n


def matrices_from_frame(df, n: int | Mapping[str, int] | None = None
                        ) -> tuple[dict[str, SampleMatrix], list[str]]:
    """{benchmark: SampleMatrix} of the problems with exactly n samples, in first-seen problem
    order; n is one for all benchmarks, {benchmark: n} (a run may hold avg@32 AIME next to
    avg@4 MATH-500), or None (per benchmark, the most samples seen for a problem); notes say
    what was left out."""
    notes: list[str] = []
    out: dict[str, SampleMatrix] = {}
    if len(df) == 0:
        return out, notes
    for b, sub in df.groupby("benchmark", sort=False):
        nb = n.get(str(b)) if isinstance(n, Mapping) else n
        m, note = _benchmark_matrix(str(b), sub, nb)
        notes += note
        if m is not None:
            out[str(b)] = m
    return out, notes


def _benchmark_matrix(b: str, df, n: int | None) -> tuple[SampleMatrix | None, list[str]]:
    """One benchmark's SampleMatrix from its rows of the per-sample frame."""
    pcode = df.groupby("problem_id", sort=False).ngroup().to_numpy()
    sizes = np.bincount(pcode)
    n = int(n or sizes.max())
    keep_rows = sizes[pcode] == n
    keys = answer_keys(pcode, df["extracted"].to_numpy(), df["correct"].to_numpy(dtype=bool))
    order = np.lexsort((df["sample_idx"].to_numpy(), pcode))
    order = order[keep_rows[order]]
    pids = df["problem_id"].to_numpy()[order][::n]
    shape = (-1, n)
    correct = df["correct"].to_numpy(dtype=bool)[order].reshape(shape)
    tokens = df["num_tokens"].to_numpy(dtype=np.int64)[order].reshape(shape)
    rt = df["reasoning_tokens"].to_numpy(dtype=float)[order].reshape(shape) \
        if "reasoning_tokens" in df.columns else None
    tr = (df["finish_reason"].to_numpy() == "length")[order].reshape(shape) \
        if "finish_reason" in df.columns else None
    total = len(sizes)
    notes = [f"{b}: {total - len(pids)} of {total} problem(s) without exactly n={n} samples "
             f"left out"] if len(pids) < total else []
    if not len(pids):
        return None, notes
    return SampleMatrix(b, [str(p) for p in pids], correct, cluster_codes(keys[order]
                        .reshape(shape)), tokens, rt, tr), notes


def align_matrices(per_run: Sequence[dict[str, SampleMatrix]]) -> tuple[dict[str, list[SampleMatrix]], list[str]]:
    """Per benchmark every run has, the runs' matrices restricted to the problems all of them
    have (first run's order); notes name benchmarks or problems left out."""
    notes: list[str] = []
    out: dict[str, list[SampleMatrix]] = {}
    if not per_run:
        return out, notes
    benches = [b for b in per_run[0] if all(b in m for m in per_run)]
    for b in dict.fromkeys(b for m in per_run for b in m):
        if b not in benches:
            notes.append(f"{b}: not in every run; left out")
    for b in benches:
        sets = [set(m[b].problem_ids) for m in per_run]
        shared = set.intersection(*sets)
        ids = [p for p in per_run[0][b].problem_ids if p in shared]
        if len(ids) < max(len(s) for s in sets):
            notes.append(f"{b}: compared on the {len(ids)} problem(s) every run has complete")
        if ids:
            out[b] = [m[b].take(ids) for m in per_run]
    return out, notes


def frame_from_records(records: Sequence[Any]):
    """Per-sample frame (the run reader's columns + reasoning_tokens) from SampleRecords
    (amir_bench.records.load_run(...).samples). Reasoning tokens: the record's own
    `reasoning_tokens` where it carries one, else estimated for completions with a
    `</think>` as num_tokens x the character share up to its end; NaN otherwise."""
    from amir_bench.records import records_frame

    df = records_frame(records).astype({"sample_idx": "int64", "num_tokens": "int64",
                                        "correct": bool})
    df["reasoning_tokens"] = _reasoning_tokens(records, df["num_tokens"].to_numpy())
    return df.drop_duplicates(["benchmark", "problem_id", "sample_idx"], keep="first")


def _reasoning_tokens(records: Sequence[Any], num_tokens: np.ndarray) -> np.ndarray:
    """Recorded reasoning token counts, else the </think> character-share estimate, else NaN."""
    import pandas as pd

    text = pd.Series([getattr(r, "completion", "") or "" for r in records], dtype=object)
    cut = text.str.rfind(THINK_CLOSE).to_numpy(dtype=float)
    length = text.str.len().to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.round(num_tokens * (cut + len(THINK_CLOSE)) / length)
    out = np.where(cut >= 0, est, np.nan)
    own = [getattr(r, "reasoning_tokens", None) for r in records]
    for i, v in enumerate(own):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[i] = float(v)
    return out


def run_matrices(runs: Sequence[Any]) -> tuple[dict[str, list[SampleMatrix]], list[str]]:
    """Aligned matrices of loaded runs (amir_bench.records.Run: .samples, .ns)."""
    per_run, notes = [], []
    for run in runs:
        m, nt = matrices_from_frame(_run_frame(run), run.ns)
        per_run.append(m)
        notes += [f"{run.path.name}: {x}" for x in nt]
    al, nt = align_matrices(per_run)
    return al, notes + nt


def _run_frame(run: Any):
    """The per-sample frame of a loaded run. The reader's columnar frame serves unless the
    samples file can hold a reasoning part (a `</think>` or a recorded reasoning_tokens): only
    then are the SampleRecords (completions included) parsed, which at 1M samples is most of
    the cost of these analyses."""
    from amir_bench.records import SAMPLES

    path = getattr(run, "path", None)
    if run_samples_loaded(run) or path is None or _may_hold_reasoning(path / SAMPLES):
        return frame_from_records(run.samples)
    df = run.to_frame().astype({"sample_idx": "int64", "num_tokens": "int64", "correct": bool})
    return df.assign(reasoning_tokens=np.nan)


def run_samples_loaded(run: Any) -> bool:
    """Whether the run's SampleRecords are already in memory (then they are used as they are)."""
    return getattr(run, "_samples", None) is not None


def _may_hold_reasoning(path) -> bool:
    """A byte scan of a samples file for `</think>` or a non-null `reasoning_tokens`."""
    import re

    pat = re.compile(rb'</think>|"reasoning_tokens": *[0-9]')
    tail = b""
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                if pat.search(tail + chunk):
                    return True
                tail = chunk[-64:]
    except FileNotFoundError:
        return True
    return False
