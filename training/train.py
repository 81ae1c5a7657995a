"""`train(cfg, out)`: build dataset, model, rewards and TRL config, train, write a checkpoint.

The output directory holds an HF checkpoint loadable as is by `amir-bench run --ckpt OUT`
(full weights + tokenizer, or a LoRA adapter whose adapter_config.json names its base),
the resolved recipe (`recipe.yaml`), `metrics.jsonl` (one line per logging step), TRL's
`checkpoint-N/` folders (for --resume) and, for `model.name_or_path: tiny`, the built base
model in `base/`.
"""

from __future__ import annotations

import importlib
import json
import os
import random
from pathlib import Path
from typing import Any, Sequence

from amir_bench.errors import UserError
from training.config import TINY, TrainConfig, dump_config

# algo name -> "module:TrainerClass" (imported lazily: torch/trl are heavy).
ALGORITHMS: dict[str, str] = {
    "grpo": "training.prefix_logps:SharedPrefixGRPOTrainer",  # TRL's GRPOTrainer
    "amir-grpo": "training.trainer:AmirGRPOTrainer",
}

# TRL settings amir-bench chooses unless the recipe's `trl:` section says otherwise.
TRL_DEFAULTS: dict[str, Any] = {
    "report_to": "none",
    "logging_steps": 1,
    "save_steps": 100,
    "disable_tqdm": True,
}

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
BASE_DIR = "base"


def trainer_class(algo: str) -> type:
    """The trainer class registered for an algorithm name."""
    if algo not in ALGORITHMS:
        raise UserError(f"unknown algorithm {algo!r}; choose one of {', '.join(ALGORITHMS)}")
    module, name = ALGORITHMS[algo].split(":")
    return getattr(importlib.import_module(module), name)


# ----------------------------------------------------------------------------- data


def load_training_problems(cfg: TrainConfig) -> tuple[Any, list[Any]]:
    """(BenchmarkSpec, problems) of the training set."""
    from benchmarks.loaders import load_problems
    from benchmarks.specs import get_spec

    spec = get_spec(cfg.data.benchmark)
    problems = load_problems(spec.name, data_dir=cfg.data.data_dir, split=cfg.data.split,
                             limit=cfg.data.limit, seed=cfg.seed)
    return spec, problems


def prompt_text(problem: Any, spec: Any, template: str, tokenizer: Any) -> str:
    """The exact prompt evaluation uses; a leading BOS the tokenizer adds itself is dropped.

    Evaluation tokenizes prompts with add_special_tokens=False; TRL tokenizes them with the
    tokenizer's defaults. Dropping a chat template's literal BOS when the tokenizer adds one
    keeps the token ids identical (Gemma), and changes nothing elsewhere (Qwen, tiny).
    """
    from amir_bench.prompts import problem_prompt

    text = problem_prompt(problem, spec, template, tokenizer)
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos):
        with_special = tokenizer(text[len(bos):]).input_ids
        if with_special == tokenizer(text, add_special_tokens=False).input_ids:
            return text[len(bos):]
    return text


def build_dataset(cfg: TrainConfig, tokenizer: Any) -> tuple[Any, dict[str, tuple[Any, Any]]]:
    """(datasets.Dataset of {prompt, problem_id}, id -> (Problem, spec) for the rewards)."""
    from datasets import Dataset

    spec, problems = load_training_problems(cfg)
    rows = [{"prompt": prompt_text(p, spec, cfg.data.template, tokenizer), "problem_id": p.id}
            for p in problems]
    return Dataset.from_list(rows), {p.id: (p, spec) for p in problems}


# ----------------------------------------------------------------------------- model


def build_tiny_base(cfg: TrainConfig, dest: Path) -> Path:
    """A tiny Llama + tokenizer in `dest` (warm-started on the training task when asked)."""
    import shutil

    from amir_bench.tiny import build_model, build_tokenizer

    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = build_tokenizer()
    model = build_model(tok, hidden=cfg.model.tiny_hidden, layers=cfg.model.tiny_layers,
                        heads=max(1, cfg.model.tiny_hidden // 16), intermediate=3 * cfg.model.tiny_hidden,
                        seed=cfg.seed)
    if cfg.model.tiny_sft_steps:
        import torch

        from training.warmstart import sft_examples, sft_steps
        spec, problems = load_training_problems(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.model.tiny_sft_lr, weight_decay=0.0)
        sft_steps(model, sft_examples(tok, problems, spec, cfg.data.template), opt,
                  random.Random(cfg.seed), cfg.model.tiny_sft_steps, 16, tok.pad_token_id)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    os.replace(tmp, dest)
    return dest


def resolve_base(cfg: TrainConfig, out: Path) -> str:
    """A local path or Hub id for the base model; `tiny` is built into OUT/base once."""
    name = cfg.model.name_or_path
    if name == TINY:
        dest = out / BASE_DIR
        if not (dest / "config.json").exists():
            build_tiny_base(cfg, dest)
        return str(dest.resolve())
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise UserError(f"base model {name}: no config.json in that directory")
        return str(p.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"base model not found: {name}")
    try:
        from transformers import AutoConfig
        AutoConfig.from_pretrained(name)
    except Exception as e:  # offline, unknown id, gated: one line, not a traceback
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"cannot load base model {name!r}: {first[:160]}") from None
    return name


