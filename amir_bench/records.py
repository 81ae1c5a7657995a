"""The data contract: a run directory of SampleRecords plus a manifest, and the one reader.

Every analysis, report and the trainer's reward read these types and nothing else.
Field names are the contract: add fields only with a default, never rename.
`load_run` / `load_runs` are the only way a run directory is read: manifest first, then
samples.jsonl (duplicate keys de-duplicated, first kept, and counted so analyses can say so);
`Run.to_frame()` is the per-sample pandas frame the analyses use.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

from amir_bench.errors import UserError
from amir_bench.jsonio import iter_jsonl

PathLike = Union[str, os.PathLike]

MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
SUMMARY = "summary.json"
SCORES = "scores.jsonl"

# Columns of the per-sample frame (Run.to_frame) and the per-score frame (Run.scores).
SAMPLE_COLUMNS = ("benchmark", "problem_id", "sample_idx", "correct", "num_tokens",
                  "finish_reason", "extracted", "grade_status", "extract_mode")
SCORE_COLUMNS = ("benchmark", "problem_id", "sample_idx", "logprob_mean", "logprob_sum",
                 "num_tokens", "scorer")


class _Keyed:
    """What sample and score records share: the (benchmark, problem, sample) key, one JSON line."""

    benchmark: str
    problem_id: str
    sample_idx: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.benchmark, self.problem_id, self.sample_idx)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


@dataclass
class SampleRecord(_Keyed):
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
    extract_mode: str | None = None  # which extractor produced `extracted` (GradeResult)
    ref_correct: bool | None = None  # another harness's verdict on this sample (imports)
    ref_source: str | None = None  # which harness, task, filter and metric gave ref_correct
    prompt: str | None = None  # the exact prompt, when it was not built from the template
    reasoning: str | None = None  # a reasoning model's thinking part; `completion` is the answer
    reasoning_tokens: int | None = None  # tokens of `reasoning` (included in num_tokens)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SampleRecord":
        """Checked construction: a missing field or a value of the wrong kind is a ValueError."""
        missing = [f for f in _SAMPLE_REQUIRED if f not in d]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        rec = cls(**{k: v for k, v in d.items() if k in _SAMPLE_FIELDS})
        rec.sample_idx = _integral(rec.sample_idx, "sample_idx")
        rec.num_tokens = _integral(rec.num_tokens, "num_tokens")
        if not isinstance(rec.correct, bool):
            raise ValueError(f"correct must be true or false, got {rec.correct!r}")
        rec.problem_id = str(rec.problem_id)
        rec.benchmark = str(rec.benchmark)
        rec.finish_reason = str(rec.finish_reason)
        return rec


_SAMPLE_FIELDS = frozenset(f.name for f in dataclasses.fields(SampleRecord))
_SAMPLE_REQUIRED = tuple(f.name for f in dataclasses.fields(SampleRecord)
                         if f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)
# required fields that may not be null (extracted, gen_logprob_sum may)
_SAMPLE_REQUIRED_NOT_NULL = ("benchmark", "problem_id", "sample_idx", "completion",
                             "finish_reason", "num_tokens", "correct", "grade_status", "gold")
_SCORE_REQUIRED = ("benchmark", "problem_id", "sample_idx", "logprob_mean")


@dataclass
class ScoreRecord(_Keyed):
    """Teacher-forced log-probs of one sample under a scoring model (temperature 1)."""

    benchmark: str
    problem_id: str
    sample_idx: int
    logprob_sum: float
    logprob_mean: float  # length-normalized: logprob_sum / num_tokens
    num_tokens: int
    scorer: str = ""  # checkpoint that produced the score

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ScoreRecord":
        """Checked construction: key fields present, logprob_mean a number."""
        for k in ("benchmark", "problem_id", "sample_idx", "logprob_mean"):
            if d.get(k) is None:
                raise ValueError(f"missing or non-numeric {k}")
        lm = d["logprob_mean"]
        if isinstance(lm, bool) or not isinstance(lm, (int, float)):
            raise ValueError("missing or non-numeric logprob_mean")
        ls = d.get("logprob_sum")
        return cls(benchmark=str(d["benchmark"]), problem_id=str(d["problem_id"]),
                   sample_idx=_integral(d["sample_idx"], "sample_idx"),
                   logprob_sum=float(ls) if isinstance(ls, (int, float)) else float("nan"),
                   logprob_mean=float(lm), num_tokens=d.get("num_tokens"),
                   scorer=str(d.get("scorer") or ""))


def _integral(v: Any, name: str) -> int:
    """v as an int when it is a whole number (3 or 3.0), else ValueError naming the field."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v % 1:
        raise ValueError(f"{name} must be an integer, got {v!r}")
    return int(v)


