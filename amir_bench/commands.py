"""Typer commands of the evaluation core: run, summary, merge, grade, score, import."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from amir_bench.backends.endpoint import EndpointConfig as EP
from amir_bench.errors import UserError


def _csv(text: Optional[str]) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def _console():
    """Rich console; wide when output is not a terminal so tables are not cut in logs."""
    import sys

    from rich.console import Console
    return Console(width=None if sys.stdout.isatty() else 160)


def run_cmd(
    ckpt: Optional[str] = typer.Option(
        None, "--ckpt", "--model",
        help="checkpoint dir, LoRA adapter dir or Hub id; with --endpoint: the served model "
             "name (default: the one the servers list)"),
    benchmarks: str = typer.Option("math500", "--benchmarks", "-b",
                                   help="comma-separated names (see `amir-bench benchmarks`)"),
    n: int = typer.Option(8, "--n", help="samples per problem"),
    temperature: float = typer.Option(0.6, "--temperature"),
    top_p: float = typer.Option(1.0, "--top-p"),
    top_k: int = typer.Option(0, "--top-k", help="0 = off"),
    max_new_tokens: int = typer.Option(1024, "--max-new-tokens"),
    template: str = typer.Option("boxed", "--template", help="boxed | amir-xml | plain"),
    seed: int = typer.Option(0, "--seed"),
    backend: str = typer.Option("auto", "--backend", help="auto | hf | vllm | openai"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory (default runs/NAME)"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run"),
    shard: Optional[str] = typer.Option(None, "--shard", help="i/N: this process's share"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", envvar="AMIR_BENCH_DATA_DIR",
                                           help="local JSONL folder instead of the Hub"),
    limit: Optional[int] = typer.Option(None, "--limit", help="first N problems per benchmark"),
    problems: Optional[str] = typer.Option(None, "--problems", help="comma-separated ids"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="rows per batch (auto)"),
    grade_timeout: float = typer.Option(5.0, "--grade-timeout", help="seconds per sample"),
    tensor_parallel_size: int = typer.Option(1, "--tensor-parallel-size", help="vLLM only"),
    endpoint: Optional[str] = typer.Option(
        None, "--endpoint", help="URL[,URL...] of OpenAI-compatible servers (--backend openai)"),
    api: str = typer.Option(EP.api, "--api", help="openai: chat | completions"),
    api_key_env: Optional[str] = typer.Option(
        None, "--api-key-env", help="openai: NAME of the env var holding the API key"),
    concurrency: int = typer.Option(EP.concurrency, "--concurrency",
                                    help="openai: requests in flight over all endpoints"),
    request_timeout: float = typer.Option(EP.request_timeout, "--request-timeout",
                                          help="openai: seconds per request"),
    max_retries: int = typer.Option(EP.max_retries, "--max-retries",
                                    help="openai: retries on connection errors, 429, 5xx"),
    tokenizer: Optional[str] = typer.Option(
        None, "--tokenizer", help="openai: client-side tokenizer (completions mode, counts)"),
    stop: Optional[List[str]] = typer.Option(None, "--stop", help="openai: stop string"),
    split_think: bool = typer.Option(EP.split_think, "--split-think",
                                     help="openai: split reasoning at </think> client-side"),
    server_n: bool = typer.Option(EP.server_n, "--server-n/--no-server-n",
                                  help="openai: one request with n per problem"),
) -> None:
    """Sample, grade and record a checkpoint on benchmarks; prints a table per benchmark."""
    from amir_bench.backends.endpoint import backend_from_cli
    from amir_bench.evaluate import RunConfig, run_eval, summary_table

    backend, backend_kwargs = backend_from_cli(
        backend, endpoint, model=ckpt, api=api, api_key_env=api_key_env, concurrency=concurrency,
        request_timeout=request_timeout, max_retries=max_retries, tokenizer=tokenizer, stop=stop,
        split_think=split_think, server_n=server_n)
    if ckpt is None and not backend_kwargs:
        raise UserError("--ckpt is required (or --endpoint URL for a served model)")
    if out is None:
        out = Path("runs") / (Path((ckpt or "served").rstrip("/")).name or "run")
    cfg = RunConfig(ckpt=ckpt or "", out=out, backend_kwargs=backend_kwargs,
                    benchmarks=_csv(benchmarks), n=n, temperature=temperature, top_p=top_p,
                    top_k=top_k, max_new_tokens=max_new_tokens, template=template, seed=seed,
                    backend=backend, resume=resume, shard=shard, data_dir=data_dir,
                    limit=limit, problems=_csv(problems), batch_size=batch_size,
                    grade_timeout=grade_timeout, tensor_parallel_size=tensor_parallel_size)
    if not cfg.benchmarks:
        raise UserError("--benchmarks is empty")
    console = _console()
    summary = run_eval(cfg, console=console)
    console.print(summary_table(summary, title=f"{out}"))
    console.print(f"records: {out / 'samples.jsonl'}   summary: {out / 'summary.json'}")


def summary_cmd(run: Path = typer.Argument(..., help="run directory")) -> None:
    """Recompute summary.json from samples.jsonl + manifest and print it."""
    from amir_bench.evaluate import summary_table
    from amir_bench.runstore import write_summary

    summary = write_summary(run)
    _console().print(summary_table(summary, title=str(run)))


def merge_cmd(
    shards: List[Path] = typer.Argument(..., help="shard run directories"),
    out: Path = typer.Option(..., "--out", help="merged run directory"),
) -> None:
    """Join shard runs (--shard i/N) into one run; checks they cover every problem once."""
    from amir_bench.evaluate import summary_table
    from amir_bench.runstore import merge_runs

    summary = merge_runs(shards, out)
    _console().print(summary_table(summary, title=f"merged into {out}"))


def grade_cmd(
    file: Path = typer.Argument(..., help='JSONL of {"pred": ..., "gold": ...}'),
    out: Optional[Path] = typer.Option(None, "--out", help="default: FILE.graded.jsonl"),
    timeout: float = typer.Option(5.0, "--timeout", help="seconds per item"),
) -> None:
    """Grade predictions against golds; writes each line back with the verdict."""
    from amir_bench.grading import grade_file

    if not file.exists():
        raise UserError(f"{file}: no such file")
    out = out or file.with_name(file.stem + ".graded.jsonl")
    counts = grade_file(file, out, timeout=timeout)
    typer.echo(f"{out}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))


def benchmarks_cmd() -> None:
    """List the benchmarks amir-bench knows, with their sources."""
    from rich.table import Table

    from benchmarks.specs import REGISTRY

    t = Table(title="benchmarks")
    for c in ("name", "local file", "hub", "answers", "description"):
        t.add_column(c)
    for s in REGISTRY.values():
        hub = f"{s.hub_id} / {s.hub_config} / {s.hub_split}" if s.hub_id else "-"
        t.add_row(s.name, s.local_file or "(built in)", hub, s.answer_kind, s.description)
    _console().print(t)


def score_cmd(
    run: Path = typer.Argument(..., help="run directory"),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help="scoring model (default: the run's)"),
    backend: str = typer.Option("hf", "--backend", help="hf | vllm | auto | openai"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", envvar="AMIR_BENCH_DATA_DIR"),
    template: Optional[str] = typer.Option(None, "--template",
                                           help="prompt template (default: the run's)"),
    endpoint: Optional[str] = typer.Option(
        None, "--endpoint", help="URL[,URL...] of OpenAI-compatible servers (--backend openai)"),
    api_key_env: Optional[str] = typer.Option(
        None, "--api-key-env", help="openai: NAME of the env var holding the API key"),
    concurrency: int = typer.Option(EP.concurrency, "--concurrency",
                                    help="openai: requests in flight over all endpoints"),
    request_timeout: float = typer.Option(EP.request_timeout, "--request-timeout"),
    max_retries: int = typer.Option(EP.max_retries, "--max-retries"),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer",
                                            help="openai: client-side tokenizer"),
) -> None:
    """Teacher-force every sample through a model (temperature 1) into scores.jsonl."""
    from amir_bench.backends.endpoint import backend_from_cli
    from amir_bench.scoring import score_run

    backend, backend_kwargs = backend_from_cli(
        backend, endpoint, model=ckpt, api="completions", api_key_env=api_key_env,
        concurrency=concurrency, request_timeout=request_timeout, max_retries=max_retries,
        tokenizer=tokenizer)
    console = _console()
    res = score_run(run, ckpt=ckpt, backend=backend, batch_size=batch_size, data_dir=data_dir,
                    template=template, console=console, backend_kwargs=backend_kwargs)
    console.print(f"{run / 'scores.jsonl'}: scored {res['scored']} samples "
                  f"({res['already']} already scored)")


def import_cmd(
    file: Path = typer.Argument(..., help="JSONL of {problem_id, sample_idx, completion}"),
    benchmark: str = typer.Option(..., "--benchmark", help="benchmark the ids refer to"),
    out: Path = typer.Option(..., "--out", help="new run directory"),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl | lm-eval"),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer",
                                            help="counts tokens when num_tokens is absent"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", envvar="AMIR_BENCH_DATA_DIR"),
    template: str = typer.Option("boxed", "--template", help="template the generations used"),
    grade_timeout: float = typer.Option(5.0, "--grade-timeout"),
) -> None:
    """Build a graded run directory from generations made with other tools."""
    from amir_bench.evaluate import summary_table
    from amir_bench.importer import import_run

    res = import_run(file, benchmark, out, fmt=fmt, tokenizer=tokenizer, data_dir=data_dir,
                     template=template, grade_timeout=grade_timeout)
    console = _console()
    if res["uneven_sample_counts"]:
        console.print(f"[yellow]note: problems have {res['uneven_sample_counts']} samples; "
                      f"n = {res['n']}[/yellow]")
    console.print(summary_table(res["summary"], title=f"imported into {out}"))
