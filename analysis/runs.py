"""Load run directories into pandas frames once, and check that runs can be compared.

The samples file is parsed in one json.loads call (the fast path); anything malformed falls
back to the core reader so the error is the core's one-liner `file:line: why`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

from amir_bench.errors import UserError
from amir_bench.records import SAMPLES, SCORES, read_manifest, read_samples, read_scores

PathLike = Union[str, os.PathLike]

# Columns of the per-sample frame the analyses use (LoadedRun.df).
SAMPLE_COLUMNS = ("benchmark", "problem_id", "sample_idx", "correct", "num_tokens",
                  "finish_reason", "extracted")
REQUIRED = ("benchmark", "problem_id", "sample_idx", "correct", "num_tokens", "finish_reason")
SCORE_COLUMNS = ("benchmark", "problem_id", "sample_idx", "logprob_mean", "logprob_sum",
                 "num_tokens", "scorer")


@dataclass
class LoadedRun:
    """One run: its manifest and a frame with one row per sample, in file order."""

    path: Path
    label: str
    manifest: dict
    df: Any  # pandas.DataFrame: SAMPLE_COLUMNS
    duplicates_dropped: int = 0
    scores: Any = None  # pandas.DataFrame of SCORE_COLUMNS once load_runs(scores=True) ran

    @property
    def n(self) -> int:
        """Samples per problem: the manifest's decoding.n, else the most seen for a problem."""
        dec = self.manifest.get("decoding")
        n = dec.get("n") if isinstance(dec, dict) else None
        if n:
            try:
                return int(n)
            except (TypeError, ValueError):
                raise UserError(f"{self.path}: manifest decoding.n is not an integer "
                                f"({n!r})") from None
        if len(self.df) == 0:
            return 0
        return int(self.df.groupby(["benchmark", "problem_id"]).size().max())

    def bench_sha(self, bench: str) -> str | None:
        """The manifest's sha256 of the benchmark rows this run evaluated (None if absent)."""
        bm = self.manifest.get("benchmarks")
        e = bm.get(bench) if isinstance(bm, dict) else None
        return e.get("sha256") if isinstance(e, dict) else None

    def describe(self) -> dict:
        """Provenance block for JSON outputs."""
        m = self.manifest
        ck = m.get("checkpoint") if isinstance(m.get("checkpoint"), dict) else {}
        return {"label": self.label, "path": str(self.path), "n": self.n,
                "checkpoint": ck.get("path"), "checkpoint_sha256": ck.get("sha256"),
                "backend": m.get("backend"), "created_at": m.get("created_at"),
                "samples": int(len(self.df))}


@dataclass
class RunSet:
    """Several loaded runs, in the order given; pass it to coverage/length/margin to load once."""

    runs: list[LoadedRun] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.runs]

    def __len__(self) -> int:
        return len(self.runs)


# ---------------------------------------------------------------- reading files


