"""`amir-bench train`: recipes, one-line errors, and 3-step tiny-cpu smoke runs per algorithm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from training.config import TrainConfig, dump_config, load_config, recipe_names


def cli(*argv: str) -> int:
    from amir_bench.cli import main

    return main(list(argv))


# ----------------------------------------------------------------------------- recipes and errors


def test_builtin_recipes_load():
    assert {"tiny-cpu", "paper-qwen2.5-3b", "paper-qwen2.5-7b", "paper-gemma-3-4b"} <= set(recipe_names())
    for name in recipe_names():
        cfg = load_config(name)
        assert cfg.algo == "amir-grpo"
        assert cfg.trl["per_device_train_batch_size"] % cfg.trl["num_generations"] == 0
    paper = load_config("paper-qwen2.5-7b")
    assert (paper.amir.margin, paper.amir.beta, paper.amir.lambda_init, paper.amir.lambda_schedule,
            paper.amir.pairs) == (2.0, 0.2, 0.01, "ratio", "all")
    assert paper.model.lora.enabled and (paper.model.lora.r, paper.model.lora.alpha) == (16, 16)
    assert paper.trl["num_generations"] == 8 and paper.trl["max_completion_length"] == 1024
    assert paper.trl["per_device_train_batch_size"] * paper.trl["gradient_accumulation_steps"] == 32
    assert (paper.data.benchmark, paper.data.template, paper.reward.preset) == ("gsm8k_train", "amir-xml", "paper")


def test_accelerate_configs_ship():
    from importlib import resources

    root = resources.files("training") / "recipes" / "accelerate"
    files = {p.name: yaml.safe_load(p.read_text()) for p in root.iterdir() if p.name.endswith(".yaml")}
    assert files["zero2.yaml"]["deepspeed_config"]["zero_stage"] == 2
    assert files["zero3.yaml"]["deepspeed_config"]["zero_stage"] == 3
    assert files["multi-gpu.yaml"]["distributed_type"] == "MULTI_GPU"


def test_overrides_are_typed_and_the_resolved_recipe_roundtrips(tmp_path):
    cfg = load_config("tiny-cpu", "grpo", ["amir.beta=0.3", "trl.learning_rate=1e-5", "trl.bf16=true",
                                           "trl.save_strategy=no", "trl.report_to=none",
                                           "model.lora.target_modules=q_proj,v_proj", "amir.max_pairs_per_group=none"])
    assert (cfg.algo, cfg.amir.beta, cfg.trl["learning_rate"], cfg.trl["bf16"]) == ("grpo", 0.3, 1e-5, True)
    assert cfg.model.lora.target_modules == ["q_proj", "v_proj"] and cfg.amir.max_pairs_per_group is None
    assert (cfg.trl["save_strategy"], cfg.trl["report_to"]) == ("no", "none")  # not YAML's False / None
    path = tmp_path / "r.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(str(path)).to_dict() == cfg.to_dict()


@pytest.mark.parametrize("args,message", [
    (["--set", "amir.bta=1"], "unknown recipe key 'amir.bta'; did you mean 'beta'?"),
    (["--set", "amir.beta=abc"], "amir.beta: expected float, got 'abc'"),
    (["--set", "amir.pairs=top3"], "amir.pairs: 'top3' is not one of all, top1"),
    (["--set", "trl.lerning_rate=1"], "unknown recipe key 'trl.lerning_rate'; did you mean 'learning_rate'?"),
    (["--set", "trl.num_generations=2.5"], "trl.num_generations: expected int, got 2.5"),
    (["--set", "trl.output_dir=x"], "trl.output_dir is set by amir-bench: use --out"),
    (["--set", "amir.beta"], "--set expects key=value"),
    (["--set", "amir.beta=0"], "amir.beta must be > 0"),
    (["--set", "amir.max_pairs_per_group=0"], "amir.max_pairs_per_group must be >= 1 (or none)"),
    (["--set", "model.name_or_path=no-such-org/no-such-model"], "cannot load base model 'no-such-org/no-such-model'"),
    (["--algo", "ppo"], "algo: 'ppo' is not one of grpo, amir-grpo"),
    (["--set", "model.name_or_path=/nonexistent/base"], "base model not found: /nonexistent/base"),
    (["--set", "trl.per_device_train_batch_size=12"], "must be a multiple of trl.num_generations"),
    (["--set", "trl.num_generations=1", "--set", "trl.per_device_train_batch_size=2"],
     "invalid trl settings"),
])
def test_bad_settings_are_one_line_errors(tmp_path, capsys, args, message):
    rc = cli("train", "--recipe", "tiny-cpu", "--out", str(tmp_path / "out"), *args)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: ") and "\n" not in err
    assert message in err
    assert not (tmp_path / "out" / "base").exists()  # nothing was built


@pytest.mark.parametrize("recipe,message", [
    ("no-such-recipe", "unknown recipe 'no-such-recipe'; built-in recipes: paper-gemma-3-4b"),
    ("missing/recipe.yaml", "recipe file not found: missing/recipe.yaml"),
])
def test_unknown_recipe(tmp_path, capsys, recipe, message):
    assert cli("train", "--recipe", recipe, "--out", str(tmp_path)) == 2
    assert message in capsys.readouterr().err


def test_bad_recipe_file_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("amir:\n  margn: 1.0\n")
    assert cli("train", "--recipe", str(bad), "--out", str(tmp_path / "o")) == 2
    assert f"{bad}: unknown recipe key 'amir.margn'; did you mean 'margin'?" in capsys.readouterr().err


def test_training_prompts_are_the_evaluation_prompts(tiny_ckpt):
    from transformers import AutoTokenizer

    from amir_bench.prompts import problem_prompt
    from training.train import build_dataset

    cfg = load_config("tiny-cpu", overrides=["data.limit=5"])
    tok = AutoTokenizer.from_pretrained(tiny_ckpt)
    ds, problems = build_dataset(cfg, tok)
    assert len(ds) == 5
    for row in ds:
        problem, spec = problems[row["problem_id"]]
        assert row["prompt"] == problem_prompt(problem, spec, "amir-xml", tok)


# ----------------------------------------------------------------------------- smoke runs


@pytest.fixture(scope="module")
def warm_base(tmp_path_factory) -> Path:
    """tiny-cpu's base with a short warm start: enough for varied rewards inside groups."""
    from training.train import build_tiny_base

    cfg = load_config("tiny-cpu", overrides=["model.tiny_sft_steps=40", "model.tiny_sft_lr=1e-2"])
    return build_tiny_base(cfg, tmp_path_factory.mktemp("warm") / "base")