def load_model_and_tokenizer(cfg: TrainConfig, base: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": getattr(torch, cfg.model.dtype)}
    if cfg.model.attn_implementation:
        kwargs["attn_implementation"] = cfg.model.attn_implementation
    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"cannot load base model {base!r}: {first[:160]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def peft_config(cfg: TrainConfig) -> Any:
    if not cfg.model.lora.enabled:
        return None
    from peft import LoraConfig

    lora = cfg.model.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=list(lora.target_modules), task_type="CAUSAL_LM")


# ----------------------------------------------------------------------------- TRL config


def grpo_args(cfg: TrainConfig, out: Path) -> Any:
    """trl.GRPOConfig from TRL_DEFAULTS <- the recipe's `trl:` section (bad values: UserError)."""
    from trl import GRPOConfig

    kwargs = {**TRL_DEFAULTS, **cfg.trl, "output_dir": str(out), "seed": cfg.seed}
    try:
        args = GRPOConfig(**kwargs)
    except (ValueError, TypeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"invalid trl settings: {first[:200]}") from None
    if cfg.algo == "amir-grpo" and args.per_device_train_batch_size % args.num_generations:
        raise UserError(
            f"amir-grpo needs whole groups per micro-batch: trl.per_device_train_batch_size "
            f"({args.per_device_train_batch_size}) must be a multiple of trl.num_generations "
            f"({args.num_generations})")
    return args


def _check_out(out: Path, cfg: TrainConfig, resume: bool) -> str | None:
    """The checkpoint to resume from (None: fresh run); refuses to clobber a previous run."""
    from transformers.trainer_utils import get_last_checkpoint

    previous = out / RECIPE_FILE
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if not resume:
        if previous.exists() or last:
            raise UserError(f"{out} already holds a training run; pass --resume or choose a new --out")
        return None
    if last is None:
        raise UserError(f"nothing to resume in {out} (no checkpoint-N folder)")
    if previous.exists():
        import yaml
        saved = yaml.safe_load(previous.read_text()) or {}
        now = cfg.to_dict()
        for d in (saved, now):  # extending a run (more steps) is a legitimate resume
            d.get("trl", {}).pop("max_steps", None)
        diff = [k for k in now if saved.get(k) != now[k]]
        if diff:
            raise UserError(f"--resume with a different recipe than {previous} (section {diff[0]!r} "
                            f"differs; only trl.max_steps may change)")
    return last


# ----------------------------------------------------------------------------- entry point


def train(cfg: TrainConfig, out: str | os.PathLike, resume: bool = False, *, grader: Any = None,
          callbacks: Sequence[Any] = (), quiet: bool = False) -> Path:
    """Train GRPO / AMIR-GRPO per `cfg`; returns the output directory (an HF checkpoint).

    quiet: no progress bar (metrics.jsonl still gets every logging step)."""
    from accelerate import PartialState

    from training.rewards import make_reward_funcs
    from training.progress import TrainProgress, quiet_libraries
    from training.trainer import MetricsJsonlCallback

    quiet_libraries()

    out = Path(out).expanduser().resolve()
    state = PartialState()
    resume_from = _check_out(out, cfg, resume)
    state.wait_for_everyone()  # every rank has looked at OUT before rank 0 writes to it
    args = grpo_args(cfg, out)
    with state.main_process_first():
        if state.is_main_process:
            out.mkdir(parents=True, exist_ok=True)
        base = resolve_base(cfg, out)
    model, tokenizer = load_model_and_tokenizer(cfg, base)
    dataset, problems = build_dataset(cfg, tokenizer)

    own_grader = grader is None
    if own_grader:
        from amir_bench.grading import Grader
        grader = Grader(timeout=cfg.reward.grader_timeout, workers=cfg.reward.grader_workers)
    try:
        kwargs: dict[str, Any] = {"amir": cfg.amir} if cfg.algo == "amir-grpo" else {}
        try:
            trainer = trainer_class(cfg.algo)(
                model=model, reward_funcs=make_reward_funcs(cfg.reward.preset, problems, grader),
                args=args, train_dataset=dataset, processing_class=tokenizer,
                peft_config=peft_config(cfg),
                callbacks=[MetricsJsonlCallback(out / METRICS_FILE), *callbacks], **kwargs)
        except ValueError as e:  # TRL / AMIR consistency checks on the settings
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"invalid training settings: {first[:200]}") from None
        from transformers.trainer_callback import PrinterCallback, ProgressCallback
        trainer.remove_callback(PrinterCallback)  # the per-step dict: metrics.jsonl has it
        trainer.remove_callback(ProgressCallback)
        if not quiet:
            trainer.add_callback(TrainProgress(f"train {cfg.algo}"))
        if state.is_main_process:
            (out / RECIPE_FILE).write_text(dump_config(cfg), encoding="utf-8")
        trainer.train(resume_from_checkpoint=resume_from)
        trainer.save_model(str(out))  # full weights or the adapter, plus the tokenizer
        if state.is_main_process:
            _write_summary(out, trainer, cfg)
    finally:
        if own_grader:
            grader.close()
    return out


def _write_summary(out: Path, trainer: Any, cfg: TrainConfig) -> None:
    """A small JSON of what was trained (for humans and the demo)."""
    info = {"algo": cfg.algo, "global_step": trainer.state.global_step,
            "base": cfg.model.name_or_path, "lora": cfg.model.lora.enabled}
    (out / "train_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