# ---------------------------------------------------------------- reading JSONL files


def _jsonl_objects(path: Path, hint: str, *, tolerate_truncated_tail: bool = False
                   ) -> tuple[list[dict], list[int]] | None:
    """(objects, line numbers) of a JSONL file in one json.loads; None when a line is unusual
    (the caller then reads line by line so the error names it). A last line cut off mid-object
    (what a killed writer leaves) is skipped when tolerated, else a UserError with `hint`."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    lines = text.split("\n")
    keep = [i for i, line in enumerate(lines) if line.strip()]
    if keep and not text.endswith("\n"):
        try:
            json.loads(lines[keep[-1]])
        except (json.JSONDecodeError, RecursionError):
            if not tolerate_truncated_tail:
                i = keep[-1] + 1
                raise UserError(f"{path}:{i}: not valid JSON: {path.name}:{i}: last line is cut "
                                f"off (an interrupted writer?); {hint}") from None
            keep.pop()
    if not keep:
        return [], []
    try:
        objs = json.loads("[" + ",".join(lines[i] for i in keep) + "]")
    except (json.JSONDecodeError, RecursionError):
        return None
    if len(objs) != len(keep) or not all(type(o) is dict for o in objs):
        return None
    return objs, [i + 1 for i in keep]


def _parse(path: Path, hint: str, build, what: str, *,
           tolerate_truncated_tail: bool = False) -> list:
    """Records of a JSONL file via `build(dict)`; any bad line is `file:line: why`."""
    parsed = _jsonl_objects(path, hint, tolerate_truncated_tail=tolerate_truncated_tail)
    pairs = (zip(parsed[1], parsed[0]) if parsed is not None
             else iter_jsonl(path, tolerate_truncated_tail=tolerate_truncated_tail))
    out = []
    for i, obj in pairs:
        try:
            out.append(build(obj))
        except (TypeError, ValueError) as e:
            raise UserError(f"{path}:{i}: not a {what} ({e})") from None
    return out


def read_samples(path: Path, *, tolerate_truncated_tail: bool = False) -> list[SampleRecord]:
    """All SampleRecords of a samples file, in file order (duplicates kept; see dedupe)."""
    path = Path(path)
    parsed = _jsonl_objects(path, _resume_hint(path), tolerate_truncated_tail=tolerate_truncated_tail)
    if parsed is not None:
        try:  # the common case: well-formed records, checked in bulk
            recs = [SampleRecord(**o) for o in parsed[0]]
            if all(type(r.problem_id) is str and type(r.sample_idx) is int
                   and type(r.num_tokens) is int and type(r.correct) is bool
                   and type(r.benchmark) is str and type(r.finish_reason) is str for r in recs):
                return recs
        except TypeError:  # a missing or an unknown field
            pass
    return _parse(path, _resume_hint(path), SampleRecord.from_dict, "SampleRecord",
                  tolerate_truncated_tail=tolerate_truncated_tail)


def _resume_hint(path: Path) -> str:
    return f"resume the run with `amir-bench run ... --out {path.parent} --resume`"


def read_scores(run_dir: Path) -> list[ScoreRecord]:
    """All ScoreRecords of a run's scores.jsonl; absent or empty -> run `amir-bench score`."""
    run_dir = Path(run_dir)
    spath = run_dir / SCORES
    if not spath.exists():
        raise UserError(f"{run_dir}: no {SCORES}; run `amir-bench score {run_dir}` first")
    out = _parse(spath, f"resume it with `amir-bench score {run_dir}`", ScoreRecord.from_dict,
                 "score record")
    if not out:
        raise UserError(f"{spath}: empty; run `amir-bench score {run_dir}` first")
    return out


def dedupe(records: Sequence[Any]) -> tuple[list, int]:
    """Records with a key seen before dropped (the first kept), and how many were dropped."""
    seen: set = set()
    out = []
    for r in records:
        k = r.key
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out, len(records) - len(out)