def _fast_jsonl(path: Path, resume_hint: str = "") -> tuple[list[dict], list[int]] | None:
    """All objects of a JSONL file and their line numbers, or None if anything is off (the
    caller then lets the core reader name the bad line). A last line cut off mid-object
    (what a killed writer leaves) is a UserError that says how to resume."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    lines = text.split("\n")
    keep = [i for i, line in enumerate(lines) if line.strip()]
    if not keep:
        return [], []
    if not text.endswith("\n"):
        try:
            json.loads(lines[keep[-1]])
        except (json.JSONDecodeError, RecursionError):
            raise UserError(f"{path}:{keep[-1] + 1}: last line is cut off (an interrupted "
                            f"writer?){'; ' + resume_hint if resume_hint else ''}") from None
        return None  # only the final newline is missing: let the core judge
    try:
        objs = json.loads("[" + ",".join(lines[i] for i in keep) + "]")
    except (json.JSONDecodeError, RecursionError):
        return None
    if len(objs) != len(keep) or not all(type(o) is dict for o in objs):
        return None
    return objs, [i + 1 for i in keep]


def _bad(path: Path, line: int, why: str) -> UserError:
    return UserError(f"{path}:{line}: {why}")


def read_samples_frame(path: Path):
    """samples.jsonl -> DataFrame of SAMPLE_COLUMNS; malformed input -> one-line UserError."""
    import numpy as np
    import pandas as pd

    path = Path(path)
    parsed = _fast_jsonl(path, f"resume the run with `amir-bench run ... --out {path.parent} "
                               f"--resume`")
    if parsed is None:
        # The core reader names the first bad line; a final line without its newline that
        # still parses is accepted there, so rebuild from its records in that case.
        recs = read_samples(path)
        objs = [{k: getattr(r, k) for k in SAMPLE_COLUMNS} for r in recs]
        lines = list(range(1, len(objs) + 1))
    else:
        objs, lines = parsed
    df = pd.DataFrame.from_records(objs, columns=list(SAMPLE_COLUMNS)) if objs else \
        pd.DataFrame({c: pd.Series(dtype=object) for c in SAMPLE_COLUMNS})
    if len(df) == 0:
        return df.astype({"sample_idx": "int64", "num_tokens": "int64", "correct": bool})
    for col in REQUIRED:
        bad = df[col].isna().to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise _bad(path, lines[i], f"not a SampleRecord (missing field(s) {col})")
    for col in ("sample_idx", "num_tokens"):
        num = pd.to_numeric(df[col], errors="coerce")
        bad = num.isna().to_numpy() | (num.to_numpy(dtype=float) % 1 != 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise _bad(path, lines[i], f"{col} must be an integer, got {df[col].iloc[i]!r}")
        df[col] = num.astype("int64")
    if df["correct"].dtype != bool:
        ok = df["correct"].map(lambda v: isinstance(v, bool)).to_numpy()
        if not ok.all():
            i = int(np.argmin(ok))
            raise _bad(path, lines[i], f"correct must be true or false, "
                                       f"got {df['correct'].iloc[i]!r}")
        df["correct"] = df["correct"].astype(bool)
    for col in ("benchmark", "problem_id", "finish_reason"):
        if df[col].map(type).ne(str).any():
            df[col] = df[col].astype(str)
    return df


def read_scores_frame(run_dir: Path):
    """scores.jsonl -> DataFrame of SCORE_COLUMNS; absent -> UserError to run `amir-bench score`."""
    import numpy as np
    import pandas as pd

    run_dir = Path(run_dir)
    spath = run_dir / SCORES
    if not spath.exists():
        raise UserError(f"{run_dir}: no {SCORES}; run `amir-bench score {run_dir}` first")
    parsed = _fast_jsonl(spath, f"resume it with `amir-bench score {run_dir}`")
    if parsed is None:
        recs = read_scores(run_dir)  # raises the precise file:line error
        objs = [{k: getattr(r, k) for k in SCORE_COLUMNS} for r in recs]
        lines = list(range(1, len(objs) + 1))
    else:
        objs, lines = parsed
    if not objs:
        raise UserError(f"{spath}: empty; run `amir-bench score {run_dir}` first")
    df = pd.DataFrame.from_records(objs, columns=list(SCORE_COLUMNS))
    for col in ("benchmark", "problem_id", "sample_idx", "logprob_mean"):
        bad = df[col].isna().to_numpy()
        if col == "logprob_mean":
            num = pd.to_numeric(df[col], errors="coerce")
            bad = bad | num.isna().to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise _bad(spath, lines[i], f"not a score record (missing or non-numeric {col})")
    df["logprob_mean"] = pd.to_numeric(df["logprob_mean"], errors="coerce").astype(float)
    df["logprob_sum"] = pd.to_numeric(df["logprob_sum"], errors="coerce").astype(float)
    df["sample_idx"] = pd.to_numeric(df["sample_idx"], errors="coerce")
    if df["sample_idx"].isna().any():
        i = int(np.argmax(df["sample_idx"].isna().to_numpy()))
        raise _bad(spath, lines[i], "sample_idx must be an integer")
    df["sample_idx"] = df["sample_idx"].astype("int64")
    df["benchmark"] = df["benchmark"].astype(str)
    df["problem_id"] = df["problem_id"].astype(str)
    df["scorer"] = df["scorer"].fillna("").astype(str)
    return df


# ---------------------------------------------------------------- loading runs


def _labels(paths: Sequence[Path]) -> list[str]:
    """Short unique names: the folder name, else parent/name, else name#i."""
    names = [p.name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    longer = [f"{p.parent.name}/{p.name}" if p.parent.name else p.name for p in paths]
    if len(set(longer)) == len(longer):
        return longer
    return [f"{nm}#{i + 1}" for i, nm in enumerate(names)]


def check_distinct(paths: Sequence[Path]) -> None:
    """A run given twice (also through another path to it) is a one-line error."""
    seen: dict[str, Path] = {}
    for p in paths:
        key = os.path.realpath(p)
        if key in seen:
            raise UserError(f"the same run is given twice: {seen[key]} and {p}")
        seen[key] = p


def load_runs(run_dirs: Iterable[PathLike] | RunSet, *, scores: bool = False) -> RunSet:
    """Read each run's manifest and samples once (and scores.jsonl when asked).

    Accepts a RunSet (returned as is, scores loaded if needed) so callers can share one load.
    """
    if isinstance(run_dirs, RunSet):
        rs = run_dirs
    else:
        paths = [Path(p) for p in run_dirs]
        if not paths:
            raise UserError("no run directories given")
        check_distinct(paths)
        labels = _labels([Path(os.path.normpath(p)) for p in paths])
        runs = []
        for p, label in zip(paths, labels):
            manifest = read_manifest(p)
            spath = p / SAMPLES
            if not spath.exists():
                raise UserError(f"{p}: run has no {SAMPLES}")
            df = read_samples_frame(spath)
            if len(df) == 0:
                raise UserError(f"{p}: {SAMPLES} holds no samples")
            dup = df.duplicated(["benchmark", "problem_id", "sample_idx"], keep="first")
            n_dup = int(dup.sum())
            if n_dup:
                df = df[~dup.to_numpy()].reset_index(drop=True)
            runs.append(LoadedRun(path=p, label=label, manifest=manifest, df=df,
                                  duplicates_dropped=n_dup))
        rs = RunSet(runs)
    if scores:
        for r in rs.runs:
            if r.scores is None:
                r.scores = read_scores_frame(r.path)
    return rs


def reorder(rs: RunSet, base: PathLike | None) -> RunSet:
    """Put the run named by `base` (a path or a label among the runs, or another run dir) first."""
    if base is None:
        return rs
    b = str(base)
    bkey = os.path.realpath(b)
    for i, r in enumerate(rs.runs):
        if os.path.realpath(r.path) == bkey or r.label == b.rstrip("/\\"):
            return RunSet([r] + rs.runs[:i] + rs.runs[i + 1:])
    if Path(b).is_dir():
        first = load_runs([b]).runs[0]
        if first.label in rs.labels:  # name clash: label all runs by their paths again
            labels = _labels([Path(os.path.normpath(p)) for p in [b] + [r.path for r in rs.runs]])
            first.label = labels[0]
            if first.label in rs.labels:
                first.label = f"{first.label}#base"
        return RunSet([first] + rs.runs)
    raise UserError(f"--base {b}: not one of the runs given and not a run directory")


# ---------------------------------------------------------------- comparability


@dataclass
class Aligned:
    """Per benchmark: the problems compared, and per run the correct counts (problems x runs)."""

    benchmarks: list[str]
    problem_ids: dict[str, list[str]]
    counts: dict[str, Any]  # bench -> ndarray (P, m) of correct counts
    totals: dict[str, Any]  # bench -> ndarray (P, m) of sample counts
    ns: list[int]
    notes: list[str]
    kept: dict[str, dict]  # bench -> {"kept": k, "total": t}
    forced: bool = False


def _short(sha: str | None) -> str:
    return (sha or "none")[:12]


def align(rs: RunSet, *, force: bool = False, need: int = 2, what: str = "coverage") -> Aligned:
    """Check that runs are comparable (same benchmarks and rows, same n, complete), else a
    one-line UserError naming the difference. With force, keep the problems every run has
    complete, and say how many were kept."""
    import numpy as np
    import pandas as pd

    runs = rs.runs
    if len(runs) < need:
        raise UserError(f"{what} compares runs: give at least {need} run directories "
                        f"(got {len(runs)})")
    notes: list[str] = []
    ns = [r.n for r in runs]
    if len(set(ns)) > 1:
        desc = ", ".join(f"{r.label} n={n}" for r, n in zip(runs, ns))
        if not force:
            raise UserError(f"runs differ in samples per problem ({desc}); "
                            f"pass --force to compare anyway")
        notes.append(f"runs differ in n ({desc}); pass@k only for k <= {min(ns)}")

    bench_sets = [set(r.df["benchmark"].unique()) for r in runs]
    all_b = sorted(set().union(*bench_sets))
    shared_b = sorted(set.intersection(*bench_sets)) if bench_sets else []
    for b in all_b:
        if b in shared_b:
            continue
        have = [r.label for r, s in zip(runs, bench_sets) if b in s]
        lack = [r.label for r, s in zip(runs, bench_sets) if b not in s]
        if not force:
            raise UserError(f"benchmark {b} is in {', '.join(have)} but not in "
                            f"{', '.join(lack)}; pass --force to compare the shared benchmarks")
        notes.append(f"{b}: skipped (not in {', '.join(lack)})")
    if not shared_b:
        raise UserError("the runs share no benchmark")

    for b in shared_b:
        shas = [r.bench_sha(b) for r in runs]
        known = [(r, s) for r, s in zip(runs, shas) if s]
        if len({s for _, s in known}) > 1:
            (r0, s0) = known[0]
            r1, s1 = next((r, s) for r, s in known if s != s0)
            msg = (f"runs evaluate different {b} rows (manifest sha256 {_short(s0)} in "
                   f"{r0.label}, {_short(s1)} in {r1.label})")
            if not force:
                raise UserError(msg + "; pass --force to compare the shared problem ids")
            notes.append(msg + "; compared on shared problem ids")

    counts_by_run = []
    for r, n in zip(runs, ns):
        g = r.df.groupby(["benchmark", "problem_id"], sort=False)["correct"].agg(["sum", "size"])
        counts_by_run.append(g)

    problem_ids: dict[str, list[str]] = {}
    counts: dict[str, Any] = {}
    totals: dict[str, Any] = {}
    kept: dict[str, dict] = {}
    for b in shared_b:
        per_run = []
        for r, n, g in zip(runs, ns, counts_by_run):
            gb = g.xs(b, level="benchmark")
            bm = r.manifest.get("benchmarks")
            entry = bm.get(b) if isinstance(bm, dict) else None
            expected = entry.get("problem_ids") if isinstance(entry, dict) else None
            complete = gb.index[gb["size"].to_numpy() == n]
            bad = len(gb) - len(complete)
            missing = 0
            if expected:
                missing = len(set(map(str, expected)) - set(gb.index))
            if (bad or missing) and not force:
                parts = []
                if bad:
                    parts.append(f"{bad} problem(s) without exactly n={n} samples")
                if missing:
                    parts.append(f"{missing} problem(s) of the manifest without samples")
                shard = str(r.manifest.get("shard") or "0/1")
                how = (f"it is shard {shard}: merge the shards with `amir-bench merge`"
                       if shard not in ("0/1", "") else "finish it with `amir-bench run --resume`")
                raise UserError(f"{r.label}: {b} is incomplete ({'; '.join(parts)}); {how}, "
                                f"or pass --force to compare the complete problems")
            per_run.append((gb, set(complete)))
        sets = [s for _, s in per_run]
        union = set().union(*sets)
        inter = set.intersection(*sets)
        if len(inter) != len(union):
            if not force:
                sizes = ", ".join(f"{r.label} {len(s)}" for r, s in zip(runs, sets))
                shards = {str(r.manifest.get("shard") or "0/1") for r in runs} - {"0/1"}
                hint = " (shard runs: merge them with `amir-bench merge`)" if shards else ""
                raise UserError(f"runs cover different {b} problems ({sizes}; {len(inter)} "
                                f"shared){hint}; pass --force to compare the shared problems")
        total = max([len(union)] + [len(gb) for gb, _ in per_run])
        if force and len(inter) != total:
            notes.append(f"{b}: kept {len(inter)} of {total} problems (complete in every run)")
        if not inter:
            continue
        # order: the first run's file order, restricted to shared problems
        first = per_run[0][0]
        ids = [p for p in first.index if p in inter]
        idx = pd.Index(ids)
        c = np.stack([gb["sum"].reindex(idx).to_numpy(dtype=np.int64) for gb, _ in per_run],
                     axis=1)  # (P, m)
        t = np.stack([gb["size"].reindex(idx).to_numpy(dtype=np.int64) for gb, _ in per_run],
                     axis=1)  # (P, m)
        problem_ids[b] = ids
        counts[b] = c
        totals[b] = t
        kept[b] = {"kept": len(ids), "total": total}
    if not problem_ids:
        raise UserError("no problem is complete in every run; nothing to compare")
    for r in runs:
        if r.duplicates_dropped:
            notes.append(f"{r.label}: ignored {r.duplicates_dropped} duplicate sample(s)")
    return Aligned(benchmarks=list(problem_ids), problem_ids=problem_ids, counts=counts,
                   totals=totals, ns=ns, notes=notes, kept=kept, forced=force)


# ---------------------------------------------------------------- JSON hygiene


def clean(obj: Any) -> Any:
    """numpy scalars/arrays -> Python, NaN/inf -> None, so the result is strict JSON."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return None if (math.isnan(f) or math.isinf(f)) else f
    return obj
