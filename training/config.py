"""Training configuration: declared once as dataclasses; YAML recipes and `--set k=v` override it.

A recipe is a YAML file whose keys mirror `TrainConfig` (nested sections are nested maps).
The `trl:` section passes any `trl.GRPOConfig` field straight through (loss_type, beta,
epsilon, temperature, learning_rate, ...), checked against GRPOConfig's own declaration.
Unknown keys and ill-typed values are one-line `UserError`s naming the offending key.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from amir_bench.errors import UserError
from amir_bench.limits import GRADE_TIMEOUT_S

ALGOS = ("grpo", "amir-grpo")  # trainer classes live in training.train.ALGORITHMS
TINY = "tiny"  # model.name_or_path meaning "build a tiny model into OUT/base"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TRL_RESERVED = {"output_dir": "use --out", "seed": "use the top-level `seed`",
                "resume_from_checkpoint": "use --resume"}


@dataclass
class LoraSection:
    """LoRA adapter (peft); off means full fine-tuning."""

    enabled: bool = False
    r: int = 16
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))


@dataclass
class ModelSection:
    """The policy: a local path / Hub id, or `tiny` (built on the fly, optionally warm-started)."""

    name_or_path: str = TINY
    dtype: str = "float32"  # float32 | bfloat16 | float16
    attn_implementation: str | None = None
    lora: LoraSection = field(default_factory=LoraSection)
    tiny_hidden: int = 64
    tiny_layers: int = 2
    tiny_sft_steps: int = 0  # supervised warm start on reference solutions (tiny only)
    tiny_sft_lr: float = 3e-3


@dataclass
class DataSection:
    """Training prompts: a benchmark's problems rendered by the shared prompt module."""

    benchmark: str = "arith"
    split: str = "train"  # used by built-in generators (arith); files pick the split by name
    data_dir: str | None = None  # local benchmark JSONL folder (else AMIR_BENCH_DATA_DIR / Hub)
    limit: int | None = None
    template: str = "boxed"


@dataclass
class RewardSection:
    """Reward preset (training.rewards.REWARD_PRESETS) and the grader's settings."""

    preset: str = "correctness"
    grader_timeout: float = GRADE_TIMEOUT_S
    grader_workers: int = 1


@dataclass
class AmirSection:
    """The AMIR regularizer: λ · mean −log σ(β·(ℓc − ℓr)) over pairs with r_c − r_r > margin."""

    margin: float = 2.0  # δ_r
    beta: float = 0.2
    lambda_init: float = 0.01
    lambda_schedule: str = "ratio"  # fixed | ratio | ratio-abs
    pairs: str = "all"  # all | top1
    max_pairs_per_group: int | None = None
    reference: str = "none"  # none | base (frozen initial policy)
    logp_temperature: str = "one"  # one: ℓ from temperature-1 logits; sampling: TRL's T-scaled


@dataclass
class TrainConfig:
    """Everything `amir-bench train` needs besides --out and --resume."""

    algo: str = "amir-grpo"
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    reward: RewardSection = field(default_factory=RewardSection)
    amir: AmirSection = field(default_factory=AmirSection)
    trl: dict[str, Any] = field(default_factory=dict)  # any trl.GRPOConfig field

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- coercion


