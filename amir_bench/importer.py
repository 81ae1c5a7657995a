"""`amir-bench import`: build a run directory from generations made elsewhere.

Reads `{problem_id, sample_idx, completion}` JSONL (optional num_tokens, finish_reason,
gold) or lm-evaluation-harness `--log_samples` files, grades with the same grader as
`run`, and writes manifest, samples and summary exactly like `run`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from amir_bench.errors import UserError
from amir_bench.records import (MANIFEST, SAMPLES, SampleRecord, atomic_write_json,
                                atomic_write_jsonl, iter_jsonl)
from amir_bench.runstore import benchmark_entry, new_manifest, write_summary

FORMATS = ("jsonl", "lm-eval")


@dataclasses.dataclass
class _Row:
    line: int
    problem_id: str
    sample_idx: int
    completion: str
    num_tokens: int | None
    finish_reason: str
    gold: str | None


def _norm(text: str) -> str:
    return " ".join(str(text).split())


def _read_plain(path: Path) -> list[_Row]:
    rows = []
    for i, obj in iter_jsonl(path):
        for key in ("problem_id", "sample_idx", "completion"):
            if key not in obj or obj[key] is None:
                raise UserError(f"{path}:{i}: missing field {key!r}")
        if not isinstance(obj["completion"], str):
            raise UserError(f"{path}:{i}: field 'completion' must be a string")
        try:
            idx = int(obj["sample_idx"])
        except (TypeError, ValueError):
            raise UserError(f"{path}:{i}: sample_idx must be an integer") from None
        fr = obj.get("finish_reason", "stop")
        if fr not in ("stop", "length", "error"):
            raise UserError(f"{path}:{i}: finish_reason must be stop, length or error")
        nt = obj.get("num_tokens")
        rows.append(_Row(i, str(obj["problem_id"]), idx, obj["completion"],
                         int(nt) if nt is not None else None, fr,
                         str(obj["gold"]) if obj.get("gold") is not None else None))
    return rows


def _read_lm_eval(path: Path, problems: list) -> list[_Row]:
    """One doc per line with its `resps`; the doc is matched to a problem by its text."""
    by_text = {_norm(p.problem): p.id for p in problems}
    rows = []
    for i, obj in iter_jsonl(path):
        doc = obj.get("doc")
        if not isinstance(doc, dict):
            raise UserError(f"{path}:{i}: missing field 'doc'")
        text = next((doc[k] for k in ("problem", "question", "Question", "input") if k in doc),
                    None)
        if text is None:
            raise UserError(f"{path}:{i}: doc has no problem/question field")
        pid = by_text.get(_norm(text))
        if pid is None:
            raise UserError(f"{path}:{i}: doc {obj.get('doc_id')!r} matches no problem of "
                            f"the benchmark")
        resps = obj.get("resps")
        if not isinstance(resps, list) or not resps:
            raise UserError(f"{path}:{i}: missing field 'resps'")
        flat = [x for r in resps for x in (r if isinstance(r, list) else [r])]
        if not all(isinstance(x, str) for x in flat):
            raise UserError(f"{path}:{i}: 'resps' must hold strings")
        for s, text_out in enumerate(flat):
            rows.append(_Row(i, pid, s, text_out, None, "stop", None))
    return rows


def import_run(path: Path, benchmark: str, out: Path, fmt: str = "jsonl",
               tokenizer: str | None = None, data_dir: str | None = None,
               template: str = "boxed", grade_timeout: float = 5.0) -> dict:
    from amir_bench.grading import Grader, item_for
    from benchmarks.loaders import benchmark_source, load_problems, rows_sha256
    from benchmarks.specs import get_spec

    path, out = Path(path), Path(out)
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not empty; choose another --out")
    spec = get_spec(benchmark)
    problems = load_problems(spec.name, data_dir=data_dir)
    by_id = {p.id: p for p in problems}
    rows = _read_plain(path) if fmt == "jsonl" else _read_lm_eval(path, problems)
    if not rows:
        raise UserError(f"{path}: no rows")
    seen: dict[tuple[str, int], int] = {}
    for r in rows:
        if r.problem_id not in by_id:
            raise UserError(f"{path}:{r.line}: unknown problem id {r.problem_id!r} "
                            f"for {spec.name}")
        if (r.problem_id, r.sample_idx) in seen:
            raise UserError(f"{path}:{r.line}: duplicate (problem, sample) "
                            f"({r.problem_id}, {r.sample_idx}); first at line "
                            f"{seen[(r.problem_id, r.sample_idx)]}")
        seen[(r.problem_id, r.sample_idx)] = r.line
    if any(r.num_tokens is None for r in rows):
        if not tokenizer:
            first = next(r for r in rows if r.num_tokens is None)
            raise UserError(f"{path}:{first.line}: no num_tokens; pass --tokenizer PATH to "
                            f"count completion tokens")
        tok = _load_tokenizer(tokenizer)
        for r in rows:
            if r.num_tokens is None:
                r.num_tokens = len(tok(r.completion, add_special_tokens=False).input_ids)
    items = []
    for r in rows:
        prob = by_id[r.problem_id]
        if r.gold is not None:
            prob = dataclasses.replace(prob, answer=r.gold)
        items.append(item_for(prob, spec, r.completion))
    with Grader(timeout=grade_timeout) as grader:
        grades = grader.grade(items)
    records = [SampleRecord(benchmark=spec.name, problem_id=r.problem_id, sample_idx=r.sample_idx,
                            completion=r.completion, finish_reason=r.finish_reason,
                            num_tokens=int(r.num_tokens or 0), gen_logprob_sum=None,
                            extracted=g.extracted, correct=g.correct, grade_status=g.status,
                            gold=it.gold, extract_mode=g.extract_mode)
               for r, g, it in zip(rows, grades, items)]
    ids = {r.problem_id for r in rows}
    covered = [p for p in problems if p.id in ids]
    per_problem: dict[str, int] = {}
    for r in rows:
        per_problem[r.problem_id] = per_problem.get(r.problem_id, 0) + 1
    n = max(per_problem.values())
    src = benchmark_source(spec, data_dir)
    manifest = new_manifest(
        checkpoint=f"import:{path}", checkpoint_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        backend=f"import:{fmt}",
        decoding={"n": n, "temperature": None, "top_p": None, "top_k": None,
                  "max_new_tokens": None, "seed": None},
        template=template,
        benchmarks={spec.name: benchmark_entry(src, rows_sha256(covered), [p.id for p in covered])})
    out.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write_jsonl(out / SAMPLES, records)
        summary = write_summary(out, records, manifest)
        atomic_write_json(out / MANIFEST, manifest)  # last: a folder without it is no run
    except BaseException:
        for f in out.iterdir():
            f.unlink()
        raise
    uneven = sorted({c for c in per_problem.values()})
    return {"records": len(records), "problems": len(ids), "n": n,
            "uneven_sample_counts": uneven if len(uneven) > 1 else [], "summary": summary}


def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"could not load tokenizer {path}: {first[:160]}") from None
