"""Compared runs made under different prompts, decoding or budgets: one warning line each,
from coverage / length / margin and in the report's setup section."""

from __future__ import annotations

import json

import pytest
from runfactory import make_run

from amir_bench.cli import main
from amir_bench.setup_compare import setup_warnings

LM_PROMPT = {"source": "lm-eval", "per_sample": True,
             "tasks": {"gsm8k": {"task_version": 3.0, "num_fewshot": 5, "chat_template": False}}}


def _m(**decoding) -> dict:
    d = {"n": 4, "temperature": 0.6, "top_p": 1.0, "top_k": 0, "max_new_tokens": 256, "seed": 0}
    return {"template": "boxed", "decoding": {**d, **decoding}}


def test_same_setup_warns_nothing_even_with_other_seeds_and_n():
    assert setup_warnings([_m(), _m(seed=3, n=8)], ["a", "b"]) == []


def test_each_difference_is_one_named_line():
    lm = dict(_m(max_new_tokens=96, temperature=0.0), template="lm-eval:gsm8k",
              prompt=LM_PROMPT)
    w = setup_warnings([_m(), lm], ["mine", "lm"])
    assert w == [
        "runs differ in prompt: mine: template boxed; lm: lm-eval gsm8k v3.0 5-shot",
        "runs differ in decoding: mine: temperature 0.6, top_p 1.0, top_k 0; lm: greedy",
        "runs differ in max tokens: mine: 256; lm: 96",
    ]
    unknown = {"template": "boxed", "decoding": {"n": 2, "temperature": None}}
    assert setup_warnings([_m(), unknown], ["a", "b"])[-1] == \
        "runs differ in max tokens: a: 256; b: unknown"


def test_exported_task_run_without_chat_template_is_another_prompt():
    via_lm = dict(_m(), prompt={"source": "lm-eval", "tasks": {
        "amir_gsm8k": {"chat_template": False}}})
    (w,) = setup_warnings([_m(), via_lm], ["a", "b"])
    assert w == "runs differ in prompt: a: template boxed; b: template boxed (lm-eval without " \
                "chat template)"


@pytest.mark.parametrize("cmd", ["coverage", "length"])
def test_analysis_commands_print_the_warnings(tmp_path, monkeypatch, capsys, cmd):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "a", {"p1": 1, "p2": 0}, n=4)
    make_run(tmp_path / "b", {"p1": 2, "p2": 1}, n=4,
             manifest={"decoding": {"max_new_tokens": 96}})
    assert main([cmd, "a", "b", "--resamples", "50"]) == 0
    out = capsys.readouterr().out
    assert "warning: runs differ in max tokens: a: 1024; b: 96" in " ".join(out.split())
    assert "runs differ in prompt" not in out


def test_report_shows_the_warnings_in_setup(tmp_path, capsys):
    make_run(tmp_path / "a", {"p1": 1, "p2": 0}, n=4)
    make_run(tmp_path / "b", {"p1": 2, "p2": 1}, n=4,
             manifest={"template": "lm-eval:gsm8k", "prompt": LM_PROMPT})
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out",
                 str(tmp_path / "rep"), "--resamples", "50"]) == 0
    err = capsys.readouterr().err
    line = "runs differ in prompt: a: template boxed; b: lm-eval gsm8k v3.0 5-shot"
    assert f"warning: {line}" in err
    md = (tmp_path / "rep" / "report.md").read_text()
    setup = md.split("Setup and provenance", 1)[1]
    assert f"Warning: {line}" in setup
    assert "| prompt | template boxed | lm-eval gsm8k v3.0 5-shot |" in setup
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["setup_warnings"] == [line]
    assert [r["prompt"] for r in data["runs"]] == ["template boxed", "lm-eval gsm8k v3.0 5-shot"]