def _is_optional(hint: Any) -> tuple[bool, Any]:
    """(True, X) for `X | None`, else (False, hint)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return True, args[0]
    return False, hint


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """`value` (from YAML, or a raw --set string) as type `hint`, or a UserError naming `key`."""
    optional, hint = _is_optional(hint)
    is_none = value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "~"))
    if optional and is_none:
        return None
    bad = UserError(f"{key}: expected {getattr(hint, '__name__', str(hint))}, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        word = value.strip().lower() if isinstance(value, str) else None
        if word in ("true", "yes", "on", "1"):
            return True
        if word in ("false", "no", "off", "0"):
            return False
        raise bad
    if hint in (int, float):  # no bools; ints take integer-valued floats; strings are parsed
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int) or (hint is float and isinstance(value, float)):
            return hint(value)
        if hint is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return hint(value.strip())
            except ValueError:
                raise bad from None
        raise bad
    if hint is str:
        if isinstance(value, str):
            return value
        raise bad
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (str,)
        if isinstance(value, str):
            text = value.strip()
            value = yaml.safe_load(text) if text.startswith("[") else \
                [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, list):
            raise bad
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def _merge_section(obj: Any, data: Any, prefix: str) -> None:
    """Apply a YAML mapping onto a dataclass instance in place, checking keys and types."""
    if not isinstance(data, dict):
        raise UserError(f"{prefix or 'recipe'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for k, v in data.items():
        key = f"{prefix}{k}"
        if k not in names:
            raise _unknown(key, str(k), names)
        current = getattr(obj, k)
        if dataclasses.is_dataclass(current):
            _merge_section(current, v, key + ".")
        elif k == "trl" and isinstance(obj, TrainConfig):
            if not isinstance(v, dict):
                raise UserError(f"trl: expected a mapping, got {v!r}")
            for tk, tv in v.items():  # checked against GRPOConfig last (importing TRL is slow)
                obj.trl[str(tk)] = tv
        else:
            setattr(obj, k, _coerce(v, hints[k], key))


def _unknown(key: str, name: str, known: list[str]) -> UserError:
    near = difflib.get_close_matches(name, known, n=1)
    if near:
        hint = f"; did you mean {near[0]!r}?"
    elif len(known) > 20:  # trl.*: GRPOConfig has ~200 fields
        hint = "; see TRL's GRPOConfig for the accepted names"
    else:
        hint = f"; known: {', '.join(known)}"
    return UserError(f"unknown recipe key {key!r}{hint}")


# ----------------------------------------------------------------------------- trl pass-through


def _grpo_hints() -> dict[str, Any]:
    from trl import GRPOConfig

    init = {f.name for f in dataclasses.fields(GRPOConfig) if f.init}
    return {k: v for k, v in typing.get_type_hints(GRPOConfig).items() if k in init}


def _yaml_scalar(text: str) -> Any:
    """A raw --set string read as YAML (`0.2`, `true`, `none`, `[a, b]`), else the text itself."""
    try:
        return yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text


def coerce_trl(key: str, value: Any) -> Any:
    """A `trl.<key>` value checked against GRPOConfig's declared type for that field."""
    if key in TRL_RESERVED:
        raise UserError(f"trl.{key} is set by amir-bench: {TRL_RESERVED[key]}")
    hints = _grpo_hints()
    if key not in hints:
        raise _unknown(f"trl.{key}", key, sorted(hints))
    hint = hints[key]
    _, base = _is_optional(hint)
    if base in (bool, int, float, str) or typing.get_origin(base) is list:
        if isinstance(value, str) and base is not str:
            value = _yaml_scalar(value)
        return _coerce(value, hint, f"trl.{key}")
    # unions / enums / dicts: GRPOConfig validates them. A string stays a string where the field
    # takes one (`save_strategy=no` must not become YAML's False).
    takes_str = str in typing.get_args(hint) or base is str
    if isinstance(value, str):
        return value if takes_str else _yaml_scalar(value)
    if isinstance(value, bool) and takes_str and bool not in typing.get_args(hint):
        word = "yes" if value else "no"
        raise UserError(f"trl.{key}: expected a string, got {value!r} (quote it in YAML: '{word}')")
    return value


# ----------------------------------------------------------------------------- recipes


def recipe_names() -> list[str]:
    """Built-in recipe names (training/recipes/*.yaml)."""
    root = resources.files("training") / "recipes"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def recipe_text(recipe: str) -> tuple[str, str]:
    """(YAML text, where it came from) for a recipe name or a path to a YAML file."""
    p = Path(recipe).expanduser()
    if p.is_file():
        return p.read_text(encoding="utf-8"), str(p)
    if recipe.endswith((".yaml", ".yml")) or "/" in recipe:
        raise UserError(f"recipe file not found: {recipe}")
    res = resources.files("training") / "recipes" / f"{recipe}.yaml"
    if not res.is_file():
        raise UserError(f"unknown recipe {recipe!r}; built-in recipes: {', '.join(recipe_names())} "
                        f"(or pass a path to a YAML file)")
    return res.read_text(encoding="utf-8"), f"training/recipes/{recipe}.yaml"


