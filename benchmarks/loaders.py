"""Load benchmark rows from a local directory (shared schema) or the Hub; normalize both."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

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


def _generic_answer(raw: Any) -> str:
    """A Hub answer cell as a string: list answers joined, `$` and float `.0` stripped."""
    if isinstance(raw, (list, tuple)):  # olympiadbench final_answer
        return ", ".join(_strip_dollars(str(x)) for x in raw)
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    s = _strip_dollars(str(raw))
    if _NUM_FLOAT.match(s):
        s = s.split(".")[0]
    return s


def _same(answer: str, raw: Any) -> str:
    return answer


def _gsm8k_answer(answer: str, raw: Any) -> str:
    """The text after `####` in the worked solution, without thousands commas."""
    return str(raw).split("####")[-1].strip().replace(",", "")


def _integer_answer(answer: str, raw: Any) -> str:
    """Integer keys written with leading zeros ("025" -> "25"), as AIME keys are."""
    return str(int(answer)) if answer.isdigit() else answer


def _no_thousands_commas(answer: str, raw: Any) -> str:
    return answer.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", answer) else answer


def _no_row_quirks(spec: BenchmarkSpec, row: dict[str, Any], fields: dict[str, Any]) -> None:
    """Rows whose columns map onto the schema as they are."""


def _livemathbench_row(spec: BenchmarkSpec, row: dict[str, Any], fields: dict[str, Any]) -> None:
    """The options and question type are kept in meta."""
    fields["meta"]["options"] = list(row.get("options") or [])
    fields["meta"]["question_type"] = row.get("question_type")


def _aqua_rat_row(spec: BenchmarkSpec, row: dict[str, Any], fields: dict[str, Any]) -> None:
    """Options in meta, and the text of the correct option (graded as an equivalent answer)."""
    answer, opts = fields["answer"], list(row.get("options") or [])
    fields["meta"]["options"] = opts
    for o in opts:
        if o.startswith(f"{answer})"):
            fields["meta"]["answer_text"] = o[len(answer) + 1:].strip()


def _matharena_row(spec: BenchmarkSpec, row: dict[str, Any], fields: dict[str, Any]) -> None:
    """MathArena releases: subject = `problem_type` joined with ", "; meta keeps the 1-based
    `problem_idx` and the type list (as the local files do)."""
    types = row.get("problem_type")
    types = list(types) if isinstance(types, (list, tuple)) else ([types] if types else [])
    fields["subject"] = ", ".join(map(str, types)) or None
    fields["meta"].update(problem_idx=int(row["problem_idx"]), problem_type=types,
                          hf_dataset=spec.hub_id)


def _matharena_aime_row(spec: BenchmarkSpec, row: dict[str, Any], fields: dict[str, Any]) -> None:
    """MathArena AIME: problem_idx 1-15 are contest I, 16-30 contest II (ids `2026-II-3`)."""
    _matharena_row(spec, row, fields)
    idx = int(row["problem_idx"])
    half, number = ("I", idx) if idx <= 15 else ("II", idx - 15)
    fields["id"] = spec.hub_id_format.format(half=half, number=number)


@dataclass(frozen=True)
class HubNormalizer:
    """One source's quirks: `answer` rewrites the generically normalized answer (given the raw
    cell); `row` fills ids, subject or meta from the raw row."""

    answer: Callable[[str, Any], str] = _same
    row: Callable[[BenchmarkSpec, dict[str, Any], dict[str, Any]], None] = _no_row_quirks


# BenchmarkSpec.hub_normalizer -> that source's quirks
HUB_NORMALIZERS: dict[str, HubNormalizer] = {
    "plain": HubNormalizer(),
    "gsm8k": HubNormalizer(answer=_gsm8k_answer),
    "integer": HubNormalizer(answer=_integer_answer),
    "livemathbench": HubNormalizer(answer=_no_thousands_commas, row=_livemathbench_row),
    "aqua_rat": HubNormalizer(row=_aqua_rat_row),
    "matharena": HubNormalizer(row=_matharena_row),
    "matharena_aime": HubNormalizer(answer=_integer_answer, row=_matharena_aime_row),
}


def normalize_hub_answer(spec: BenchmarkSpec, raw: Any) -> str:
    """Bring a Hub answer cell to the shared schema's answer string."""
    return HUB_NORMALIZERS[spec.hub_normalizer].answer(_generic_answer(raw), raw)


class _IdKeys(dict):
    """Keys for `hub_id_format`: the row's columns plus split and index; a key the row lacks
    is left in place for the row normalizer to fill (`{half}` of MathArena AIME)."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def normalize_hub_row(spec: BenchmarkSpec, row: dict[str, Any], index: int) -> Problem:
    """One Hub row in the shared schema: generic column mapping, then the spec's normalizer."""
    if spec.id_column and spec.id_column in row:
        pid = str(row[spec.id_column])
    else:
        pid = spec.hub_id_format.format_map(_IdKeys(row, split=spec.hub_split, index=index))
    sol = row.get(spec.solution_column) if spec.solution_column else None
    level = row.get("level")
    fields: dict[str, Any] = {
        "id": pid, "problem": str(row[spec.problem_column]),
        "answer": normalize_hub_answer(spec, row[spec.answer_column]),
        "solution": sol if isinstance(sol, str) else None,
        "subject": row.get("subject") or row.get("subfield"),
        "level": level if isinstance(level, int) else None,
        "source": f"hf:{spec.hub_id}/{spec.hub_config}/{spec.hub_split}",
        "meta": {"row_index": index}}
    HUB_NORMALIZERS[spec.hub_normalizer].row(spec, row, fields)
    return Problem(**fields)


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
