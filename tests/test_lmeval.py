"""lm-eval both ways, with the real `lm_eval` on a tiny model, offline.

Local-file copies of lm-eval's own gsm8k (two filters), hendrycks_math500 (with `repeats: 4`)
and aime24 tasks read JSONL built here from the shared data; one lm_eval run writes what it
writes, and `amir-bench import --format lm-eval` reads it unedited. The export round trip
runs lm_eval greedy on an exported task and compares with `amir-bench run`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from amir_bench.cli import main
from amir_bench.records import load_run, read_samples

lm_eval = pytest.importorskip("lm_eval", reason="the lm-eval extra is not installed")

LIMIT = 3
CAP = 24  # max_gen_toks
TASKS_SRC = Path(lm_eval.__file__).parent / "tasks"


def _rows(path: Path, n: int) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()[:n]]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _local_copy(src: Path, dst: Path, files: dict[str, Path], extra: str = "") -> None:
    """lm-eval's task YAML with its dataset pointed at local JSONL files (split -> file)."""
    text = src.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(dataset_name|dataset_path):.*\n", "", text)
    kw = "".join(f"    {split}: {json.dumps(str(p))}\n" for split, p in files.items())
    dst.write_text(text + "dataset_path: json\ndataset_kwargs:\n  data_files:\n" + kw + extra,
                   encoding="utf-8")


