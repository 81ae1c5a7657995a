"""The data contract: a run directory of SampleRecords plus a manifest.

Every analysis, report and the trainer's reward read these types and nothing else.
Field names are the contract: add fields only with a default, never rename.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from amir_bench.errors import UserError

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


# ---------------------------------------------------------------- JSONL and atomic files


def iter_jsonl(path: Path, *, tolerate_truncated_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, object). A malformed line raises UserError `file:line: why`.

    With tolerate_truncated_tail, a last line without its newline that fails to parse is
    skipped (it is what a killed writer leaves behind); `resume` drops it.
    """
    path = Path(path)
    with open(path, "r", encoding="utf-8") as fh:
        lines = fh.readlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if tolerate_truncated_tail and i == len(lines) and not line.endswith("\n"):
                return
            raise UserError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{i}: expected a JSON object, got {type(obj).__name__}")
        yield i, obj


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


def truncate_partial_tail(path: Path) -> int:
    """Drop a trailing partial line (no newline) left by a killed writer. Returns bytes cut."""
    path = Path(path)
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        fh.truncate(keep)
        return size - keep


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temp file in the same folder and rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    lines = []
    for r in rows:
        lines.append(r.to_json() if hasattr(r, "to_json") else json.dumps(r, ensure_ascii=False))
    atomic_write_text(path, "".join(line + "\n" for line in lines))


class JsonlAppender:
    """Append records and flush+fsync per batch: the samples file is the resume point."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write_many(self, records: Iterable[Any]) -> None:
        chunk = "".join((r.to_json() if hasattr(r, "to_json") else json.dumps(r)) + "\n"
                        for r in records)
        if chunk:
            self._fh.write(chunk)
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


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
