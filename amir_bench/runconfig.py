"""The eval config, declared once: what `amir-bench run` computes (light to import: the CLI
builds its options from it at startup)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from amir_bench.backends import Decoding
from amir_bench.errors import UserError
from amir_bench.limits import GRADE_TIMEOUT_S
from amir_bench.options import field_default
from amir_bench.prompts import get_template


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class RunConfig:
    """What `amir-bench run` computes, declared once.

    The CLI builds each option from a field here (flag = field name with dashes, help from
    `metadata["help"]`, default from the field; see `amir_bench.options.cli_option`), and
    `from_options` layers the flags the user gave over preset defaults over these defaults.
    To add an option: add a field with help metadata, one `cli_option(RunConfig, "name")`
    parameter to `run_cmd`, and pass it in run_cmd's `from_options` dict. Sampling options live
    in `decoding` (`Decoding`'s fields): from_options routes given keys named like a Decoding
    field there and every other key to a RunConfig field.
    """

    ckpt: str = field(metadata=_help("checkpoint dir, LoRA adapter dir or Hub id"))
    out: Path | None = field(default=None, metadata=_help("run directory (default runs/NAME)"))
    benchmarks: tuple[str, ...] = field(default=("math500",), metadata=_help(
        "comma-separated benchmarks or presets (see `amir-bench benchmarks`)"))
    decoding: Decoding = field(default_factory=Decoding)
    # Samples per problem per benchmark (from --n, a preset or the spec's default_n, filled by
    # from_options); a benchmark absent here uses decoding.n. n_source says where each came from.
    n_per_benchmark: dict[str, int] = field(default_factory=dict)
    n_source: dict[str, str] = field(default_factory=dict)
    template: str = field(default="boxed", metadata=_help("boxed | amir-xml | plain"))
    backend: str = field(default="auto", metadata=_help("auto | hf | vllm | openai"))
    resume: bool = field(default=False, metadata=_help("continue an interrupted run"))
    shard: str | None = field(default=None, metadata=_help("i/N: this process's share"))
    data_dir: str | None = field(default=None, metadata=_help(
        "local JSONL folder instead of the Hub"))
    limit: int | None = field(default=None, metadata=_help("first N problems per benchmark"))
    problems: tuple[str, ...] = field(default=(), metadata=_help("comma-separated ids"))
    batch_size: int | None = field(default=None, metadata=_help("rows per batch (auto)"))
    grade_timeout: float = field(default=GRADE_TIMEOUT_S, metadata=_help("seconds per sample"))
    grade_workers: int | None = None
    tensor_parallel_size: int = field(default=1, metadata=_help("vLLM only"))
    backend_kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_options(cls, ckpt: str, given: dict[str, Any]) -> "RunConfig":
        """A config from the options the user gave (`given`: name -> value, None = not given):
        presets in `benchmarks` are expanded, their defaults sit under the given flags, and
        each benchmark's n comes from --n, else its preset, else its default_n."""
        from benchmarks.presets import select

        given = {k: v for k, v in given.items() if v is not None}
        sel = select(given.pop("benchmarks", None) or field_default(cls, "benchmarks"))
        options = {**sel.defaults, **given}
        dec_names = {f.name for f in dataclasses.fields(Decoding)}
        decoding = Decoding(**{k: v for k, v in options.items() if k in dec_names})
        if "n" in given:
            n_per = {b: given["n"] for b in sel.names}
            source = {b: "--n" for b in sel.names}
        else:
            n_per = {b: sel.n[b] or decoding.n for b in sel.names}
            source = dict(sel.n_source)
        rest = {k: v for k, v in options.items() if k not in dec_names}
        return cls(ckpt=ckpt, benchmarks=tuple(sel.names), decoding=decoding,
                   n_per_benchmark=n_per, n_source=source, **rest)

    @property
    def run_dir(self) -> Path:
        return self.out if self.out is not None else \
            Path("runs") / (Path(self.ckpt.rstrip("/")).name or "run")

    def n_for(self, benchmark: str) -> int:
        """Samples per problem of one benchmark."""
        return self.n_per_benchmark.get(benchmark, self.decoding.n)

    def decoding_for(self, benchmark: str) -> Decoding:
        return dataclasses.replace(self.decoding, n=self.n_for(benchmark))

    def manifest_decoding(self, benchmarks: Sequence[str]) -> dict[str, Any]:
        """The manifest's decoding: `n` only when every benchmark shares it (each benchmark's
        entry holds its own n either way)."""
        dec = dataclasses.asdict(self.decoding)
        ns = {self.n_for(b) for b in benchmarks}
        if len(ns) == 1:
            dec["n"] = ns.pop()
        else:
            del dec["n"]
        return dec


def validate(cfg: RunConfig, benchmarks: Sequence[str]) -> None:
    """Flag values that cannot work: one-line errors before anything loads (NaN included)."""
    d = cfg.decoding
    for b in benchmarks:
        n = cfg.n_for(b)
        if n < 1:
            raise UserError("--n must be >= 1")
        if d.temperature == 0 and n > 1:
            raise UserError(f"--temperature 0 is greedy: use --n 1 ({b} has n = {n})")
    checks = [
        ("--temperature", d.temperature, math.isfinite(d.temperature) and d.temperature >= 0,
         "must be a finite number >= 0"),
        ("--top-p", d.top_p, math.isfinite(d.top_p) and 0 < d.top_p <= 1, "must be in (0, 1]"),
        ("--top-k", d.top_k, d.top_k >= 0, "must be >= 0 (0 = off)"),
        ("--max-new-tokens", d.max_new_tokens, d.max_new_tokens >= 1, "must be >= 1"),
        ("--grade-timeout", cfg.grade_timeout,
         math.isfinite(cfg.grade_timeout) and cfg.grade_timeout > 0, "must be > 0 seconds"),
        ("--batch-size", cfg.batch_size, cfg.batch_size is None or cfg.batch_size >= 1,
         "must be >= 1"),
        ("--limit", cfg.limit, cfg.limit is None or cfg.limit >= 1, "must be >= 1"),
        ("--tensor-parallel-size", cfg.tensor_parallel_size, cfg.tensor_parallel_size >= 1,
         "must be >= 1"),
    ]
    for flag, value, ok, what in checks:
        if not ok:
            raise UserError(f"{flag} {what} (got {value})")
    get_template(cfg.template)
