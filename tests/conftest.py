"""Shared fixtures: the shared benchmark data folder and a tiny checkpoint built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("AMIR_BENCH_DATA_DIR") or REPO.parent / "shared" / "data")

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see amir_bench/cli.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "math500.jsonl").exists():
        pytest.skip(f"shared benchmark data not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A tiny random Llama checkpoint with a byte-level BPE tokenizer (built on the fly)."""
    from amir_bench.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt", seed=0)
