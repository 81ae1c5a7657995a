"""`amir-bench run`: sample, grade and append SampleRecords; resumable and shardable."""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amir_bench.backends import (Decoding, Generation, Request, make_backend,
                                 resolve_backend_name)
from amir_bench.errors import UserError
from amir_bench.prompts import build_prompt, get_template, with_options
from amir_bench.records import SAMPLES, JsonlAppender, SampleRecord
from amir_bench.runstore import (benchmark_entry, checkpoint_hash, new_manifest, parse_shard,
                                 init_run_dir, open_run_dir, write_summary)


@dataclass
class RunConfig:
    ckpt: str
    out: Path
    benchmarks: tuple[str, ...] = ("math500",)
    n: int = 8
    temperature: float = 0.6
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 1024
    template: str = "boxed"
    seed: int = 0
    backend: str = "auto"
    resume: bool = False
    shard: str | None = None
    data_dir: str | None = None
    limit: int | None = None
    problems: tuple[str, ...] = ()
    batch_size: int | None = None
    grade_timeout: float = 5.0
    grade_workers: int | None = None
    tensor_parallel_size: int = 1
    backend_kwargs: dict[str, Any] = field(default_factory=dict)

    def decoding(self) -> Decoding:
        return Decoding(n=self.n, temperature=self.temperature, top_p=self.top_p,
                        top_k=self.top_k, max_new_tokens=self.max_new_tokens, seed=self.seed)


def validate(cfg: RunConfig) -> None:
    if cfg.n < 1:
        raise UserError("--n must be >= 1")
    if cfg.temperature < 0:
        raise UserError("--temperature must be >= 0")
    if not 0 < cfg.top_p <= 1:
        raise UserError("--top-p must be in (0, 1]")
    if cfg.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be >= 1")
    if cfg.temperature == 0 and cfg.n > 1:
        raise UserError("--temperature 0 is greedy: use --n 1")
    get_template(cfg.template)


def served_model(cfg: RunConfig) -> dict | None:
    """Manifest entries of a model behind OpenAI-compatible servers (the servers are asked
    for it); None for a local checkpoint, whose path is checked here instead."""
    endpoint = cfg.backend_kwargs.get("endpoint")
    if endpoint is None:
        from amir_bench.backends.hf import resolve_checkpoint
        resolve_checkpoint(cfg.ckpt)
        return None
    from amir_bench.backends.endpoint import probe_servers
    endpoint, entries = probe_servers(endpoint)
    cfg.backend_kwargs["endpoint"] = endpoint
    return entries


def problem_prompt(problem, spec, template: str, tokenizer: Any) -> str:
    """The prompt of one problem: the template, with the options listed for MC variants."""
    text = with_options(problem.problem, problem.meta.get("options")) if spec.show_options \
        else problem.problem
    return build_prompt(text, template, tokenizer)


def select_problems(cfg: RunConfig):
    """[(spec, all selected problems, this shard's problems)] per benchmark."""
    from benchmarks.loaders import load_problems
    from benchmarks.specs import get_spec

    i, n = parse_shard(cfg.shard)
    out = []
    for name in cfg.benchmarks:
        spec = get_spec(name)
        probs = load_problems(spec.name, data_dir=cfg.data_dir, limit=cfg.limit,
                              problem_ids=list(cfg.problems) or None)
        out.append((spec, probs, probs[i::n]))
    return out


