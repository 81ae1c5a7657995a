"""`amir-bench import`: build a run directory from generations made elsewhere.

A reader (one per --format, in READERS) turns a file into ImportRows plus what it knows of
how they were made; this module checks them, counts tokens as `run` does, grades with the
same grader as `run`, and writes manifest, samples and summary exactly like `run`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from amir_bench.errors import UserError
from amir_bench.jsonio import atomic_write_json, atomic_write_jsonl, iter_jsonl
from amir_bench.records import MANIFEST, SAMPLES, SampleRecord
from amir_bench.runstore import benchmark_entry, new_manifest, write_summary
from amir_bench.limits import GRADE_TIMEOUT_S
from amir_bench.runlock import LOCK_NAME, has_content

# --format -> "module:function" reading ImportRequest -> ImportSource
READERS: dict[str, str] = {
    "jsonl": "amir_bench.importer:read_plain",
    "lm-eval": "amir_bench.lmeval.read:read_lm_eval",
}
FORMATS = tuple(READERS)


@dataclass
class ImportRequest:
    """What `amir-bench import` was asked to do (the CLI's options, declared once)."""

    path: Path
    out: Path
    fmt: str = "jsonl"
    benchmark: str | None = None  # a name, or task=name,… for lm-eval output
    tokenizer: str | None = None
    data_dir: str | None = None
    template: str | None = None
    grade_timeout: float = GRADE_TIMEOUT_S
    filter_name: str | None = None  # lm-eval: which filter's lines to keep
    skip_unmatched: bool = False  # lm-eval: leave out docs that match no problem


@dataclass
class ImportRow:
    """One imported completion, before grading."""

    where: str  # "file:line" for error messages
    benchmark: str
    problem_id: str
    sample_idx: int
    completion: str
    num_tokens: int | None = None
    finish_reason: str | None = None  # None: "length" when the tokens reach max_tokens
    gold: str | None = None
    prompt: str | None = None
    ref_correct: bool | None = None
    ref_source: str | None = None
    max_tokens: int | None = None


@dataclass
class ImportSource:
    """A reader's result: the rows and what is known of how they were made."""

    rows: list[ImportRow]
    checkpoint: str
    checkpoint_sha256: str | None
    backend: str
    decoding: dict[str, Any]
    template: str
    tokenizer: str | None = None  # default for counting tokens
    extra: dict[str, Any] = field(default_factory=dict)  # more manifest provenance
    notes: list[str] = field(default_factory=list)
    skipped: int = 0


class Problems:
    """Benchmark rows loaded once per benchmark: name -> (spec, problems)."""

    def __init__(self, data_dir: str | None):
        self.data_dir = data_dir
        self._cache: dict[str, tuple[Any, list]] = {}
        self._by_id: dict[str, dict[str, Any]] = {}

    def __call__(self, name: str) -> tuple[Any, list]:
        from benchmarks.loaders import load_problems
        from benchmarks.specs import get_spec

        if name not in self._cache:
            spec = get_spec(name)
            probs = load_problems(spec.name, data_dir=self.data_dir)
            self._cache[name] = (spec, probs)
            self._by_id[name] = {p.id: p for p in probs}
        return self._cache[name]

    def get(self, name: str, problem_id: str) -> Any:
        """The problem with this id, or None."""
        self(name)
        return self._by_id[name].get(problem_id)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _count_field(obj: dict, key: str, path: Path, line: int) -> int:
    """A whole number >= 0 (sample_idx, num_tokens), else a `file:line` UserError."""
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v % 1 or v < 0:
        raise UserError(f"{path}:{line}: {key} must be a whole number >= 0, got {v!r}")
    return int(v)


def read_plain(req: ImportRequest, problems: Problems) -> ImportSource:
    """JSONL of {problem_id, sample_idx, completion} (optional num_tokens, finish_reason,
    gold, prompt) for one benchmark."""
    path = Path(req.path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if not req.benchmark:
        raise UserError("--benchmark is required for --format jsonl")
    spec, _ = problems(req.benchmark)
    rows = []
    for i, obj in iter_jsonl(path):
        for key in ("problem_id", "sample_idx", "completion"):
            if key not in obj or obj[key] is None:
                raise UserError(f"{path}:{i}: missing field {key!r}")
        if not isinstance(obj["completion"], str):
            raise UserError(f"{path}:{i}: field 'completion' must be a string")
        idx = _count_field(obj, "sample_idx", path, i)
        nt = _count_field(obj, "num_tokens", path, i) if obj.get("num_tokens") is not None \
            else None
        fr = obj.get("finish_reason", "stop")
        if fr not in ("stop", "length", "error"):
            raise UserError(f"{path}:{i}: finish_reason must be stop, length or error")
        gold, prompt = obj.get("gold"), obj.get("prompt")
        rows.append(ImportRow(f"{path}:{i}", spec.name, str(obj["problem_id"]), idx,
                              obj["completion"], nt, fr,
                              str(gold) if gold is not None else None,
                              prompt if isinstance(prompt, str) else None))
    return ImportSource(rows, checkpoint=f"import:{path}", checkpoint_sha256=file_sha256(path),
                        backend="import:jsonl",
                        decoding={"n": None, "temperature": None, "top_p": None,
                                  "top_k": None, "max_new_tokens": None, "seed": None},
                        template=req.template or "boxed")


def _reader(fmt: str) -> Callable[[ImportRequest, Problems], ImportSource]:
    if fmt not in READERS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}")
    mod, fn = READERS[fmt].split(":")
    return getattr(importlib.import_module(mod), fn)


def import_run(req: ImportRequest) -> dict:
    """Read, check, count, grade and write one run; returns counts, notes and the summary."""
    out = Path(req.out)
    reader = _reader(req.fmt)
    if has_content(out):
        raise UserError(f"{out} exists and is not empty; choose another --out")
    problems = Problems(req.data_dir)
    src = reader(req, problems)
    if not src.rows:
        raise UserError(f"{req.path}: no rows" + (f" ({src.skipped} unmatched docs skipped)"
                                                 if src.skipped else ""))
    check_rows(src.rows, problems)
    count_tokens(src.rows, req.tokenizer or src.tokenizer)
    records = grade_rows(src.rows, problems, req.grade_timeout)
    per_problem = Counter((r.benchmark, r.problem_id) for r in src.rows)
    n = max(per_problem.values())
    manifest = new_manifest(
        checkpoint=src.checkpoint, checkpoint_sha256=src.checkpoint_sha256, backend=src.backend,
        decoding=dict(src.decoding, n=n), template=src.template,
        benchmarks=_benchmark_entries(src.rows, problems), extra=src.extra)
    summary = write_run(out, records, manifest)
    uneven = sorted(set(per_problem.values()))
    return {"records": len(records), "problems": len(per_problem), "n": n,
            "uneven_sample_counts": uneven if len(uneven) > 1 else [], "summary": summary,
            "notes": src.notes, "skipped": src.skipped, "agreement": agreement(records)}


def check_rows(rows: list[ImportRow], problems: Problems) -> None:
    """Every row names a known problem, once per (benchmark, problem, sample)."""
    seen: dict[tuple[str, str, int], str] = {}
    for r in rows:
        spec, _ = problems(r.benchmark)
        if problems.get(r.benchmark, r.problem_id) is None:
            raise UserError(f"{r.where}: unknown problem id {r.problem_id!r} for {spec.name}")
        key = (r.benchmark, r.problem_id, r.sample_idx)
        if key in seen:
            raise UserError(f"{r.where}: duplicate (problem, sample) ({r.problem_id}, "
                            f"{r.sample_idx}); first at {seen[key]}")
        seen[key] = r.where


def count_tokens(rows: list[ImportRow], tokenizer: str | None) -> None:
    """num_tokens as `run` counts them: the completion's tokens, plus the end-of-sequence
    token when it stopped; "length" when they reach the row's cap. The text is re-tokenized
    (other tools do not log token ids), so a non-canonical tokenization counts differently."""
    todo = [r for r in rows if r.num_tokens is None]
    if not todo:
        for r in rows:
            r.finish_reason = r.finish_reason or "stop"
        return
    if not tokenizer:
        raise UserError(f"{todo[0].where}: no num_tokens; pass --tokenizer PATH to count "
                        f"completion tokens")
    tok = load_tokenizer(tokenizer)
    eos = 1 if getattr(tok, "eos_token_id", None) is not None else 0
    for r in rows:
        if r.num_tokens is not None:
            r.finish_reason = r.finish_reason or "stop"
            continue
        count = len(tok(r.completion, add_special_tokens=False).input_ids)
        if r.finish_reason is None:
            r.finish_reason = "length" if r.max_tokens and count >= r.max_tokens else "stop"
        count += eos if r.finish_reason == "stop" else 0
        r.num_tokens = min(count, r.max_tokens) if r.max_tokens else count  # never past the cap


def grade_rows(rows: list[ImportRow], problems: Problems, timeout: float) -> list[SampleRecord]:
    """SampleRecords graded by the grader `run` uses (against the benchmark's gold)."""
    from amir_bench.grading import Grader, item_for

    items = []
    for r in rows:
        spec, _ = problems(r.benchmark)
        prob = problems.get(r.benchmark, r.problem_id)
        if r.gold is not None:
            prob = dataclasses.replace(prob, answer=r.gold)
        items.append(item_for(prob, spec, r.completion))
    with Grader(timeout=timeout) as grader:
        grades = grader.grade(items)
    return [SampleRecord(benchmark=r.benchmark, problem_id=r.problem_id, sample_idx=r.sample_idx,
                         completion=r.completion, finish_reason=r.finish_reason or "stop",
                         num_tokens=int(r.num_tokens or 0), gen_logprob_sum=None,
                         extracted=g.extracted, correct=g.correct, grade_status=g.status,
                         gold=it.gold, extract_mode=g.extract_mode, ref_correct=r.ref_correct, ref_source=r.ref_source,
                         prompt=r.prompt)
            for r, g, it in zip(rows, grades, items)]


def _benchmark_entries(rows: list[ImportRow], problems: Problems) -> dict:
    from benchmarks.loaders import benchmark_source, rows_sha256

    out = {}
    for name in dict.fromkeys(r.benchmark for r in rows):
        spec, probs = problems(name)
        ids = {r.problem_id for r in rows if r.benchmark == name}
        covered = [p for p in probs if p.id in ids]
        out[name] = benchmark_entry(benchmark_source(spec, problems.data_dir), rows_sha256(covered),
                                    [p.id for p in covered])
    return out


def write_run(out: Path, records: list[SampleRecord], manifest: dict) -> dict:
    """samples, summary, then the manifest (a folder without it is no run); all or nothing."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write_jsonl(out / SAMPLES, records)
        summary = write_summary(out, records, manifest)
        atomic_write_json(out / MANIFEST, manifest)
    except BaseException:
        for f in out.iterdir():
            if f.name != LOCK_NAME:  # the writer's lock goes when the writer ends
                f.unlink()
        raise
    return summary


def agreement(records: list[SampleRecord]) -> dict[str, dict]:
    """Per benchmark: samples with another harness's verdict, and how many agree with ours."""
    out: dict[str, dict] = {}
    for r in records:
        if r.ref_correct is None:
            continue
        a = out.setdefault(r.benchmark, {"compared": 0, "agree": 0, "sources": set()})
        a["compared"] += 1
        a["agree"] += int(bool(r.ref_correct) == bool(r.correct))
        a["sources"].add(r.ref_source)
    return {b: dict(a, sources=sorted(s for s in a["sources"] if s)) for b, a in out.items()}


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"could not load tokenizer {path}: {first[:160]}") from None
