"""The data contract: a run directory of SampleRecords plus a manifest.

Every analysis, report and the trainer's reward read these types and nothing else.
Field names are the contract: add fields only with a default, never rename.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amir_bench.errors import UserError
from amir_bench.jsonio import (JsonlAppender, atomic_write_json, atomic_write_jsonl,  # noqa: F401
                                atomic_write_text, iter_jsonl, truncate_partial_tail)

MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
SUMMARY = "summary.json"
SCORES = "scores.jsonl"

FINISH_REASONS = ("stop", "length", "error")
GRADE_STATUSES = ("ok", "no_answer", "timeout", "error")


@dataclass
class SampleRecord:
    """One sampled completion of one problem, graded."""

    benchmark: str
    problem_id: str
    sample_idx: int
    completion: str
    finish_reason: str  # "stop" | "length" | "error"
    num_tokens: int
    gen_logprob_sum: float | None  # sampled tokens under the sampling distribution
    extracted: str | None
    correct: bool
    grade_status: str  # "ok" | "no_answer" | "timeout" | "error"
    gold: str
    reasoning: str | None = None  # a reasoning model's thinking part; `completion` is the answer
    reasoning_tokens: int | None = None  # tokens of `reasoning` (included in num_tokens)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.benchmark, self.problem_id, self.sample_idx)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SampleRecord":
        missing = [f for f in _SAMPLE_REQUIRED if f not in d]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        rec = cls(**{k: v for k, v in d.items() if k in _SAMPLE_FIELDS})
        rec.sample_idx = int(rec.sample_idx)
        rec.num_tokens = int(rec.num_tokens)
        rec.problem_id = str(rec.problem_id)
        return rec


_SAMPLE_FIELDS = frozenset(f.name for f in dataclasses.fields(SampleRecord))
_SAMPLE_REQUIRED = tuple(f.name for f in dataclasses.fields(SampleRecord)
                         if f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)


@dataclass
class ScoreRecord:
    """Teacher-forced log-probs of one sample under a scoring model (temperature 1)."""

    benchmark: str
    problem_id: str
    sample_idx: int
    logprob_sum: float
    logprob_mean: float  # length-normalized: logprob_sum / num_tokens
    num_tokens: int
    scorer: str = ""  # checkpoint that produced the score

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.benchmark, self.problem_id, self.sample_idx)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


# ---------------------------------------------------------------- reading runs


def read_samples(path: Path, *, tolerate_truncated_tail: bool = False) -> list[SampleRecord]:
    """All SampleRecords of a samples file. Well-formed files take one JSON parse; anything
    unusual goes line by line so the error names the file and line."""
    path = Path(path)
    fast = _read_samples_fast(path)
    if fast is not None:
        return fast
    out = []
    for i, obj in iter_jsonl(path, tolerate_truncated_tail=tolerate_truncated_tail):
        try:
            out.append(SampleRecord.from_dict(obj))
        except (TypeError, ValueError) as e:
            raise UserError(f"{path}:{i}: not a SampleRecord ({e})") from None
    return out


def _read_samples_fast(path: Path) -> list[SampleRecord] | None:
    """One json.loads over the whole file; None when any line is unusual (truncated,
    malformed, extra or missing fields, odd types)."""
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        return None
    lines = [ln for ln in text.split("\n") if ln.strip()]
    try:
        objs = json.loads("[" + ",".join(lines) + "]")
    except (json.JSONDecodeError, RecursionError):
        return None
    if len(objs) != len(lines):
        return None
    try:
        recs = [SampleRecord(**o) for o in objs]
    except TypeError:  # not an object, a missing or an unknown field
        return None
    ok = all(type(r.problem_id) is str and type(r.sample_idx) is int
             and type(r.num_tokens) is int and type(r.correct) is bool for r in recs)
    return recs if ok else None


@dataclass
class Run:
    """A loaded run directory."""

    path: Path
    manifest: dict
    samples: list[SampleRecord] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def n(self) -> int:
        return int(self.manifest.get("decoding", {}).get("n", 0))


def read_manifest(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a directory")
    mpath = run_dir / MANIFEST
    if not mpath.exists():
        raise UserError(f"{run_dir}: not a run directory (no {MANIFEST})")
    try:
        m = json.loads(mpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{mpath}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(m, dict):
        raise UserError(f"{mpath}: expected a JSON object")
    return m


def load_run(run_dir: Path) -> Run:
    """Read manifest and samples; a missing or broken file is a one-line UserError."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    spath = run_dir / SAMPLES
    if not spath.exists():
        raise UserError(f"{run_dir}: run has no {SAMPLES}")
    samples = read_samples(spath)
    return Run(path=run_dir, manifest=manifest, samples=samples)


def read_scores(run_dir: Path) -> list[ScoreRecord]:
    run_dir = Path(run_dir)
    spath = run_dir / SCORES
    if not spath.exists():
        raise UserError(f"{run_dir}: no {SCORES}; run `amir-bench score {run_dir}` first")
    out = []
    names = {f.name for f in dataclasses.fields(ScoreRecord)}
    for i, obj in iter_jsonl(spath, tolerate_truncated_tail=False):
        try:
            out.append(ScoreRecord(**{k: v for k, v in obj.items() if k in names}))
        except TypeError as e:
            raise UserError(f"{spath}:{i}: not a score record ({e})") from None
    return out
