"""Step time and peak memory of GRPO, AMIR-GRPO and the paper's-code approach, side by side.

    python perf/train_step_ratio.py                       # tiny-cpu, CPU (a few minutes)
    python perf/train_step_ratio.py --gpu-shape           # Qwen2.5-0.5B shape, G=8, 256 tokens

Variants (same recipe, same seed, runs interleaved round by round in rotating order):
  grpo        what `amir-bench train --algo grpo` runs: SharedPrefixGRPOTrainer (TRL's
              GRPOTrainer; its loss forward runs the prompt prefix a micro-batch shares once,
              as the two other variants' forwards do)
  amir-grpo   training.trainer.AmirGRPOTrainer: ℓ from the GRPO forward (zero extra forwards)
  paper-code  the paper's approach: ℓ from a second, grad-enabled forward over both members
              of every pair (one batched forward per micro-batch; the paper's code does more:
              it re-scores every pair of the whole generation batch in every micro-batch)

Reported per variant (medians over every run's steps, the first step of each run dropped):
optimizer-step time (generation included) and update time (step minus generation + reward
scoring), in wall-clock seconds and, on CPU, in process CPU seconds (steadier on a shared
machine; runs use 1 torch thread by default); ratios to GRPO; peak memory (CPU: peak RSS of an
isolated worker process; GPU: torch.cuda.max_memory_allocated); mined pairs per step. The default reward is a
deterministic hash of the completion's token ids (rewards 0..3 in every group, so every group
has pairs: the paper's approach at its most expensive); `--reward recipe` uses the recipe's.
λ is fixed at 0 by default (`--lam`): the AMIR work is all still done (mining, ℓ, the pair loss,
its backward, the paper-code forward), but every variant then follows GRPO's updates exactly
(a tested invariant), so the variants generate the same completions step by step and the
time differences are pure overhead rather than different completion lengths.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VARIANTS = ("grpo", "amir-grpo", "paper-code")

# Qwen2.5-0.5B's architecture (random weights; no Hub access needed).
QWEN25_05B = dict(vocab_size=151_936, hidden_size=896, intermediate_size=4_864, num_hidden_layers=24,
                  num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32_768,
                  rope_theta=1_000_000.0, tie_word_embeddings=True, rms_norm_eps=1e-6)


def hash_reward(prompts, completions, completion_ids, **_):
    """Deterministic pseudo-random reward in {0, 1, 2, 3} from the completion's token ids."""
    return [float((sum(ids) * 2_654_435_761 + len(ids)) % 4) for ids in completion_ids]


