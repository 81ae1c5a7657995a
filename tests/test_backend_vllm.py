"""vLLM backend: selection and the missing-extra error run everywhere; generation and scoring
run only where the `vllm` extra and a CUDA device are present (skipped otherwise)."""

from __future__ import annotations

import importlib.util

import pytest

from amir_bench.backends import Decoding, Request, make_backend, resolve_backend_name
from amir_bench.errors import UserError

HAVE_VLLM = importlib.util.find_spec("vllm") is not None


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


@pytest.mark.skipif(HAVE_VLLM and _cuda(), reason="vllm and CUDA present: auto picks vllm")
def test_auto_picks_hf_without_vllm_and_cuda():
    assert resolve_backend_name("auto") == "hf"
    with pytest.raises(UserError, match="unknown backend 'tgi'"):
        resolve_backend_name("tgi")


@pytest.mark.skipif(HAVE_VLLM, reason="vllm is installed")
def test_vllm_backend_without_the_extra_is_a_one_line_error(tiny_ckpt):
    with pytest.raises(UserError, match=r"pip install 'amir-bench\[vllm\]'"):
        make_backend("vllm", str(tiny_ckpt))


@pytest.mark.vllm
@pytest.mark.skipif(not (HAVE_VLLM and _cuda()), reason="needs the vllm extra and a CUDA GPU")
def test_vllm_generates_reproducibly_and_scores(tiny_ckpt):
    be = make_backend("vllm", str(tiny_ckpt), seed=0, gpu_memory_utilization=0.3)
    dec = Decoding(n=4, temperature=1.0, max_new_tokens=16, seed=3)
    reqs = [Request(f"p{i}", f"Question: {i} plus {i}?", (0, 1, 2, 3)) for i in range(4)]
    runs = []
    for _ in range(2):
        got = {}
        be.generate(reqs, dec, lambda b: got.update({(r.key, s): g for r, gens in b
                                                       for s, g in gens.items()}))
        runs.append(got)
    assert len(runs[0]) == 16
    assert {k: g.text for k, g in runs[0].items()} == {k: g.text for k, g in runs[1].items()}
    g = runs[0][("p0", 0)]
    assert g.finish_reason in ("stop", "length") and g.logprob_sum <= 0
    scores = be.score([reqs[0].prompt], [g.text])[0]
    assert all(x <= 0 for x in scores)