def read_manifest(run_dir: Path) -> dict:
    """manifest.json of a run directory; missing or broken -> one-line UserError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a directory")
    mpath = run_dir / MANIFEST
    if not mpath.exists():
        raise UserError(f"{run_dir}: not a run directory (no {MANIFEST})")
    try:
        m = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        why = f"{e.msg}, line {e.lineno}" if isinstance(e, json.JSONDecodeError) else "not UTF-8"
        raise UserError(f"{mpath}: not valid JSON ({why})") from None
    if not isinstance(m, dict):
        raise UserError(f"{mpath}: expected a JSON object")
    return m


# ---------------------------------------------------------------- frames


_ARROW_TYPES = {"str": "string", "int": "int64", "float": "float64", "bool": "bool_"}
# every SampleRecord field and its JSON type; the frame keeps SAMPLE_COLUMNS
_SAMPLE_TYPES = {"benchmark": "str", "problem_id": "str", "sample_idx": "int",
                 "completion": "str", "finish_reason": "str", "num_tokens": "int",
                 "gen_logprob_sum": "float", "extracted": "str", "correct": "bool",
                 "grade_status": "str", "gold": "str", "extract_mode": "str"}
_SCORE_TYPES = {"benchmark": "str", "problem_id": "str", "sample_idx": "int",
                "logprob_mean": "float", "logprob_sum": "float", "num_tokens": "int",
                "scorer": "str"}


def _arrow_batches(path: Path, types: dict[str, str], required: Sequence[str],
                   keep: Sequence[str]):
    """Yield pyarrow record batches (columns `keep`) of a JSONL file parsed in C++ block by
    block, every record checked against `types` and for nulls in `required`. Raises
    _NotFast on anything unusual: the Python reader then names the line."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    schema = pa.schema([(k, getattr(pa, _ARROW_TYPES[t])()) for k, t in types.items()])
    try:
        reader = pj.open_json(path, read_options=pj.ReadOptions(block_size=16 << 20),
                              parse_options=pj.ParseOptions(explicit_schema=schema,
                                                            unexpected_field_behavior="ignore"))
        for batch in reader:
            if any(pc.any(pc.is_null(batch.column(c))).as_py() for c in required):
                raise _NotFast
            yield batch.select(list(keep))
    except (pa.ArrowException, UnicodeDecodeError):
        raise _NotFast from None


class _NotFast(Exception):
    """The columnar reader cannot vouch for the file; read it record by record."""


def _frame_of(batches, keep: Sequence[str]):
    import pyarrow as pa

    batches = list(batches)
    if not batches:
        return _empty_frame(keep)
    return pa.Table.from_batches(batches).to_pandas()


def _empty_frame(keep: Sequence[str]):
    import pandas as pd

    types = {**_SAMPLE_TYPES, **_SCORE_TYPES}
    dt = {"str": "str", "int": "int64", "float": "float64", "bool": "bool"}
    return pd.DataFrame({c: pd.Series(dtype=dt[types[c]]) for c in keep})


def records_frame(records: Sequence[Any], columns: Sequence[str] = SAMPLE_COLUMNS):
    """A frame of the given attributes of records (SampleRecords or ScoreRecords)."""
    import pandas as pd

    if not records:
        return _empty_frame(columns)
    return pd.DataFrame({c: [getattr(r, c, None) for r in records] for c in columns},
                        columns=list(columns))  # None: a field the records' type lacks


def read_samples_frame(path: Path):
    """samples.jsonl -> frame of SAMPLE_COLUMNS in file order (duplicates kept). Every record
    is checked like read_samples (all fields present, of their types); the columnar parse is
    tried first and any surprise goes through read_samples for its `file:line` error."""
    path = Path(path)
    try:
        return _frame_of(_arrow_batches(path, _SAMPLE_TYPES, _SAMPLE_REQUIRED_NOT_NULL,
                                        SAMPLE_COLUMNS), SAMPLE_COLUMNS)
    except _NotFast:
        return records_frame(read_samples(path))


