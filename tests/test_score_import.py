"""`amir-bench score` (teacher-forced log-probs, resumable) and `amir-bench import`."""

from __future__ import annotations

import json

import pytest

from amir_bench.cli import main
from amir_bench.records import read_samples, read_scores

RUN = ["--benchmarks", "arith", "--n", "2", "--limit", "4", "--max-new-tokens", "12",
       "--temperature", "1.0"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, tiny_ckpt):
    out = tmp_path_factory.mktemp("score") / "run"
    assert main(["run", "--ckpt", str(tiny_ckpt), "--out", str(out), *RUN]) == 0
    return out


def test_score_writes_one_record_per_sample_and_resumes(small_run, tiny_ckpt, capsys):
    assert main(["score", str(small_run)]) == 0
    scores = read_scores(small_run)
    samples = read_samples(small_run / "samples.jsonl")
    assert {s.key for s in scores} == {r.key for r in samples} and len(scores) == 8
    for s in scores:
        assert s.scorer == str(tiny_ckpt) and s.logprob_sum <= 0
        if s.num_tokens:
            assert abs(s.logprob_mean - s.logprob_sum / s.num_tokens) < 1e-9
    # a killed scorer leaves a partial line: resume drops it and scores only what is missing
    path = small_run / "scores.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + lines[3][:25])
    assert main(["score", str(small_run)]) == 0
    again = read_scores(small_run)
    assert len(again) == 8 and len({s.key for s in again}) == 8
    by_key = {s.key: s.logprob_sum for s in scores}
    assert all(abs(by_key[s.key] - s.logprob_sum) < 1e-4 for s in again)
    assert "scored 5 samples (3 already scored)" in capsys.readouterr().out
    # scoring with another checkpoint into the same file is refused
    rc = main(["score", str(small_run), "--ckpt", str(small_run)])
    assert rc == 2 and "scored by" in capsys.readouterr().err


def test_score_errors(tmp_path, capsys):
    rc = main(["score", str(tmp_path)])
    assert rc == 2 and "not a run directory" in capsys.readouterr().err


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_import_grades_like_run_and_writes_a_run(tmp_path, data_dir, capsys):
    rows = [
        {"problem_id": "2024-I-1", "sample_idx": 0, "completion": "so \\boxed{204}",
         "num_tokens": 5},
        {"problem_id": "2024-I-1", "sample_idx": 1, "completion": "so \\boxed{205}",
         "num_tokens": 6, "finish_reason": "length"},
        {"problem_id": "2024-I-2", "sample_idx": 0, "completion": "<answer>25</answer>",
         "num_tokens": 4},
        {"problem_id": "2024-I-2", "sample_idx": 1, "completion": "I am not sure",
         "num_tokens": 4, "gold": "7"},
    ]
    src = _write(tmp_path / "gens.jsonl", rows)
    out = tmp_path / "imported"
    assert main(["import", str(src), "--benchmark", "aime24", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    recs = {(r.problem_id, r.sample_idx): r for r in read_samples(out / "samples.jsonl")}
    assert recs[("2024-I-1", 0)].correct and not recs[("2024-I-1", 1)].correct
    assert recs[("2024-I-1", 1)].finish_reason == "length"
    assert recs[("2024-I-2", 1)].gold == "7"
    m = json.loads((out / "manifest.json").read_text())
    assert m["decoding"]["n"] == 2 and m["benchmarks"]["aime24"]["count"] == 2
    s = json.loads((out / "summary.json").read_text())["aime24"]
    assert s["samples"] == 4 and s["problems"] == 2


@pytest.mark.parametrize("row,msg", [
    ({"problem_id": "nope", "sample_idx": 0, "completion": "x", "num_tokens": 1},
     "unknown problem id 'nope'"),
    ({"problem_id": "2024-I-1", "sample_idx": 0, "num_tokens": 1}, "missing field 'completion'"),
    ({"problem_id": "2024-I-1", "sample_idx": 0, "completion": "x"}, "pass --tokenizer"),
])
def test_import_bad_lines_name_file_and_line(tmp_path, data_dir, capsys, row, msg):
    ok = {"problem_id": "2024-I-1", "sample_idx": 1, "completion": "y", "num_tokens": 1}
    src = _write(tmp_path / "g.jsonl", [ok, row])
    out = tmp_path / "o"
    rc = main(["import", str(src), "--benchmark", "aime24", "--out", str(out),
               "--data-dir", str(data_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and f"{src}:2: " in err and msg in err
    assert not out.exists() or not any(out.iterdir())


def test_import_duplicate_pairs(tmp_path, data_dir, capsys):
    r = {"problem_id": "2024-I-1", "sample_idx": 0, "completion": "y", "num_tokens": 1}
    src = _write(tmp_path / "g.jsonl", [r, r])
    rc = main(["import", str(src), "--benchmark", "aime24", "--out", str(tmp_path / "o"),
               "--data-dir", str(data_dir)])
    assert rc == 2 and ":2: duplicate (problem, sample)" in capsys.readouterr().err