def trainer_classes() -> dict[str, type]:
    """Variant name -> trainer class (the paper-code variant is defined here, for measurement only)."""
    import torch
    from trl import GRPOTrainer

    from training.objectives import mine_pairs, preference_loss, sequence_logp
    from training.train import trainer_class
    from training.trainer import AmirGRPOTrainer

    class PaperCodeTrainer(AmirGRPOTrainer):
        """GRPO loss, then a second grad-enabled forward over [chosen; rejected] rows for ℓ."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = GRPOTrainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
            mask = inputs["completion_mask"]
            pairs = mine_pairs(inputs["amir_reward"], inputs["amir_group"], self.amir.margin,
                               self.amir.pairs, self.amir.max_pairs_per_group)  # (P, 2)
            self._pc_pairs = getattr(self, "_pc_pairs", 0) + pairs.shape[0]
            if self.accelerator.sync_gradients:  # pairs per optimizer step, as AmirGRPOTrainer logs
                self._metrics["train"]["amir/pairs"].append(float(self._pc_pairs))
                self._pc_pairs = 0
            if pairs.numel() == 0:
                return loss
            rows = torch.cat([pairs[:, 0], pairs[:, 1]])  # (2P,)
            ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)[rows]  # (2P, T)
            am = torch.cat([inputs["prompt_mask"], mask], 1)[rows]  # (2P, T)
            token_logps, _, _ = self._get_per_token_logps_and_entropies(
                model, ids, am, inputs["completion_ids"].size(1))  # the extra forward, with grad
            ell = sequence_logp(token_logps, mask[rows])  # (2P,)
            n = pairs.shape[0]
            pref = preference_loss(ell[:n], ell[n:], self.amir.beta)
            return loss + self._amir_schedule.value * pref / self.current_gradient_accumulation_steps

    return {"grpo": trainer_class("grpo"), "amir-grpo": AmirGRPOTrainer,
            "paper-code": PaperCodeTrainer}


# ----------------------------------------------------------------------------- setup


def build_base(gpu_shape: bool, reward: str, dest: Path) -> Path:
    """The starting checkpoint every variant loads (built once, shared by all runs)."""
    from training.config import load_config
    from training.train import build_tiny_base

    if not gpu_shape:
        sft = [] if reward == "recipe" else ["model.tiny_sft_steps=0"]
        return build_tiny_base(load_config("tiny-cpu", overrides=sft), dest)
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from amir_bench.tiny import build_tokenizer

    tok = build_tokenizer()
    cfg = Qwen2Config(**QWEN25_05B, bos_token_id=None, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def overrides(gpu_shape: bool, base: Path, steps: int, lam: float) -> list[str]:
    sets = [f"model.name_or_path={base}", f"trl.max_steps={steps}", "trl.save_strategy=no",
            "trl.logging_steps=1", "amir.lambda_schedule=fixed", f"amir.lambda_init={lam}"]
    if gpu_shape:
        import torch

        on_gpu = torch.cuda.is_available()  # without one this is only a plumbing check
        sets += ["model.dtype=bfloat16", f"trl.use_cpu={not on_gpu}", "trl.bf16=true", "trl.num_generations=8",
                 "trl.per_device_train_batch_size=8", "trl.gradient_accumulation_steps=2",
                 "trl.max_completion_length=256", "data.template=boxed"]
    return sets


# ----------------------------------------------------------------------------- one measured run


def rss_kb() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def run_variant(variant: str, gpu_shape: bool, base: Path, steps: int, reward: str, lam: float,
                out: Path) -> dict:
    """Train `steps` optimizer steps with one variant; per-step timings and peak memory."""
    import resource

    import torch

    from training.config import load_config
    from training.rewards import make_reward_funcs
    from training.train import build_dataset, grpo_args, load_model_and_tokenizer, peft_config

    cfg = load_config("tiny-cpu", algo="amir-grpo" if variant != "grpo" else "grpo",
                      overrides=overrides(gpu_shape, base, steps, lam))
    if gpu_shape:
        cfg.trl["generation_kwargs"] = {"min_new_tokens": 256}  # every completion is 256 tokens
    model, tok = load_model_and_tokenizer(cfg, str(base))
    dataset, problems = build_dataset(cfg, tok)
    grader = None
    if reward == "recipe":
        from amir_bench.grading import Grader
        grader = Grader(timeout=cfg.reward.grader_timeout, workers=cfg.reward.grader_workers)
        funcs = make_reward_funcs(cfg.reward.preset, problems, grader)
    else:
        funcs = [hash_reward]
    cls = trainer_classes()[variant]
    kwargs = {"amir": cfg.amir} if variant != "grpo" else {}
    trainer = cls(model=model, reward_funcs=funcs, args=grpo_args(cfg, out), train_dataset=dataset,
                  processing_class=tok, peft_config=peft_config(cfg), **kwargs)
    cuda = torch.cuda.is_available() and not trainer.args.use_cpu
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    clocks = {"wall": time.perf_counter, "cpu": time.process_time}
    gen = {k: [] for k in clocks}  # per generation batch
    steps = {k: [] for k in clocks}  # per optimizer step (its micro-steps summed)
    acc = {k: 0.0 for k in clocks}
    micro = [0]
    generate, training_step = trainer._generate_and_score_completions, trainer.training_step

    def timed_generate(inputs):
        t0 = {k: c() for k, c in clocks.items()}
        result = generate(inputs)
        sync()
        for k, c in clocks.items():
            gen[k].append(c() - t0[k])
        return result

    def timed_step(*a, **kw):
        t0 = {k: c() for k, c in clocks.items()}
        out = training_step(*a, **kw)
        sync()  # count the backward's kernels in this step, not the next one's generation
        for k, c in clocks.items():
            acc[k] += c() - t0[k]
        micro[0] += 1
        if micro[0] % trainer.args.gradient_accumulation_steps == 0:
            for k in clocks:
                steps[k].append(acc[k])
                acc[k] = 0.0
        return out

    trainer._generate_and_score_completions, trainer.training_step = timed_generate, timed_step
    if variant != "grpo":
        # TRL shuffles each generation batch with the *global* torch RNG; the AMIR trainer's
        # group-aligned shuffle uses its own generator. Draw the same permutation TRL would, so all
        # variants share one RNG stream and sample the same completions.
        prepare, every = trainer._prepare_inputs, trainer.args.steps_per_generation * trainer.num_iterations

        def same_rng_prepare(batch):
            fresh = trainer._step % every == 0 or trainer._buffered_inputs is None
            out = prepare(batch)
            if fresh and trainer.model.training:
                torch.randperm(trainer.args.per_device_train_batch_size * trainer.args.steps_per_generation)
            return out

        trainer._prepare_inputs = same_rng_prepare
    if cuda:
        sync()
        torch.cuda.reset_peak_memory_stats()
    rss_before = rss_kb()
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    one_generation_per_step = len(gen["wall"]) == len(steps["wall"])  # steps_per_generation == grad accum
    result = {
        "variant": variant,
        "step_time": steps["wall"], "cpu_step_time": steps["cpu"] if not cuda else None,
        "generation_time": gen["wall"],
        "update_time": [a - b for a, b in zip(steps["wall"], gen["wall"])] if one_generation_per_step else None,
        "cpu_update_time": [a - b for a, b in zip(steps["cpu"], gen["cpu"])]
        if one_generation_per_step and not cuda else None,
        "pairs": [h.get("amir/pairs") for h in logs],
        "completion_length": [h.get("completions/mean_length") for h in logs],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)",
    }
    if grader is not None:
        grader.close()
    return result


# ----------------------------------------------------------------------------- report

METRICS = (("step_time", "step s"), ("update_time", "update s"),
           ("cpu_step_time", "cpu step s"), ("cpu_update_time", "cpu update s"))


def median_after_warmup(xs: list[float] | None) -> float | None:
    xs = [x for x in (xs or [])[1:] if x is not None]  # step 1 pays one-off costs
    return statistics.median(xs) if xs else None


def summarize(runs: list[dict]) -> list[dict]:
    """One row per variant: medians over all runs' steps (step 1 of each run dropped), ratios to GRPO."""
    rows = []
    for v in VARIANTS:
        mine = [r for r in runs if r["variant"] == v]
        if not mine:
            continue
        row: dict = {"variant": v, "runs": len(mine)}
        for key, _ in METRICS:
            xs = [x for r in mine for x in (r.get(key) or [])[1:]]
            row[key] = statistics.median(xs) if xs else None
        pairs = [p for r in mine for p in r["pairs"] if p is not None]
        lengths = [x for r in mine for x in r["completion_length"] if x is not None]
        row["completion_length"] = statistics.mean(lengths) if lengths else None
        row["peak_mb"] = max(r["peak_cuda_mb"] if r["peak_cuda_mb"] is not None else r["peak_rss_mb"] for r in mine)
        row["rss_growth_mb"] = max(r["rss_growth_mb"] for r in mine)
        row["pairs_per_step"] = statistics.mean(pairs) if pairs else None
        rows.append(row)
    ref = rows[0]
    for row in rows:
        for key in [k for k, _ in METRICS] + ["peak_mb"]:
            row[key + "_ratio"] = row[key] / ref[key] if row[key] and ref[key] else None
    return rows