def read_samples_where(path: Path, keys: set[tuple[str, str]]) -> list[SampleRecord]:
    """The SampleRecords (completions included) of the given (benchmark, problem_id) keys, in
    file order, without holding the rest of the file's records."""
    import pyarrow as pa
    import pyarrow.compute as pc

    path = Path(path)
    wanted = pa.array(sorted(f"{b}\x00{p}" for b, p in keys), type=pa.string())
    out = []
    try:
        for batch in _arrow_batches(path, _SAMPLE_TYPES, (), tuple(_SAMPLE_TYPES)):
            joined = pc.binary_join_element_wise(batch.column("benchmark"),
                                                 batch.column("problem_id"), "\x00")
            hit = batch.filter(pc.is_in(joined, value_set=wanted))
            out += [SampleRecord(**{k: v for k, v in row.items() if k in _SAMPLE_FIELDS})
                    for row in hit.to_pylist()]
        return out
    except _NotFast:
        return [r for r in read_samples(path) if (r.benchmark, r.problem_id) in keys]


# ---------------------------------------------------------------- runs


class Run:
    """A loaded run directory: its manifest, the per-sample frame (to_frame; file order, a
    repeated (benchmark, problem_id, sample_idx) dropped and counted), the display label,
    and on demand its SampleRecords (samples) and scores frame (load_scores)."""

    def __init__(self, path: PathLike, manifest: dict, samples: Sequence[SampleRecord] | None = None,
                 label: str = "", frame: Any = None, duplicates_dropped: int = 0) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.label = label or self.path.name
        self.duplicates_dropped = duplicates_dropped
        self.scores: Any = None  # pandas.DataFrame of SCORE_COLUMNS once load_scores() ran
        self._samples = list(samples) if samples is not None else None
        self._frame = frame
        self._max_idx: dict[str, int] | None = None

    @property
    def samples(self) -> list[SampleRecord]:
        """Every SampleRecord, completions included (read from the file on first use)."""
        if self._samples is None:
            self._samples = dedupe(read_samples(self.path / SAMPLES))[0]
        return self._samples

    def to_frame(self):
        """pandas frame of SAMPLE_COLUMNS, one row per sample in file order (built once)."""
        if self._frame is None:
            self._frame = records_frame(self.samples)
        return self._frame

    @property
    def benchmarks(self) -> list[str]:
        """Benchmarks that have samples, sorted."""
        return sorted(self._sample_idx_max())

    def _sample_idx_max(self) -> dict[str, int]:
        if self._max_idx is None:
            df = self.to_frame()
            self._max_idx = {str(b): int(v) for b, v in
                             df.groupby("benchmark", sort=True)["sample_idx"].max().items()}
        return self._max_idx

    def n_for(self, bench: str) -> int:
        """Samples per problem of one benchmark: the manifest's per-benchmark n, else
        decoding.n, else the largest sample_idx + 1 seen (0 without samples)."""
        m = self.manifest
        e = _entry(m.get("benchmarks"), bench)
        for where, v in ((f"benchmarks.{bench}.n", e.get("n")),
                         ("decoding.n", _entry(m, "decoding").get("n"))):
            if v:
                try:
                    return int(v)
                except (TypeError, ValueError):
                    raise UserError(f"{self.path}: manifest {where} is not an integer "
                                    f"({v!r})") from None
        return self._sample_idx_max().get(bench, -1) + 1

    @property
    def ns(self) -> dict[str, int]:
        """{benchmark: n} for every benchmark with samples."""
        return {b: self.n_for(b) for b in self.benchmarks}

    @property
    def n(self) -> int:
        """The run's samples per problem: the one n of its benchmarks (the largest if they
        differ; see ns), else decoding.n."""
        ns = self.ns
        if ns:
            return max(ns.values())
        dn = _entry(self.manifest, "decoding").get("n")
        return int(dn) if isinstance(dn, int) else 0

    def bench_sha(self, bench: str) -> str | None:
        """The manifest's sha256 of the benchmark rows this run evaluated (None if absent)."""
        return _entry(self.manifest.get("benchmarks"), bench).get("sha256")

    def describe(self) -> dict:
        """Provenance block for JSON outputs."""
        m = self.manifest
        ck = _entry(m, "checkpoint")
        out = {"label": self.label, "path": str(self.path), "n": self.n,
               "checkpoint": ck.get("path"), "checkpoint_sha256": ck.get("sha256"),
               "backend": m.get("backend"), "created_at": m.get("created_at"),
               "samples": int(len(self.to_frame()))}
        if len(set(self.ns.values())) > 1:
            out["n_per_benchmark"] = self.ns
        return out

    def load_scores(self) -> Any:
        """Read scores.jsonl into self.scores (a frame of SCORE_COLUMNS) once; returns it."""
        if self.scores is None:
            spath = self.path / SCORES
            if not spath.exists():
                raise UserError(f"{self.path}: no {SCORES}; run `amir-bench score {self.path}` "
                                "first")
            try:
                df = _frame_of(_arrow_batches(spath, _SCORE_TYPES, _SCORE_REQUIRED,
                                              SCORE_COLUMNS), SCORE_COLUMNS)
                df["scorer"] = df["scorer"].fillna("")
            except _NotFast:
                df = records_frame(read_scores(self.path), SCORE_COLUMNS)
            if len(df) == 0:
                raise UserError(f"{spath}: empty; run `amir-bench score {self.path}` first")
            self.scores = df
        return self.scores