def run_eval(cfg: RunConfig, console: Any = None) -> dict:
    """Evaluate a checkpoint; returns the summary. Records are flushed per batch."""
    from amir_bench.grading import Grader, item_for
    from benchmarks.loaders import benchmark_source, rows_sha256

    validate(cfg)
    # Cheap checks first: a bad checkpoint path or backend fails before any data is fetched.
    backend_name = resolve_backend_name(cfg.backend)
    served = served_model(cfg)  # --backend openai: the model behind the servers
    parse_shard(cfg.shard)
    selected = select_problems(cfg)
    bench_entries = {spec.name: benchmark_entry(benchmark_source(spec, cfg.data_dir), rows_sha256(probs),
                                                [p.id for p in probs], [p.id for p in shard])
                     for spec, probs, shard in selected}
    manifest = new_manifest(
        checkpoint=cfg.ckpt, checkpoint_sha256=None if served else checkpoint_hash(cfg.ckpt),
        backend=backend_name, decoding=dataclasses.asdict(cfg.decoding()), template=cfg.template,
        benchmarks=bench_entries, shard=cfg.shard or "0/1", extra=served)
    existing = open_run_dir(cfg.out, manifest, cfg.resume)
    done = {r.key for r in existing}
    kwargs = dict(cfg.backend_kwargs)
    if cfg.batch_size:
        kwargs["batch_size"] = cfg.batch_size
    if backend_name == "vllm":
        kwargs.setdefault("tensor_parallel_size", cfg.tensor_parallel_size)
        kwargs.setdefault("seed", cfg.seed)
    backend = make_backend(backend_name, cfg.ckpt, **kwargs)
    tokenizer = getattr(backend, "tokenizer", None)
    init_run_dir(cfg.out, manifest)

    requests: list[Request] = []
    lookup: dict[str, tuple[Any, Any]] = {}
    for spec, _, shard in selected:
        for p in shard:
            missing = tuple(s for s in range(cfg.n) if (spec.name, p.id, s) not in done)
            if missing:
                key = f"{spec.name}/{p.id}"
                lookup[key] = (spec, p)
                requests.append(Request(key, problem_prompt(p, spec, cfg.template, tokenizer),
                                        missing))
    total = sum(len(r.sample_indices) for r in requests)
    progress = progress_bar(console)
    written = list(existing)
    with Grader(timeout=cfg.grade_timeout, workers=cfg.grade_workers) as grader, \
            JsonlAppender(cfg.out / SAMPLES) as sink, progress, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="grade") as grading:
        task = progress.add_task("generate+grade", total=total) if total else None

        def grade_and_write(batch: list[tuple[Request, dict[int, Generation]]]) -> None:
            pending = [(req, s, g) for req, gens in batch for s, g in sorted(gens.items())]
            items = [item_for(lookup[req.key][1], lookup[req.key][0], g.text)
                     for req, s, g in pending]
            grades = grader.grade(items)
            recs = []
            for (req, s, g), gr in zip(pending, grades):
                spec, p = lookup[req.key]
                recs.append(SampleRecord(
                    benchmark=spec.name, problem_id=p.id, sample_idx=s, completion=g.text,
                    finish_reason=g.finish_reason, num_tokens=g.num_tokens,
                    gen_logprob_sum=g.logprob_sum, extracted=gr.extracted,
                    correct=gr.correct, grade_status=gr.status, gold=p.answer,
                    reasoning=g.reasoning, reasoning_tokens=g.reasoning_tokens))
            sink.write_many(recs)
            written.extend(recs)
            if task is not None:
                progress.advance(task, len(recs))

        # Grading and writing batch k overlap with generating batch k+1 (one grading thread
        # keeps the append order); a failure in either surfaces here.
        futures: list[Future] = []

        def on_batch(batch: list[tuple[Request, dict[int, Generation]]]) -> None:
            futures.append(grading.submit(grade_and_write, batch))
            while futures and futures[0].done():
                futures.pop(0).result()  # a grading or writing failure surfaces early

        try:
            if requests:
                backend.generate(requests, cfg.decoding(), on_batch)
        finally:  # records of batches already generated are written even on failure
            for f in futures:
                f.result()
    backend.close()
    return write_summary(cfg.out, written, manifest)


def progress_bar(console: Any):
    """The rich progress bar shared by run and score."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                    transient=False)


def summary_table(summary: dict, title: str = "summary"):
    """A rich table: one row per benchmark."""
    from rich.table import Table

    t = Table(title=title)
    cols = ["benchmark", "problems", "samples", "avg@n", "± se"]
    ks = sorted({int(k.split("@")[1]) for s in summary.values() for k in s
                 if k.startswith("pass@")})
    cols += [f"pass@{k}" for k in ks] + ["maj@n", "no-answer", "trunc", "tok ✓", "tok ✗"]
    for c in cols:
        t.add_column(c, justify="left" if c == "benchmark" else "right")

    def pct(x: Any) -> str:
        return "-" if x is None else f"{100 * x:.1f}"

    def num(x: Any) -> str:
        return "-" if x is None else f"{x:.0f}"

    for b, s in summary.items():
        maj = next((v for k, v in s.items() if k.startswith("maj@")), None)
        t.add_row(b, str(s.get("problems", 0)), str(s.get("samples", 0)), pct(s.get("avg@n")),
                  pct(s.get("avg@n_se")), *[pct(s.get(f"pass@{k}")) for k in ks], pct(maj),
                  pct(s.get("no_answer_rate")), pct(s.get("truncation_rate")),
                  num(s.get("mean_tokens_correct")), num(s.get("mean_tokens_incorrect")))
    return t
