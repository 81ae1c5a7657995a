"""Load benchmark rows from a local directory (shared schema) or the Hub; normalize both."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

from amir_bench.errors import UserError
from amir_bench.jsonio import iter_jsonl
from benchmarks import arith
from benchmarks.specs import BenchmarkSpec, Problem, get_spec

DATA_DIR_ENV = "AMIR_BENCH_DATA_DIR"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    d = data_dir or os.environ.get(DATA_DIR_ENV)
    if not d:
        return None
    p = Path(d).expanduser()
    if not p.is_dir():
        raise UserError(f"data directory {p} does not exist")
    return p


def benchmark_source(spec: BenchmarkSpec, data_dir: str | os.PathLike | None) -> str:
    """Where a benchmark's rows come from, as recorded in run manifests."""
    if spec.builtin:
        return f"builtin:{spec.name}"
    root = resolve_data_dir(data_dir)
    if root:
        return str((root / spec.local_file).resolve())
    return f"hf:{spec.hub_id}/{spec.hub_config}/{spec.hub_split}"


def load_local(path: Path, spec: BenchmarkSpec) -> list[Problem]:
    """Rows in the shared schema; a malformed line fails with `file:line: what is wrong`."""
    if not path.exists():
        raise UserError(f"{path}: benchmark file for {spec.name!r} not found")
    out: list[Problem] = []
    seen: set[str] = set()
    for i, row in iter_jsonl(path):
        for key in ("id", "problem", "answer"):
            v = row.get(key)
            if v is None or (isinstance(v, str) and not v.strip()):
                raise UserError(f"{path}:{i}: missing or empty field {key!r}")
        if not isinstance(row["problem"], str):
            raise UserError(f"{path}:{i}: field 'problem' must be a string")
        pid = str(row["id"])
        if pid in seen:
            raise UserError(f"{path}:{i}: duplicate id {pid!r}")
        seen.add(pid)
        meta = row.get("meta") or {}
        if not isinstance(meta, dict):
            raise UserError(f"{path}:{i}: field 'meta' must be an object")
        level = row.get("level")
        out.append(Problem(
            id=pid, problem=row["problem"], answer=str(row["answer"]).strip(),
            solution=row.get("solution"), subject=row.get("subject"),
            level=int(level) if isinstance(level, (int, float)) else None,
            source=str(row.get("source") or path.name), meta=meta))
    if not out:
        raise UserError(f"{path}: no rows")
    return out


# ------------------------------------------------------------------ Hub rows -> schema

_NUM_FLOAT = re.compile(r"^-?\d+\.0+$")


def _strip_dollars(s: str) -> str:
    s = s.strip()
    while s.startswith("$") and s.endswith("$") and len(s) >= 2:
        s = s[1:-1].strip()
    return s


def normalize_hub_answer(spec: BenchmarkSpec, raw: Any) -> str:
    """Bring a Hub answer column to the shared schema's answer string."""
    if spec.name in ("gsm8k", "gsm8k_train"):
        text = str(raw)
        return text.split("####")[-1].strip().replace(",", "")
    if isinstance(raw, (list, tuple)):  # olympiadbench final_answer
        return ", ".join(_strip_dollars(str(x)) for x in raw)
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    s = _strip_dollars(str(raw))
    if _NUM_FLOAT.match(s):
        s = s.split(".")[0]
    if spec.name in ("aime24", "aime25") and s.isdigit():
        s = str(int(s))  # "025" -> "25"
    if spec.name == "livemathbench" and re.fullmatch(r"\d{1,3}(,\d{3})+", s):
        s = s.replace(",", "")
    return s


def normalize_hub_row(spec: BenchmarkSpec, row: dict[str, Any], index: int) -> Problem:
    pid = str(row[spec.id_column]) if spec.id_column and spec.id_column in row \
        else spec.hub_id_format.format(split=spec.hub_split, index=index)
    meta: dict[str, Any] = {"row_index": index}
    answer = normalize_hub_answer(spec, row[spec.answer_column])
    if spec.name == "aqua_rat":
        opts = list(row.get("options") or [])
        meta["options"] = opts
        for o in opts:
            if o.startswith(f"{answer})"):
                meta["answer_text"] = o[len(answer) + 1:].strip()
    if spec.name == "livemathbench":
        meta["options"] = list(row.get("options") or [])
        meta["question_type"] = row.get("question_type")
    sol = row.get(spec.solution_column) if spec.solution_column else None
    level = row.get("level")
    return Problem(id=pid, problem=str(row[spec.problem_column]), answer=answer,
                   solution=sol if isinstance(sol, str) else None,
                   subject=row.get("subject") or row.get("subfield"),
                   level=level if isinstance(level, int) else None,
                   source=f"hf:{spec.hub_id}/{spec.hub_config}/{spec.hub_split}", meta=meta)


def load_hub(spec: BenchmarkSpec) -> list[Problem]:
    if not spec.hub_id:
        raise UserError(f"benchmark {spec.name!r} has no Hub source; pass --data-dir "
                        f"(or set {DATA_DIR_ENV}) to a folder holding {spec.local_file}")
    try:
        import datasets  # heavy import, only here
        ds = datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.hub_split)
    except Exception as e:  # offline, gated, renamed: say what to do instead
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"could not load {spec.hub_id} from the Hub ({first[:160]}); pass "
                        f"--data-dir (or set {DATA_DIR_ENV}) to a folder holding "
                        f"{spec.local_file}") from None
    return [normalize_hub_row(spec, dict(r), i) for i, r in enumerate(ds)]


# ------------------------------------------------------------------ public entry points


def load_problems(name: str, *, data_dir: str | os.PathLike | None = None,
                  split: str = "test", limit: int | None = None,
                  problem_ids: Sequence[str] | None = None, seed: int = 0) -> list[Problem]:
    """Rows of a benchmark, optionally a deterministic subset (first `limit` in file order,
    or exactly the listed ids in file order)."""
    spec = get_spec(name)
    if spec.builtin:
        problems = arith.generate(split=split, seed=seed)
    else:
        root = resolve_data_dir(data_dir)
        problems = load_local(root / spec.local_file, spec) if root else load_hub(spec)
    if problem_ids:
        wanted = [str(p).strip() for p in problem_ids if str(p).strip()]
        known = {p.id for p in problems}
        unknown = [p for p in wanted if p not in known]
        if unknown:
            raise UserError(f"{spec.name}: unknown problem id(s): {', '.join(unknown[:5])}")
        keep = set(wanted)
        problems = [p for p in problems if p.id in keep]
    if limit is not None:
        if limit < 1:
            raise UserError("--limit must be >= 1")
        problems = problems[:limit]
    return problems


def rows_sha256(problems: Sequence[Problem]) -> str:
    """Content hash of the rows a run evaluated (id, problem, answer), order included."""
    h = hashlib.sha256()
    for p in problems:
        h.update(json.dumps([p.id, p.problem, p.answer], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()