def _lm_eval(args: list[str], cwd: Path) -> None:
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_DATASETS_CACHE=str(cwd / "hf-datasets"), TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, "-m", "lm_eval", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="session")
def lively_ckpt(tmp_path_factory, tiny_ckpt) -> Path:
    """The tiny checkpoint with weights scaled up (greedy outputs vary instead of repeating
    one token) and a larger end-of-sequence embedding (some outputs stop, some hit the cap)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("lively") / "ckpt"
    tok = AutoTokenizer.from_pretrained(tiny_ckpt)
    model = AutoModelForCausalLM.from_pretrained(tiny_ckpt, dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.mul_(5.0)
        model.get_input_embeddings().weight[tok.eos_token_id].mul_(4.0)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def lm_tasks(tmp_path_factory, data_dir) -> Path:
    """Copies of lm-eval's gsm8k, hendrycks_math500 (repeats: 4) and aime24 on local data.
    (minerva_math500 needs lm-eval's `math` extra, whose antlr4 4.11 pin changes amir-bench's
    verdicts on percent answers; hendrycks_math500 reads the same MATH-500 docs.)"""
    d = tmp_path_factory.mktemp("lm-tasks")
    gsm = [{"question": r["problem"], "answer": r["solution"]}
           for r in _rows(data_dir / "gsm8k_test.jsonl", LIMIT)]
    gsm_train = [{"question": r["problem"], "answer": r["solution"]}
                 for r in _rows(data_dir / "gsm8k_train.jsonl", 8)]
    _local_copy(TASKS_SRC / "gsm8k" / "gsm8k.yaml", d / "gsm8k.yaml",
                {"train": _write_jsonl(d / "gsm8k_train.jsonl", gsm_train),
                 "test": _write_jsonl(d / "gsm8k_test.jsonl", gsm)})
    math = [{"problem": r["problem"], "solution": r["solution"], "answer": r["answer"],
             "subject": r["subject"], "level": r["level"], "unique_id": r["id"]}
            for r in _rows(data_dir / "math500.jsonl", LIMIT)]
    (d / "math").mkdir()
    for f in ("hendrycks_math_algebra.yaml", "utils.py"):
        shutil.copy(TASKS_SRC / "hendrycks_math" / f, d / "math" / f)
    _local_copy(TASKS_SRC / "hendrycks_math" / "hendrycks_math500.yaml",
                d / "math" / "hendrycks_math500.yaml",
                {"test": _write_jsonl(d / "math" / "math500.jsonl", math)}, extra="repeats: 4\n")
    aime = [{"ID": r["id"], "Problem": r["problem"], "Solution": r["solution"],
             "Answer": int(r["answer"])} for r in _rows(data_dir / "aime24.jsonl", LIMIT)]
    (d / "aime").mkdir()
    shutil.copy(TASKS_SRC / "aime" / "utils.py", d / "aime" / "utils.py")
    _local_copy(TASKS_SRC / "aime" / "aime24.yaml", d / "aime" / "aime24.yaml",
                {"train": _write_jsonl(d / "aime" / "aime24.jsonl", aime)})
    return d


@pytest.fixture(scope="session")
def lm_output(tmp_path_factory, lm_tasks, lively_ckpt) -> Path:
    """One real lm_eval run of the three tasks (--limit, --log_samples, a max_gen_toks cap)."""
    out = tmp_path_factory.mktemp("lm-out")
    _lm_eval(["--model", "hf", "--model_args", f"pretrained={lively_ckpt},dtype=float32",
              "--include_path", str(lm_tasks), "--tasks", "gsm8k,hendrycks_math500,aime24",
              "--num_fewshot", "0", "--limit", str(LIMIT), "--gen_kwargs",
              f"max_gen_toks={CAP}", "--batch_size", "4", "--device", "cpu",
              "--log_samples", "--output_path", str(out)], cwd=out)
    return out


def _samples_file(out: Path, task: str) -> Path:
    (path,) = list(out.rglob(f"samples_{task}_*.jsonl"))
    return path


@pytest.mark.slow
def test_import_real_lm_eval_tasks(lm_output, lively_ckpt, data_dir, tmp_path, capsys):
    reasons = set()
    for task, bench, n in (("gsm8k", "gsm8k", 1), ("hendrycks_math500", "math500", 4),
                           ("aime24", "aime24", 1)):
        out = tmp_path / task
        assert main(["import", str(_samples_file(lm_output, task)), "--format", "lm-eval",
                     "--benchmark", bench, "--out", str(out), "--data-dir", str(data_dir)]) == 0
        printed = capsys.readouterr().out
        run = load_run(out)
        lines = [json.loads(x) for x in _samples_file(lm_output, task).read_text().splitlines()]
        first = lines[0]
        # one record per (problem, repeat); outputs kept verbatim, in order
        assert len(run.samples) == LIMIT * n
        assert {r.sample_idx for r in run.samples} == set(range(n))
        by_key = {(r.problem_id, r.sample_idx): r for r in run.samples}
        assert len({r.problem_id for r in run.samples}) == LIMIT
        outputs = [r for r in run.samples if r.problem_id == run.samples[0].problem_id]
        assert [r.completion for r in sorted(outputs, key=lambda r: r.sample_idx)] == \
            [x for resp in first["resps"] for x in resp]
        # the exact prompt lm-eval used is kept per sample
        assert all(r.prompt == first["arguments"]["gen_args_0"]["arg_0"] for r in outputs)
        # the cap and the model are in the manifest; truncation is marked from the cap
        m = run.manifest
        assert m["decoding"]["max_new_tokens"] == CAP and m["decoding"]["n"] == n
        assert m["decoding"]["temperature"] == 0.0
        assert m["checkpoint"]["path"] == str(lively_ckpt) and m["checkpoint"]["sha256"]
        assert m["backend"] == "lm-eval:hf" and m["lm_eval"]["version"]
        assert m["template"] == f"lm-eval:{task}"
        assert m["prompt"]["tasks"][task]["num_fewshot"] == 0
        for r in run.samples:
            assert r.finish_reason in ("stop", "length")
            assert r.num_tokens <= CAP and (r.finish_reason == "stop" or r.num_tokens == CAP)
        reasons |= {r.finish_reason for r in run.samples}
        # lm-eval's own verdicts are kept next to ours and the agreement is printed
        ref = [r for r in run.samples if r.ref_correct is not None]
        assert len(ref) == LIMIT and all(r.sample_idx == 0 for r in ref)
        assert all(r.ref_source.startswith(f"lm-eval:{task}/") for r in ref)
        assert f"verdicts agree with lm-eval:{task}/" in printed
        assert all(by_key[(r.problem_id, 0)] is r for r in ref)
    assert reasons == {"stop", "length"}  # outputs that stopped and outputs cut at the cap


@pytest.mark.slow
def test_import_two_filters_keeps_one_and_names_it(lm_output, data_dir, tmp_path, capsys):
    src = _samples_file(lm_output, "gsm8k")
    lines = [json.loads(x) for x in src.read_text().splitlines()]
    assert {x["filter"] for x in lines} == {"strict-match", "flexible-extract"}
    assert main(["import", str(src), "--format", "lm-eval", "--benchmark", "gsm8k",
                 "--out", str(tmp_path / "a"), "--data-dir", str(data_dir)]) == 0
    printed = capsys.readouterr().out
    assert "filter strict-match (of strict-match, flexible-extract)" in printed
    recs = read_samples(tmp_path / "a" / "samples.jsonl")
    assert {r.ref_source.split("/")[1] for r in recs} == {"strict-match"}
    assert main(["import", str(src), "--format", "lm-eval", "--benchmark", "gsm8k",
                 "--filter", "flexible-extract", "--out", str(tmp_path / "b"),
                 "--data-dir", str(data_dir)]) == 0
    recs_b = read_samples(tmp_path / "b" / "samples.jsonl")
    assert {r.ref_source.split("/")[1] for r in recs_b} == {"flexible-extract"}
    expect = {x["doc_id"]: x["exact_match"] for x in lines if x["filter"] == "flexible-extract"}
    docs = {json.loads(x)["doc"]["question"]: json.loads(x)["doc_id"]
            for x in src.read_text().splitlines()}
    probs = {r["id"]: r["problem"] for r in _rows(data_dir / "gsm8k_test.jsonl", LIMIT)}
    for r in recs_b:
        assert r.ref_correct == (expect[docs[probs[r.problem_id]]] == 1)
    rc = main(["import", str(src), "--format", "lm-eval", "--benchmark", "gsm8k",
               "--filter", "nope", "--out", str(tmp_path / "c"), "--data-dir", str(data_dir)])
    assert rc == 2 and "--filter nope" in capsys.readouterr().err


@pytest.mark.slow
def test_import_whole_output_folder_is_one_multi_benchmark_run(lm_output, data_dir, tmp_path,
                                                               capsys):
    out = tmp_path / "all"
    assert main(["import", str(lm_output), "--format", "lm-eval", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    run = load_run(out)
    assert set(run.manifest["benchmarks"]) == {"gsm8k", "math500", "aime24"}
    assert run.manifest["decoding"]["n"] == 4
    assert json.loads((out / "summary.json").read_text()).keys() == \
        {"gsm8k", "math500", "aime24"}
    # mapping a task explicitly; an unknown task is a one-line error
    rc = main(["import", str(lm_output), "--format", "lm-eval", "--out", str(tmp_path / "x"),
               "--benchmark", "nosuch=gsm8k", "--data-dir", str(data_dir)])
    assert rc == 2 and "no task 'nosuch'" in capsys.readouterr().err


@pytest.mark.slow
def test_import_unmatched_docs_stop_or_are_skipped(lm_output, data_dir, tmp_path, capsys):
    src = _samples_file(lm_output, "aime24")
    lines = src.read_text().splitlines()
    odd = json.loads(lines[0])
    odd["doc"] = {"ID": "nope", "Problem": "not a benchmark problem", "Answer": 1}
    copy = tmp_path / "lm" / src.parent.name
    copy.mkdir(parents=True)
    shutil.copy(next(src.parent.glob("results_*.json")), copy)
    (copy / src.name).write_text("\n".join([json.dumps(odd), *lines[1:]]) + "\n")
    rc = main(["import", str(copy / src.name), "--format", "lm-eval", "--benchmark", "aime24",
               "--out", str(tmp_path / "a"), "--data-dir", str(data_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and ":1: doc 0 matches no aime24 problem" in err and "--skip-unmatched" in err
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())
    assert main(["import", str(copy), "--format", "lm-eval", "--benchmark", "aime24",
                 "--skip-unmatched", "--out", str(tmp_path / "b"),
                 "--data-dir", str(data_dir)]) == 0
    assert "skipped 1 doc(s)" in capsys.readouterr().out
    assert len(read_samples(tmp_path / "b" / "samples.jsonl")) == LIMIT - 1


@pytest.mark.slow
def test_score_an_import_uses_the_prompt_lm_eval_used(lm_output, data_dir, tmp_path):
    out = tmp_path / "aime"
    assert main(["import", str(_samples_file(lm_output, "aime24")), "--format", "lm-eval",
                 "--benchmark", "aime24", "--out", str(out), "--data-dir", str(data_dir)]) == 0
    assert main(["score", str(out), "--data-dir", str(data_dir)]) == 0
    from amir_bench.backends.hf import HFBackend
    from amir_bench.records import read_scores

    run = load_run(out)
    be = HFBackend(run.manifest["checkpoint"]["path"])
    want = be.score([r.prompt for r in run.samples], [r.completion for r in run.samples])
    got = {s.key: s.logprob_sum for s in read_scores(out)}
    for r, lp in zip(run.samples, want):
        assert abs(got[r.key] - sum(lp)) < 1e-3


@pytest.fixture(scope="session")
def round_trip(tmp_path_factory, lively_ckpt, data_dir) -> dict:
    """An exported task run greedy by lm_eval, imported back; and `amir-bench run` greedy."""
    d = tmp_path_factory.mktemp("export")
    tasks, lm_out, mine = d / "tasks", d / "lm-out", d / "run"
    assert main(["export", "lm-eval", "--benchmarks", "math500,gsm8k", "--template", "boxed",
                 "--n", "1", "--max-new-tokens", str(CAP), "--data-dir", str(data_dir),
                 "--out", str(tasks)]) == 0
    lm_out.mkdir()
    _lm_eval(["--model", "hf", "--model_args", f"pretrained={lively_ckpt},dtype=float32",
              "--include_path", str(tasks), "--tasks", "amir_math500,amir_gsm8k",
              "--apply_chat_template", "--limit", str(LIMIT), "--batch_size", "1",
              "--device", "cpu", "--log_samples", "--output_path", str(lm_out)], cwd=lm_out)
    env_data = os.environ.pop("AMIR_BENCH_DATA_DIR", None)
    try:  # no flags beyond --format lm-eval: data folder, template and model come from the run
        assert main(["import", str(lm_out), "--format", "lm-eval", "--out", str(d / "imp")]) == 0
    finally:
        if env_data is not None:
            os.environ["AMIR_BENCH_DATA_DIR"] = env_data
    assert main(["run", "--ckpt", str(lively_ckpt), "--benchmarks", "math500,gsm8k",
                 "--limit", str(LIMIT), "--n", "1", "--temperature", "0", "--template", "boxed",
                 "--max-new-tokens", str(CAP), "--batch-size", "1", "--data-dir", str(data_dir),
                 "--out", str(mine)]) == 0
    return {"tasks": tasks, "lm_out": lm_out, "imported": d / "imp", "run": mine}


@pytest.mark.slow
def test_export_round_trip_matches_run(round_trip):
    imp, mine = load_run(round_trip["imported"]), load_run(round_trip["run"])
    a = {r.key: r for r in imp.samples}
    b = {r.key: r for r in mine.samples}
    assert a.keys() == b.keys() and len(a) == 2 * LIMIT
    for k in a:
        assert a[k].completion == b[k].completion, k
        assert a[k].correct == b[k].correct and a[k].extracted == b[k].extracted
        assert a[k].ref_correct == b[k].correct  # lm-eval's metric was amir-bench's grader
        assert a[k].finish_reason == b[k].finish_reason
        if "\ufffd" not in a[k].completion:  # broken UTF-8 re-tokenizes to other tokens
            assert a[k].num_tokens == b[k].num_tokens
    assert {r.finish_reason for r in b.values()} == {"stop", "length"}
    assert len({r.completion for r in b.values()}) == len(b)  # not one degenerate output
    assert imp.manifest["template"] == "boxed"
    assert imp.manifest["decoding"]["max_new_tokens"] == CAP
    # same prompt, decoding and budget: comparing them warns about nothing
    from amir_bench.setup_compare import setup_warnings_for

    assert setup_warnings_for([round_trip["imported"], round_trip["run"]]) == []


@pytest.mark.slow
def test_exported_task_reports_amir_metrics(round_trip):
    res = json.loads(next(round_trip["lm_out"].rglob("results_*.json")).read_text())
    for task in ("amir_math500", "amir_gsm8k"):
        assert {"avg@n,all", "pass@1,all"} <= set(res["results"][task])
        assert res["configs"][task]["metadata"]["amir_template"] == "boxed"


def test_export_writes_tasks_and_module(tmp_path, data_dir, capsys):
    out = tmp_path / "tasks"
    assert main(["export", "lm-eval", "--benchmarks", "aime24,amc23", "--template", "amir-xml",
                 "--n", "4", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["amir_aime24.yaml", "amir_amc23.yaml",
                                                     "amir_tasks.py"]
    text = (out / "amir_aime24.yaml").read_text()
    assert "repeats: 4" in text and "k: 4" in text and "do_sample: true" in text
    assert "!function amir_tasks.amir_aime24_doc_to_text" in text
    assert "description: " in text  # the amir-xml system prompt
    assert '"pass@4"' in text and str(data_dir.resolve() / "aime24.jsonl") in text
    assert "--apply_chat_template" in capsys.readouterr().out
    # the module's functions give the suite's prompt and grade with amir-bench's grader
    import importlib.util

    spec = importlib.util.spec_from_file_location("amir_tasks_t", out / "amir_tasks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    row = _rows(data_dir / "aime24.jsonl", 1)[0]
    assert mod.amir_aime24_doc_to_text(row) == row["problem"]
    res = mod.amir_aime24_process_results(row, [[f"<answer>\\boxed{{{row['answer']}}}</answer>",
                                                 "\\boxed{0}", "no", "\\boxed{0}"]])
    assert res["avg@n"] == 0.25 and res["pass@4"] == 1.0 and res["pass@1"] == 0.25


@pytest.mark.parametrize("args,msg", [
    (["export", "lm-eval", "--benchmarks", "arith"], "built in"),
    (["export", "lm-eval", "--benchmarks", "nosuch"], "nosuch"),
    (["export", "lm-eval", "--benchmarks", "aime24", "--n", "0"], "--n must be"),
    (["export", "lm-eval", "--benchmarks", "aime24", "--template", "x"], "unknown template"),
    (["export", "other", "--benchmarks", "aime24"], "export target must be lm-eval"),
    (["export", "lm-eval", "--benchmarks", "aime24", "--n", "2", "--temperature", "0"],
     "--temperature"),
])
def test_export_bad_input_is_one_line(tmp_path, data_dir, capsys, args, msg):
    rc = main([*args, "--out", str(tmp_path / "t"), "--data-dir", str(data_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and msg in err and err.count("\n") == 1
    assert not (tmp_path / "t").exists()


@pytest.mark.slow
def test_samples_file_without_results_json(lm_output, lively_ckpt, data_dir, tmp_path, capsys):
    src = _samples_file(lm_output, "aime24")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(src, alone / src.name)
    args = ["import", str(alone / src.name), "--format", "lm-eval", "--benchmark", "aime24",
            "--data-dir", str(data_dir)]
    rc = main([*args, "--out", str(tmp_path / "a")])
    assert rc == 2 and "pass --tokenizer PATH" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "b"), "--tokenizer", str(lively_ckpt)]) == 0
    run = load_run(tmp_path / "b")
    assert run.manifest["checkpoint"]["path"].startswith("import:")
    assert run.manifest["decoding"]["max_new_tokens"] == CAP  # from each line's gen_kwargs
    assert len(run.samples) == LIMIT and all(r.prompt for r in run.samples)


@pytest.mark.slow
def test_folder_with_two_lm_eval_runs_is_refused(lm_output, data_dir, tmp_path, capsys):
    src = _samples_file(lm_output, "aime24")
    date = re.search(r"_(\d{4}-.*)\.jsonl$", src.name).group(1)
    two = tmp_path / "two"
    shutil.copytree(src.parent, two)
    for f in list(two.iterdir()):
        shutil.copy(f, two / f.name.replace(date, "2020-01-01T00-00-00.000000"))
    rc = main(["import", str(two), "--format", "lm-eval", "--out", str(tmp_path / "o"),
               "--data-dir", str(data_dir)])
    assert rc == 2 and "holds 2 lm-eval runs" in capsys.readouterr().err


def test_export_no_chat_prompts_are_the_templates_plain_text(tmp_path, data_dir):
    import importlib.util

    from amir_bench.prompts import build_prompt

    out = tmp_path / "tasks"
    assert main(["export", "lm-eval", "--benchmarks", "gsm8k", "--template", "amir-xml",
                 "--no-chat", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    text = (out / "amir_gsm8k.yaml").read_text()
    assert "description:" not in text and "do_sample: false" in text and "repeats: 1" in text
    spec = importlib.util.spec_from_file_location("amir_tasks_nc", out / "amir_tasks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    row = _rows(data_dir / "gsm8k_test.jsonl", 1)[0]
    # what `run` sends a model without a chat template
    assert mod.amir_gsm8k_doc_to_text(row) == build_prompt(row["problem"], "amir-xml", None)