def print_table(rows: list[dict], device: str, gpu_shape: bool) -> None:
    fmt = lambda x, p=3: "-" if x is None else f"{x:.{p}f}"  # noqa: E731
    shape = "Qwen2.5-0.5B shape (random), G=8, 256-token completions" if gpu_shape else "tiny-cpu"
    print(f"\ndevice: {device}   model: {shape}   (medians; ratio = variant / grpo)")
    cols = [(k, name) for k, name in METRICS if any(r[k] is not None for r in rows)]
    head = f"{'variant':<12}" + "".join(f"{name:>14}{'ratio':>7}" for _, name in cols)
    peak = "peak RSS MB" if device.startswith("cpu") else "peak CUDA MB"
    print(head + f"{peak:>14}{'ratio':>7}{'pairs/step':>12}{'mean len':>10}")
    for r in rows:
        line = f"{r['variant']:<12}" + "".join(f"{fmt(r[k]):>14}{fmt(r[k + '_ratio']):>7}" for k, _ in cols)
        print(line + f"{fmt(r['peak_mb'], 0):>14}{fmt(r['peak_mb_ratio']):>7}{fmt(r['pairs_per_step'], 1):>12}"
              f"{fmt(r['completion_length'], 1):>10}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpu-shape", action="store_true", help="random Qwen2.5-0.5B-shaped model, G=8, 256 tokens")
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per run (the first is warm-up)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds over the variants")
    ap.add_argument("--reward", choices=("hash", "recipe"), default="hash")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--lam", type=float, default=0.0,
                    help="fixed λ of the AMIR variants; 0 (default) keeps every variant on GRPO's exact "
                         "trajectory (same completions step by step) while all AMIR work is still done")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads per run (1: CPU time is stable on a shared machine)")
    ap.add_argument("--isolate", choices=("auto", "yes", "no"), default="auto",
                    help="one process per run (peak RSS per run); auto = yes on CPU, no on GPU")
    ap.add_argument("--json", type=Path, help="also write the raw runs and the table here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--base", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    if args.worker:  # one isolated run
        with tempfile.TemporaryDirectory() as tmp:
            res = run_variant(args.worker, args.gpu_shape, args.base, args.steps, args.reward, args.lam,
                              Path(tmp))
        args.result.write_text(json.dumps(res))
        return 0

    variants = [v for v in args.variants.split(",") if v]
    isolate = args.isolate == "yes" or (args.isolate == "auto" and not torch.cuda.is_available())
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = build_base(args.gpu_shape, args.reward, Path(tmp) / "base")
        for rnd in range(args.repeats):
            order = variants[rnd % len(variants):] + variants[:rnd % len(variants)]
            for v in order:
                t0 = time.perf_counter()
                if isolate:
                    result = Path(tmp) / f"{v}-{rnd}.json"
                    cmd = [sys.executable, __file__, "--worker", v, "--base", str(base), "--result", str(result),
                           "--steps", str(args.steps), "--reward", args.reward, "--threads", str(args.threads),
                           "--lam", str(args.lam)] + \
                          (["--gpu-shape"] if args.gpu_shape else [])
                    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                    if proc.returncode:
                        sys.stderr.write(proc.stderr[-3000:])
                        return proc.returncode
                    res = json.loads(result.read_text())
                else:
                    res = run_variant(v, args.gpu_shape, base, args.steps, args.reward, args.lam,
                                      Path(tmp) / f"{v}-{rnd}")
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                res["round"] = rnd
                runs.append(res)
                print(f"round {rnd} {v:<11} median step {median_after_warmup(res['step_time']):.3f}s "
                      f"({time.perf_counter() - t0:.0f}s wall)", flush=True)
    rows = summarize(runs)
    print_table(rows, runs[0]["device"], args.gpu_shape)
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "table": rows, "args": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
