"""Typer commands of the evaluation core (run, summary, merge, benchmarks, score, import) and the
demo."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from amir_bench.backends import Decoding
from amir_bench.backends.endpoint import EndpointConfig as EP
from amir_bench.errors import Interrupted, UserError
from amir_bench.limits import GRADE_TIMEOUT_S
from amir_bench.options import cli_option
from amir_bench.runconfig import RunConfig


def _csv(text: Optional[str]) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


@contextmanager
def writer_of(folder: Path, resume_hint: str = "", counted: str | None = "samples.jsonl",
              what: str = "records") -> Iterator[None]:
    """Hold an output directory as its one writer; Ctrl-C says what was kept (exit 130)."""
    from amir_bench.jsonio import count_lines
    from amir_bench.runlock import RunLock

    with RunLock(folder):
        try:
            yield
        except KeyboardInterrupt:
            kept = f"{count_lines(Path(folder) / counted)} {what}" if counted else what
            hint = f" — {resume_hint}" if resume_hint else ""
            raise Interrupted(f"interrupted; {kept} kept in {folder}{hint}") from None


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
    benchmarks: str = cli_option(RunConfig, "benchmarks", "-b"),
    n: Optional[int] = cli_option(Decoding, "n", layered=True),
    temperature: Optional[float] = cli_option(Decoding, "temperature", layered=True),
    top_p: Optional[float] = cli_option(Decoding, "top_p", layered=True),
    top_k: Optional[int] = cli_option(Decoding, "top_k", layered=True),
    max_new_tokens: Optional[int] = cli_option(Decoding, "max_new_tokens", layered=True),
    template: Optional[str] = cli_option(RunConfig, "template", layered=True),
    seed: Optional[int] = cli_option(Decoding, "seed", layered=True),
    backend: str = cli_option(RunConfig, "backend"),
    out: Optional[Path] = cli_option(RunConfig, "out"),
    resume: bool = cli_option(RunConfig, "resume"),
    shard: Optional[str] = cli_option(RunConfig, "shard"),
    data_dir: Optional[str] = cli_option(RunConfig, "data_dir", envvar="AMIR_BENCH_DATA_DIR"),
    limit: Optional[int] = cli_option(RunConfig, "limit"),
    problems: Optional[str] = cli_option(RunConfig, "problems"),
    batch_size: Optional[int] = cli_option(RunConfig, "batch_size"),
    grade_timeout: float = cli_option(RunConfig, "grade_timeout"),
    tensor_parallel_size: int = cli_option(RunConfig, "tensor_parallel_size"),
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
    """Sample, grade and record a checkpoint on benchmarks; prints a table per benchmark.

    Without --n each benchmark gets its preset's n, else its default_n (`amir-bench
    benchmarks` lists both); a preset's decoding defaults apply unless a flag overrides them."""
    from amir_bench.backends.endpoint import backend_from_cli
    from amir_bench.evaluate import run_eval, summary_table

    backend, backend_kwargs = backend_from_cli(
        backend, endpoint, model=ckpt, api=api, api_key_env=api_key_env, concurrency=concurrency,
        request_timeout=request_timeout, max_retries=max_retries, tokenizer=tokenizer, stop=stop,
        split_think=split_think, server_n=server_n)
    if ckpt is None and not backend_kwargs:
        raise typer.BadParameter("required (or --endpoint URL for a served model)",
                                 param_hint="'--ckpt'")
    if out is None and ckpt is None:
        out = Path("runs") / "served"
    names = _csv(benchmarks)
    if not names:
        raise UserError("--benchmarks is empty")
    cfg = RunConfig.from_options(ckpt or "", dict(
        benchmarks=names, n=n, temperature=temperature, top_p=top_p, top_k=top_k,
        max_new_tokens=max_new_tokens, template=template, seed=seed, backend=backend, out=out,
        resume=resume, shard=shard, data_dir=data_dir, limit=limit,
        problems=_csv(problems) or None, batch_size=batch_size, grade_timeout=grade_timeout,
        tensor_parallel_size=tensor_parallel_size, backend_kwargs=backend_kwargs or None))
    console = _console()
    with writer_of(cfg.run_dir, resume_hint="re-run with --resume"):
        summary = run_eval(cfg, console=console)
    console.print(summary_table(summary, title=f"{cfg.run_dir}"))
    console.print(f"records: {cfg.run_dir / 'samples.jsonl'}   "
                  f"summary: {cfg.run_dir / 'summary.json'}")


def summary_cmd(
    run: Path = typer.Argument(..., help="run directory"),
    as_json: bool = typer.Option(False, "--json", help="print summary.json instead of a table"),
) -> None:
    """Recompute summary.json from samples.jsonl + manifest and print it."""
    import json

    from amir_bench.evaluate import summary_table
    from amir_bench.records import load_run
    from amir_bench.runstore import write_summary

    loaded = load_run(run)
    with writer_of(run):
        summary = write_summary(run, loaded.samples, loaded.manifest)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    if loaded.duplicates_dropped:
        typer.echo(f"note: {loaded.duplicates_dropped} duplicate (problem, sample) records in "
                   f"{run / 'samples.jsonl'} were counted once (the first)", err=True)
    _console().print(summary_table(summary, title=str(run)))


def merge_cmd(
    shards: List[Path] = typer.Argument(..., help="shard run directories"),
    out: Path = typer.Option(..., "--out", help="merged run directory"),
) -> None:
    """Join shard runs (--shard i/N) into one run; checks they cover every problem once."""
    from amir_bench.evaluate import summary_table
    from amir_bench.runstore import merge_runs

    with writer_of(out):
        summary = merge_runs(shards, out)
    _console().print(summary_table(summary, title=f"merged into {out}"))


def benchmarks_cmd() -> None:
    """List the benchmarks (source, license, rows, default n) and the presets."""
    from rich.table import Table

    from benchmarks.presets import PRESETS
    from benchmarks.specs import REGISTRY

    t = Table(title="benchmarks")
    for c in ("name", "source (local file / Hub)", "license", "rows", "default n", "answers",
              "description"):
        t.add_column(c)
    for s in REGISTRY.values():
        hub = f"{s.hub_id} / {s.hub_config} / {s.hub_split}" if s.hub_id else "(no Hub source)"
        source = "built in" if s.builtin else f"{s.local_file}\n{hub}"
        t.add_row(s.name, source, s.license, str(s.rows or "-"),
                  str(s.default_n) if s.default_n else "run default", s.answer_kind,
                  s.description)
    p = Table(title="presets (--benchmarks NAME; flags override their defaults)")
    for c in ("preset", "members (n)", "defaults", "description"):
        p.add_column(c)
    for pr in PRESETS.values():
        members = ", ".join(f"{b} ({n or REGISTRY[b].default_n})" for b, n in pr.members)
        defaults = ", ".join(f"{k}={v}" for k, v in pr.defaults.items()) or "-"
        p.add_row(pr.name, members, defaults, pr.description)
    console = _console()
    console.print(t)
    console.print(p)


def score_cmd(
    run: Path = typer.Argument(..., help="run directory"),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help="scoring model (default: the run's)"),
    backend: str = typer.Option("hf", "--backend", help="hf | vllm | auto | openai"),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help="rows per forward (hf default 8: the samples of one "
        "problem, whose shared prompt then runs once)"),
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
    if not (run / "manifest.json").exists():
        raise UserError(f"{run}: not a run directory (no manifest.json)")
    with writer_of(run, "re-run `amir-bench score` to continue", counted="scores.jsonl",
                   what="scores"):
        res = score_run(run, ckpt=ckpt, backend=backend, batch_size=batch_size,
                        data_dir=data_dir, template=template, console=console,
                        backend_kwargs=backend_kwargs)
    console.print(f"{run / 'scores.jsonl'}: scored {res['scored']} samples "
                  f"({res['already']} already scored)")


def import_cmd(
    file: Path = typer.Argument(..., help="JSONL of {problem_id, sample_idx, completion}, or "
                                          "lm-eval output: a samples file or --output_path folder"),
    out: Path = typer.Option(..., "--out", help="new run directory"),
    benchmark: Optional[str] = typer.Option(None, "--benchmark",
                                            help="benchmark the ids refer to; lm-eval: "
                                                 "TASK=NAME,… (default: by task name)"),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl | lm-eval"),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer",
                                            help="counts tokens when num_tokens is absent "
                                                 "(lm-eval: default the logged local model)"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", envvar="AMIR_BENCH_DATA_DIR"),
    template: Optional[str] = typer.Option(None, "--template",
                                           help="template the generations used (jsonl default: "
                                                "boxed; lm-eval: the task's prompt)"),
    grade_timeout: float = typer.Option(GRADE_TIMEOUT_S, "--grade-timeout",
                                        help="seconds per sample"),
    filter_name: Optional[str] = typer.Option(None, "--filter",
                                              help="lm-eval filter to keep (default: the "
                                                   "task's first)"),
    skip_unmatched: bool = typer.Option(False, "--skip-unmatched",
                                        help="lm-eval: leave out docs matching no problem"),
) -> None:
    """Build a graded run directory from generations made with other tools."""
    from amir_bench.evaluate import summary_table
    from amir_bench.importer import ImportRequest, import_run

    if not file.exists():
        raise UserError(f"{file}: no such file or folder")
    with writer_of(out):  # the run is written at the end, all or nothing
        res = import_run(ImportRequest(
            path=file, out=out, fmt=fmt, benchmark=benchmark, tokenizer=tokenizer,
            data_dir=data_dir, template=template, grade_timeout=grade_timeout,
            filter_name=filter_name, skip_unmatched=skip_unmatched))
    console = _console()
    for note in res["notes"]:
        console.print(f"note: {note}", highlight=False)
    if res["uneven_sample_counts"]:
        console.print(f"[yellow]note: problems have {res['uneven_sample_counts']} samples; "
                      f"n = {res['n']}[/yellow]")
    for b, a in res["agreement"].items():
        console.print(f"{b}: verdicts agree with {', '.join(a['sources'])} on {a['agree']}/"
                      f"{a['compared']} samples ({100 * a['agree'] / a['compared']:.1f} %)",
                      highlight=False)
    console.print(summary_table(res["summary"], title=f"imported into {out}"))


def demo_cmd(
    out: Path = typer.Option(Path("demo"), "--out", help="output folder (re-running continues)"),
    seeds: int = typer.Option(1, "--seeds", help="training seeds; >1 reports mean ± CI"),
    quick: bool = typer.Option(False, "--quick", help="the same pipeline at toy size (CI)"),
    profile: bool = typer.Option(False, "--profile", help="also profile the run with cProfile: "
                                 "OUT/profile.pstats and the top functions by own time"),
) -> None:
    """Warm-start a tiny model, train GRPO and AMIR-GRPO, evaluate, analyse and report."""
    from rich.console import Console
    from rich.markdown import Markdown

    from amir_bench.demo import DemoConfig, headline_markdown, run_demo, stages_markdown

    if seeds < 1:
        raise UserError("--seeds must be >= 1")
    console = Console()
    cfg = DemoConfig.make(out, seeds=seeds, quick=quick)

    def log(s: str) -> None:
        console.print(s, highlight=False)

    with writer_of(out, resume_hint="re-run the same command to continue", counted=None,
                   what="finished stages"):
        result = _profiled(run_demo, cfg, log, path=out / "profile.pstats") if profile \
            else run_demo(cfg, log)
    console.print(Markdown(headline_markdown(result)))
    base = result["base_avg@n"]
    console.print(f"base avg@8 after warm start: {100 * base:.1f} % "
                  f"(warm start: {result['warm_start'].get('steps')} steps)")
    if not quick and not 0.2 <= base <= 0.6:
        console.print("[yellow]note: the base model's accuracy is outside the 20-60 % band the "
                      "warm start aims for; RL has less room to show differences[/yellow]")
    console.print(f"report: {result['report']['html']}\n        {result['report']['md']}")
    console.print(Markdown("Time per stage (also in demo.json):\n\n" + stages_markdown(result)))
    console.print(f"demo finished in {result['seconds']:.0f} s")


def _profiled(fn, *args, path: Path) -> dict:
    """fn(*args) under cProfile; the stats go to `path`, the top 25 by own time to stdout."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    result = prof.runcall(fn, *args)
    prof.dump_stats(str(path))
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
    typer.echo(buf.getvalue())
    return result


def ls_cmd(
    folder: Path = typer.Argument(Path("runs"), help="folder holding run directories (or a run)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """List runs: benchmarks, n, records, accuracy, created."""
    import json

    from rich.table import Table

    from amir_bench.listing import list_runs

    rows = list_runs(folder)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    t = Table(title=f"runs in {folder}")
    for c in ("run", "benchmarks", "n", "records", "accuracy", "created"):
        t.add_column(c)
    for r in rows:
        if "error" in r:
            t.add_row(r["run"], f"[red]{r['error']}[/red]", "", "", "", "")
            continue
        acc = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f} %"
        t.add_row(r["run"], ",".join(r["benchmarks"]), ",".join(map(str, r["n"])),
                  str(r["records"]), acc, str(r["created_at"] or "-"))
    _console().print(t)


def export_cmd(
    target: str = typer.Argument(..., help="what to write: lm-eval (task YAMLs + module)"),
    benchmarks: str = typer.Option(..., "--benchmarks", "-b", help="comma-separated names"),
    out: Path = typer.Option(..., "--out", help="folder for the tasks (lm_eval --include_path)"),
    template: str = typer.Option("boxed", "--template", help="boxed | amir-xml | plain"),
    n: int = typer.Option(1, "--n", help="samples per problem (lm-eval repeats)"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", envvar="AMIR_BENCH_DATA_DIR",
                                           help="folder of the suite's JSONL files"),
    max_new_tokens: int = typer.Option(1024, "--max-new-tokens", help="max_gen_toks"),
    temperature: Optional[float] = typer.Option(None, "--temperature",
                                                help="default: 0 (greedy) for --n 1, else 0.6"),
    chat: bool = typer.Option(True, "--chat/--no-chat",
                              help="prompt as the chat user turn (lm_eval --apply_chat_template) "
                                   "or as the template's plain text"),
) -> None:
    """Write amir-bench benchmarks as tasks of another harness (lm-eval)."""
    from amir_bench.lmeval.export import ExportConfig, export_tasks

    if target != "lm-eval":
        raise UserError(f"export target must be lm-eval, got {target!r}")
    written = export_tasks(ExportConfig(
        benchmarks=_csv(benchmarks), out=out, template=template, n=n, data_dir=data_dir,
        max_new_tokens=max_new_tokens, temperature=temperature, chat=chat))
    for p in written:
        typer.echo(f"wrote {p}")
    tasks = ",".join(p.stem for p in written if p.suffix == ".yaml")
    chat_flag = " --apply_chat_template" if chat else ""
    typer.echo(f"run: lm_eval --model hf --model_args pretrained=CKPT --include_path {out} "
               f"--tasks {tasks}{chat_flag} --log_samples --output_path OUT")