def _entry(d: Any, key: str) -> dict:
    """d[key] when d is a dict and that value is a dict, else {} (manifests are user files)."""
    e = d.get(key) if isinstance(d, dict) else None
    return e if isinstance(e, dict) else {}


@dataclass
class RunSet:
    """Several loaded runs, in the order given; analyses accept it to load once."""

    runs: list[Run] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.runs]

    def __len__(self) -> int:
        return len(self.runs)


def load_run(run_dir: PathLike, label: str = "") -> Run:
    """Read manifest, then samples into the run's frame (a repeated key keeps its first
    record); a missing or broken file is a one-line UserError. A run with no samples loads
    (empty); load_runs refuses it."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    spath = run_dir / SAMPLES
    if not spath.exists():
        raise UserError(f"{run_dir}: run has no {SAMPLES}")
    df = read_samples_frame(spath)
    dup = df.duplicated(["benchmark", "problem_id", "sample_idx"], keep="first").to_numpy()
    if dup.any():
        df = df[~dup].reset_index(drop=True)
    return Run(run_dir, manifest, label=label, frame=df, duplicates_dropped=int(dup.sum()))


def load_runs(run_dirs: Iterable[PathLike] | RunSet, names: Sequence[str] | None = None, *,
              scores: bool = False) -> RunSet:
    """Load several runs once each, labelled by `names` or run_labels; a RunSet is returned
    as it is (scores loaded if asked), so callers can share one load."""
    if isinstance(run_dirs, RunSet):
        rs = run_dirs
    else:
        paths = [Path(p) for p in run_dirs]
        if not paths:
            raise UserError("no run directories given")
        check_distinct(paths)
        labels = check_names(names, len(paths)) if names else run_labels(paths)
        rs = RunSet([load_run(p, label) for p, label in zip(paths, labels)])
        for r in rs.runs:
            if len(r.to_frame()) == 0:
                raise UserError(f"{r.path}: {SAMPLES} holds no samples")
    if scores:
        for r in rs.runs:
            r.load_scores()
    return rs


def run_labels(paths: Sequence[PathLike]) -> list[str]:
    """Short unique display labels: folder names; where two collide, parent folders are added
    until they differ (name#i as a last resort)."""
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    for depth in range(1, 9):
        cand = ["/".join(ps[-depth:]) for ps in parts]
        if len(set(cand)) == len(cand):
            return cand
    return [f"{Path(p).name}#{i + 1}" for i, p in enumerate(paths)]


def check_names(names: Sequence[str], count: int) -> list[str]:
    """User-given display names: one per run, non-empty, unique."""
    names = [str(n) for n in names]
    if len(names) != count:
        raise UserError(f"--name given {len(names)} time(s) for {count} run(s); "
                        "give one name per run or none")
    if any(not n.strip() for n in names):
        raise UserError("--name must not be empty")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"--name {dup[0]!r} given twice; names must be unique")
    return names


def check_distinct(paths: Sequence[PathLike]) -> None:
    """A run given twice (also through another path to it) is a one-line error."""
    seen: dict[str, PathLike] = {}
    for p in paths:
        key = os.path.realpath(p)
        if key in seen:
            raise UserError(f"the same run is given twice: {seen[key]} and {p}")
        seen[key] = p