SMOKE = ["--set", "trl.max_steps=3", "--set", "trl.save_steps=2", "--set", "amir.margin=0.01",
         "--set", "trl.max_completion_length=32"]


def params(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {n: p.detach().clone() for n, p in AutoModelForCausalLM.from_pretrained(path).named_parameters()}


def check_checkpoint(out: Path, base: Path, algo: str) -> list[dict]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoTokenizer.from_pretrained(out)
    AutoModelForCausalLM.from_pretrained(out)
    before, after = params(base), params(out)
    assert any(not torch.equal(before[n], after[n]) for n in before), "3 steps left the weights unchanged"
    saved = load_config(str(out / "recipe.yaml"))
    assert saved.algo == algo and saved.trl["max_steps"] == 3
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for key in ("loss", "reward", "reward_std", "accuracy", "completions/clipped_ratio",
                "rewards/correctness/mean", "rewards/strict_format/mean", "clip_ratio/region_mean"):
        assert key in steps[0], key
    assert any(r["reward_std"] > 0 for r in steps)
    return steps


@pytest.fixture(scope="module")
def amir_run(warm_base, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("amir") / "out"
    rc = cli("train", "--recipe", "tiny-cpu", "--algo", "amir-grpo", "--out", str(out),
             "--set", f"model.name_or_path={warm_base}", *SMOKE)
    assert rc == 0
    return out


@pytest.mark.slow
def test_smoke_amir_grpo_via_cli(amir_run, warm_base):
    steps = check_checkpoint(amir_run, warm_base, "amir-grpo")
    for key in ("amir/pairs", "amir/mean_gap", "amir/pref_loss", "amir/lambda", "amir/margin"):
        assert key in steps[0], key
    assert sum(r["amir/pairs"] for r in steps) > 0
    assert (amir_run / "checkpoint-2" / "amir_state.json").exists()


@pytest.mark.slow
def test_smoke_grpo(warm_base, tmp_path, capsys):
    from training.train import train

    out = tmp_path / "out"
    cfg = load_config("tiny-cpu", "grpo", [f"model.name_or_path={warm_base}", *SMOKE[1::2]])
    train(cfg, out, quiet=True)
    steps = check_checkpoint(out, warm_base, "grpo")
    assert not any(k.startswith("amir/") for k in steps[0])
    assert "'loss'" not in capsys.readouterr().out  # quiet: metrics go to metrics.jsonl only


@pytest.mark.slow
def test_resume_and_refuse_to_clobber(amir_run, warm_base, capsys):
    base_args = ["train", "--recipe", "tiny-cpu", "--algo", "amir-grpo", "--out", str(amir_run),
                 "--set", f"model.name_or_path={warm_base}", *SMOKE]
    assert cli(*base_args) == 2
    assert "already holds a training run; pass --resume" in capsys.readouterr().err
    assert cli(*base_args, "--set", "amir.beta=0.5", "--resume") == 2
    assert "different recipe" in capsys.readouterr().err
    # resume from the last checkpoint (checkpoint-3: the end of training is saved too) to step 4
    assert (amir_run / "checkpoint-3").exists()
    assert cli(*base_args, "--set", "trl.max_steps=4", "--resume") == 0
    rows = [json.loads(line) for line in (amir_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert json.loads((amir_run / "train_info.json").read_text())["global_step"] == 4


@pytest.mark.slow
def test_checkpoint_evaluates_with_amir_bench_run(amir_run, tmp_path):
    run = tmp_path / "run"
    rc = cli("run", "--ckpt", str(amir_run), "--benchmarks", "arith", "--n", "2", "--limit", "2",
             "--max-new-tokens", "16", "--template", "amir-xml", "--backend", "hf", "--out", str(run))
    assert rc == 0
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["benchmark"] == "arith" for r in rows)


@pytest.mark.slow
def test_tiny_base_is_built_and_lora_adapter_records_it(tmp_path):
    from peft import PeftConfig

    from amir_bench.backends.hf import resolve_checkpoint
    from training.train import train

    out = tmp_path / "lora"
    cfg = load_config("tiny-cpu", "amir-grpo", ["model.tiny_sft_steps=0", "model.lora.enabled=true",
                                                "model.lora.r=4", "trl.max_steps=1", "trl.max_completion_length=8"])
    train(cfg, out)
    assert (out / "base" / "config.json").exists()
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str((out / "base").resolve())
    assert PeftConfig.from_pretrained(out).base_model_name_or_path == adapter["base_model_name_or_path"]
    base, adapter_dir, tok = resolve_checkpoint(str(out))
    assert (base, adapter_dir) == (adapter["base_model_name_or_path"], str(out))


def test_default_config_is_complete():
    cfg = TrainConfig()
    assert set(cfg.to_dict()) == {"algo", "seed", "model", "data", "reward", "amir", "trl"}