def apply_override(cfg: TrainConfig, assignment: str) -> None:
    """One `--set dotted.key=value`, type-checked against the declaration."""
    if "=" not in assignment:
        raise UserError(f"--set expects key=value, got {assignment!r}")
    dotted, raw = assignment.split("=", 1)
    parts = [p for p in dotted.strip().split(".")]
    if not all(parts):
        raise UserError(f"--set: bad key {dotted!r}")
    if parts[0] == "trl":
        if len(parts) != 2:
            raise UserError(f"--set: trl keys are flat (trl.NAME), got {dotted!r}")
        cfg.trl[parts[1]] = raw  # checked by load_config once everything else is valid
        return
    obj: Any = cfg
    for i, name in enumerate(parts):
        names = [f.name for f in dataclasses.fields(obj)]
        key = ".".join(parts[:i + 1])
        if name not in names:
            raise _unknown(key, name, names)
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(getattr(obj, name)):
                raise UserError(f"--set: {key} is a section; set one of its keys ({key}.NAME=...)")
            setattr(obj, name, _coerce(raw, typing.get_type_hints(type(obj))[name], key))
        else:
            obj = getattr(obj, name)
            if not dataclasses.is_dataclass(obj):
                raise UserError(f"--set: {key} is not a section")


def validate(cfg: TrainConfig) -> None:
    """Choices and ranges that types alone do not catch (one-line UserErrors)."""
    from amir_bench.prompts import TEMPLATES
    from training.objectives import LAMBDA_SCHEDULES, PAIR_MODES
    from training.rewards import REWARD_PRESETS

    def choice(key: str, value: str, options) -> None:
        if value not in options:
            raise UserError(f"{key}: {value!r} is not one of {', '.join(options)}")

    choice("algo", cfg.algo, ALGOS)
    choice("data.template", cfg.data.template, TEMPLATES)
    choice("reward.preset", cfg.reward.preset, REWARD_PRESETS)
    choice("amir.lambda_schedule", cfg.amir.lambda_schedule, LAMBDA_SCHEDULES)
    choice("amir.pairs", cfg.amir.pairs, PAIR_MODES)
    choice("amir.reference", cfg.amir.reference, ("none", "base"))
    choice("amir.logp_temperature", cfg.amir.logp_temperature, ("one", "sampling"))
    choice("model.dtype", cfg.model.dtype, ("float32", "bfloat16", "float16"))
    checks = [
        ("amir.beta", cfg.amir.beta > 0, "must be > 0"),
        ("amir.lambda_init", cfg.amir.lambda_init >= 0, "must be >= 0"),
        ("amir.max_pairs_per_group", cfg.amir.max_pairs_per_group is None
         or cfg.amir.max_pairs_per_group >= 1, "must be >= 1 (or none)"),
        ("reward.grader_timeout", cfg.reward.grader_timeout > 0, "must be > 0"),
        ("reward.grader_workers", cfg.reward.grader_workers >= 1, "must be >= 1"),
        ("data.limit", cfg.data.limit is None or cfg.data.limit >= 1, "must be >= 1 (or none)"),
        ("model.lora.r", cfg.model.lora.r >= 1, "must be >= 1"),
        ("model.tiny_sft_steps", cfg.model.tiny_sft_steps >= 0, "must be >= 0"),
    ]
    for key, ok, what in checks:
        if not ok:
            raise UserError(f"{key} {what}")


def load_config(recipe: str, algo: str | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Defaults <- recipe YAML <- --algo <- --set overrides, validated."""
    text, where = recipe_text(recipe)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "bad YAML"
        raise UserError(f"{where}: not valid YAML ({first})") from None
    cfg = TrainConfig()
    try:
        _merge_section(cfg, data, "")
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    if algo is not None:
        cfg.algo = algo
    for assignment in overrides:
        apply_override(cfg, assignment)
    validate(cfg)  # everything but trl: answered before TRL (seconds of imports) is loaded
    cfg.trl = {k: coerce_trl(k, v) for k, v in cfg.trl.items()}
    return cfg


def dump_config(cfg: TrainConfig) -> str:
    """The resolved recipe as YAML (re-loadable with --recipe PATH)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
