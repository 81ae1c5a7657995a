"""Two processes on CPU (gloo): pairs stay inside groups across ranks.

Launched with `torch.distributed.run --nproc_per_node 2` (which accelerate's Accelerator picks
up as a MULTI_CPU gloo run): `accelerate launch --cpu --num_processes 2` starts a single
process unless an MPI launcher is installed.

Each rank dumps what its micro-batches held; the test checks that every row's reward is the
reward of its own completion (TRL gathers rewards over ranks; the trainer must slice its
own rows back out), that a group id names one prompt on one rank only, that mined pairs
never cross groups, and that λ stays identical on both ranks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

WORKER = r'''
import json, sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig

import training.trainer as tr
from training.config import AmirSection
from training.trainer import AmirGRPOTrainer


def reward(prompts, completions, completion_ids, **_):
    return [float(sum(ids) % 3) for ids in completion_ids]


ckpt, out = Path(sys.argv[1]), Path(sys.argv[2])
tok = AutoTokenizer.from_pretrained(ckpt)
model = AutoModelForCausalLM.from_pretrained(ckpt)
prompts = [tok.apply_chat_template([{"role": "user", "content": f"Ada has {i} apples."}],
                                   tokenize=False, add_generation_prompt=True) for i in range(16)]
args = GRPOConfig(output_dir=str(out / "trl"), num_generations=4, per_device_train_batch_size=4,
                  gradient_accumulation_steps=2, max_completion_length=6, max_steps=2,
                  learning_rate=1e-2, loss_type="grpo", report_to="none", save_strategy="no",
                  disable_tqdm=True, use_cpu=True, bf16=False, seed=0, logging_steps=1)
trainer = AmirGRPOTrainer(model=model, reward_funcs=[reward], args=args,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                          processing_class=tok,
                          amir=AmirSection(margin=0.5, lambda_schedule="ratio", lambda_init=0.01))
rank = trainer.accelerator.process_index
records = {"rank": rank, "world": trainer.accelerator.num_processes, "micro_batches": [], "lambdas": [],
           "backend": torch.distributed.get_backend()}
real_mine = tr.mine_pairs
current = {}


def spy(rewards, groups, *a, **k):
    pairs = real_mine(rewards, groups, *a, **k)
    current["pairs"] = pairs.tolist()
    return pairs


tr.mine_pairs = spy
real_loss = AmirGRPOTrainer.compute_loss


def compute_loss(self, model, inputs, *a, **k):
    loss = real_loss(self, model, inputs, *a, **k)
    records["micro_batches"].append({
        "prompts": tok.batch_decode(inputs["prompt_ids"], skip_special_tokens=True),
        "completion_ids": [ids[m.bool()].tolist() for ids, m in zip(inputs["completion_ids"], inputs["completion_mask"])],
        "group": inputs["amir_group"].tolist(),
        "reward": inputs["amir_reward"].tolist(),
        "pairs": current["pairs"],
    })
    records["lambdas"].append(self._amir_schedule.value)
    return loss


AmirGRPOTrainer.compute_loss = compute_loss
trainer.train()
(out / f"rank{rank}.json").write_text(json.dumps(records))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_groups_and_rewards(tiny_ckpt, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(free_port()), str(script), str(tiny_ckpt), str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["world"], r["backend"]) for r in ranks] == [(2, "gloo"), (2, "gloo")]
    assert ranks[0]["lambdas"] == ranks[1]["lambdas"]  # λ is stepped from reduced stats
    owner: dict[tuple[int, int], int] = {}  # (generation round, group id) -> rank
    prompt_of: dict[tuple[int, int], str] = {}
    pairs_total = 0
    for rec in ranks:
        assert len(rec["micro_batches"]) == 4  # 2 steps x 2 accumulation steps
        for k, mb in enumerate(rec["micro_batches"]):
            round_ = k // 2  # a new generation batch every 2 micro-batches
            # every row's reward is its own completion's (the gathered vector was sliced right)
            assert mb["reward"] == [float(sum(ids) % 3) for ids in mb["completion_ids"]]
            groups = mb["group"]
            assert sorted(groups.count(g) for g in set(groups)) == [4]  # one whole group per micro-batch
            for g, prompt in zip(groups, mb["prompts"]):
                assert owner.setdefault((round_, g), rec["rank"]) == rec["rank"]
                assert prompt_of.setdefault((round_, g), prompt) == prompt
            for c, r in mb["pairs"]:
                assert groups[c] == groups[r]
                assert mb["reward"][c] - mb["reward"][r] > 0.5
            pairs_total += len(mb["pairs"])
    # global group ids: each round has groups 0..3, two on each rank
    for round_ in (0, 1):
        assert sorted(g for (r, g) in owner if r == round_) == [0, 1, 2, 3]
        assert sorted(owner[(round_, g)] for g in range(4)) == [0, 0, 1, 1]
    assert pairs_total > 0
