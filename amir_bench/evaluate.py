"""`amir-bench run`: sample, grade and append SampleRecords; resumable and shardable."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from amir_bench.backends import Generation, Request, make_backend, resolve_backend_name
from amir_bench.prompts import problem_prompt
from amir_bench.jsonio import JsonlAppender
from amir_bench.records import SAMPLES, SampleRecord
from amir_bench.runconfig import RunConfig, validate
from amir_bench.runstore import (benchmark_entry, checkpoint_hash, new_manifest, parse_shard,
                                 init_run_dir, open_run_dir, write_summary)


def select_problems(cfg: RunConfig):
    """[(spec, all selected problems, this shard's problems)] per benchmark (presets expanded)."""
    from benchmarks.loaders import load_problems
    from benchmarks.presets import select
    from benchmarks.specs import get_spec

    i, n = parse_shard(cfg.shard)
    out = []
    for name in select(cfg.benchmarks).names:
        probs = load_problems(name, data_dir=cfg.data_dir, limit=cfg.limit,
                              problem_ids=list(cfg.problems) or None)
        out.append((get_spec(name), probs, probs[i::n]))
    return out


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


def _manifest(cfg: RunConfig, backend_name: str, selected: list,
              served: dict | None = None) -> dict:
    """The run's manifest: decoding, template and, per benchmark, its rows and its n. Where
    each n came from (`n_source`) is provenance, outside the configuration `--resume` checks:
    the same n given by --n or by a preset is the same run."""
    from benchmarks.loaders import benchmark_source, rows_sha256

    entries = {}
    for spec, probs, shard in selected:
        entry = benchmark_entry(benchmark_source(spec, cfg.data_dir), rows_sha256(probs),
                                [p.id for p in probs], [p.id for p in shard])
        entries[spec.name] = dict(entry, n=cfg.n_for(spec.name))
    sources = {b: cfg.n_source.get(b, "decoding") for b in entries}
    return new_manifest(
        checkpoint=cfg.ckpt, checkpoint_sha256=None if served else checkpoint_hash(cfg.ckpt),
        backend=backend_name, decoding=cfg.manifest_decoding(list(entries)),
        template=cfg.template, benchmarks=entries, shard=cfg.shard or "0/1",
        extra={"n_source": sources, **(served or {})})


def _open_backend(cfg: RunConfig, backend_name: str):
    kwargs = dict(cfg.backend_kwargs)
    if cfg.batch_size:
        kwargs["batch_size"] = cfg.batch_size
    if backend_name == "vllm":
        kwargs.setdefault("tensor_parallel_size", cfg.tensor_parallel_size)
        kwargs.setdefault("seed", cfg.decoding.seed)
    return make_backend(backend_name, cfg.ckpt, **kwargs)


def _requests(cfg: RunConfig, selected: list, done: set, tokenizer: Any):
    """Requests for every missing sample, grouped by benchmark, and key -> (spec, problem)."""
    groups: dict[str, list[Request]] = {}
    lookup: dict[str, tuple[Any, Any]] = {}
    for spec, _, shard in selected:
        for p in shard:
            missing = tuple(s for s in range(cfg.n_for(spec.name))
                            if (spec.name, p.id, s) not in done)
            if missing:
                key = f"{spec.name}/{p.id}"
                lookup[key] = (spec, p)
                groups.setdefault(spec.name, []).append(
                    Request(key, problem_prompt(p, spec, cfg.template, tokenizer), missing))
    return groups, lookup


def _record(spec: Any, p: Any, s: int, g: Generation, gr: Any) -> SampleRecord:
    return SampleRecord(
        benchmark=spec.name, problem_id=p.id, sample_idx=s, completion=g.text,
        finish_reason=g.finish_reason, num_tokens=g.num_tokens, gen_logprob_sum=g.logprob_sum,
        extracted=gr.extracted, correct=gr.correct, grade_status=gr.status, gold=p.answer,
        extract_mode=gr.extract_mode, reasoning=g.reasoning, reasoning_tokens=g.reasoning_tokens)


def run_eval(cfg: RunConfig, console: Any = None) -> dict:
    """Evaluate a checkpoint; returns the summary. Records are flushed per batch."""
    from amir_bench.grading import Grader, item_for

    out = cfg.run_dir
    # Cheap checks first: bad flags, checkpoint path or backend fail before data is fetched.
    from benchmarks.presets import select
    validate(cfg, select(cfg.benchmarks).names)
    backend_name = resolve_backend_name(cfg.backend)
    served = served_model(cfg)  # --backend openai: the model behind the servers
    parse_shard(cfg.shard)
    selected = select_problems(cfg)
    manifest = _manifest(cfg, backend_name, selected, served)
    existing = open_run_dir(out, manifest, cfg.resume)
    backend = _open_backend(cfg, backend_name)
    init_run_dir(out, manifest)
    groups, lookup = _requests(cfg, selected, {r.key for r in existing},
                               getattr(backend, "tokenizer", None))
    total = sum(len(r.sample_indices) for reqs in groups.values() for r in reqs)
    progress = progress_bar(console)
    written = list(existing)
    with Grader(timeout=cfg.grade_timeout, workers=cfg.grade_workers) as grader, \
            JsonlAppender(out / SAMPLES) as sink, progress, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="grade") as grading:
        task = progress.add_task("generate+grade", total=total) if total else None

        def grade_and_write(batch: list[tuple[Request, dict[int, Generation]]]) -> None:
            pending = [(req, s, g) for req, gens in batch for s, g in sorted(gens.items())]
            grades = grader.grade([item_for(lookup[req.key][1], lookup[req.key][0], g.text)
                                   for req, s, g in pending])
            recs = [_record(*lookup[req.key], s, g, gr) for (req, s, g), gr in zip(pending, grades)]
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
            for name, reqs in groups.items():  # one call per benchmark: each has its own n
                backend.generate(reqs, cfg.decoding_for(name), on_batch)
        finally:  # records of batches already generated are written even on failure
            for f in futures:
                f.result()
    backend.close()
    return write_summary(out, written, manifest)


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
