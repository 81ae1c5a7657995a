"""`amir-bench export lm-eval`: amir-bench benchmarks as lm-eval tasks.

Writes one `amir_<benchmark>.yaml` per benchmark plus `amir_tasks.py`, the module those
YAMLs name: docs are the suite's own JSONL rows (each carries its amir-bench id), prompts
come from the suite's template, `repeats: N` samples per doc, and amir-bench's grader is
the metric (avg@n, pass@k). Run them with `lm_eval --include_path DIR --tasks amir_<b>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from amir_bench.errors import UserError
from amir_bench.jsonio import atomic_write_text

MODULE = "amir_tasks"
TASK_PREFIX = "amir_"
TASK_VERSION = 1.0


@dataclass
class ExportConfig:
    """What `amir-bench export lm-eval` writes (the CLI's options, declared once)."""

    benchmarks: tuple[str, ...]
    out: Path
    template: str = "boxed"
    n: int = 1
    data_dir: str | None = None
    max_new_tokens: int = 1024
    temperature: float | None = None  # None: 0 (greedy) for n = 1, else 0.6 like `run`
    chat: bool = True  # doc_to_text is the chat user turn (lm_eval --apply_chat_template)


def _q(value: object) -> str:
    """A YAML scalar: JSON strings and numbers are valid YAML."""
    return json.dumps(value, ensure_ascii=False)


def task_yaml(name: str, data_file: Path, cfg: ExportConfig, system: str | None) -> str:
    """One task's YAML text (written by hand: `!function` tags are lm-eval's own)."""
    from amir_bench.metrics import ks_for

    temp = cfg.temperature if cfg.temperature is not None else (0.0 if cfg.n == 1 else 0.6)
    task = TASK_PREFIX + name
    lines = [
        f"# written by `amir-bench export lm-eval`: {name} with the {cfg.template!r} template",
        f"task: {task}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {_q(str(data_file))}",
        "test_split: test",
        "output_type: generate_until",
        f"doc_to_text: !function {MODULE}.{task}_doc_to_text",
        "doc_to_target: \"{{answer}}\"",
        f"process_results: !function {MODULE}.{task}_process_results",
    ]
    if system and cfg.chat:
        lines.append(f"description: {_q(system)}")
    lines += [
        "num_fewshot: 0",
        f"repeats: {cfg.n}",
        "filter_list:",
        "  - name: all",
        "    filter:",
        "      - function: take_first_k",
        f"        k: {cfg.n}",
        "generation_kwargs:",
        "  until: []",
        f"  do_sample: {'true' if temp > 0 else 'false'}",
        f"  temperature: {temp}",
        f"  max_gen_toks: {cfg.max_new_tokens}",
        "metric_list:",
    ]
    for metric in ["avg@n"] + [f"pass@{k}" for k in ks_for(cfg.n)]:
        lines += [f"  - metric: {_q(metric)}", "    aggregation: mean",
                  "    higher_is_better: true"]
    lines += ["metadata:", f"  version: {TASK_VERSION}", f"  amir_benchmark: {_q(name)}",
              f"  amir_template: {_q(cfg.template)}", f"  amir_n: {cfg.n}",
              f"  amir_data_dir: {_q(str(data_file.parent))}"]
    return "\n".join(lines) + "\n"


def module_text(cfg: ExportConfig, data_dir: Path) -> str:
    """amir_tasks.py: one TaskFunctions per task, bound to the names the YAMLs use."""
    out = ['"""lm-eval task functions for amir-bench benchmarks (written by `amir-bench export',
           'lm-eval`). Needs amir-bench installed where lm_eval runs."""', "",
           "from amir_bench.lmeval.tasks import TaskFunctions", ""]
    for name in cfg.benchmarks:
        task = TASK_PREFIX + name
        out += [f"_{task} = TaskFunctions({name!r}, {cfg.template!r}, {cfg.n}, "
                f"{str(data_dir)!r}, chat={cfg.chat})",
                f"{task}_doc_to_text = _{task}.doc_to_text",
                f"{task}_process_results = _{task}.process_results", ""]
    return "\n".join(out)


def export_tasks(cfg: ExportConfig) -> list[Path]:
    """Write the task YAMLs and their module into cfg.out; returns the files written."""
    from amir_bench.prompts import build_messages, get_template
    from benchmarks.loaders import load_problems, resolve_data_dir
    from benchmarks.specs import get_spec

    if cfg.n < 1:
        raise UserError("--n must be >= 1")
    if cfg.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be >= 1")
    t = cfg.temperature
    if t is not None and (t < 0 or (t == 0 and cfg.n > 1)):
        raise UserError("--temperature must be > 0 with --n > 1 (0 is greedy: use --n 1)")
    get_template(cfg.template)
    if not cfg.benchmarks:
        raise UserError("--benchmarks is empty")
    root = resolve_data_dir(cfg.data_dir)
    if root is None:
        raise UserError("export reads the suite's JSONL files: pass --data-dir DIR "
                        "(or set AMIR_BENCH_DATA_DIR)")
    root = Path(root).resolve()
    system = next((m["content"] for m in build_messages("", cfg.template)
                   if m["role"] == "system"), None)
    texts: dict[str, str] = {}
    for name in cfg.benchmarks:
        spec = get_spec(name)
        if spec.local_file is None:
            raise UserError(f"{name} is built in (no JSONL file); export needs a benchmark file")
        load_problems(spec.name, data_dir=root)  # a missing or malformed file fails here
        texts[f"{TASK_PREFIX}{spec.name}.yaml"] = task_yaml(spec.name, root / spec.local_file,
                                                             cfg, system)
    cfg = ExportConfig(**{**cfg.__dict__, "benchmarks": tuple(get_spec(b).name
                                                               for b in cfg.benchmarks)})
    texts[f"{MODULE}.py"] = module_text(cfg, root)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in texts.items():
        atomic_write_text(out / fname, text)
        written.append(out / fname)
    return written
