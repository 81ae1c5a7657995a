"""Benchmark specs, local and Hub-style loading, selection, the arith generator, prompts."""

from __future__ import annotations

import json

import pytest

from amir_bench.errors import UserError
from amir_bench.prompts import build_prompt, with_options
from benchmarks import arith
from benchmarks.loaders import load_local, load_problems, normalize_hub_row, rows_sha256
from benchmarks.specs import REGISTRY, get_spec

EXPECTED_COUNTS = {"math500": 500, "gsm8k": 1319, "aime24": 30, "aime25": 30, "amc23": 40,
                   "olympiadbench": 675, "minerva": 272, "aqua_rat": 254, "livemathbench": 46,
                   "gsm8k_train": 7473, "math_train": 7500}


@pytest.mark.parametrize("name,count", sorted(EXPECTED_COUNTS.items()))
def test_every_local_benchmark_loads(data_dir, name, count):
    probs = load_problems(name, data_dir=data_dir)
    assert len(probs) == count
    assert len({p.id for p in probs}) == count
    assert all(p.answer.strip() and p.problem.strip() for p in probs)


def test_registry_names_and_aliases():
    assert {"math500", "gsm8k", "aime24", "aime25", "amc23", "olympiadbench", "minerva",
            "aqua_rat", "livemathbench", "arith"} <= set(REGISTRY)
    assert get_spec("minerva_math").name == "minerva"
    with pytest.raises(UserError, match="unknown benchmark 'nope'"):
        get_spec("nope")


def test_limit_and_problem_selection_are_deterministic(data_dir):
    a = load_problems("aime24", data_dir=data_dir, limit=5)
    b = load_problems("aime24", data_dir=data_dir, limit=5)
    assert [p.id for p in a] == [p.id for p in b] and len(a) == 5
    sel = load_problems("aime24", data_dir=data_dir, problem_ids=["2024-II-4", "2024-I-1"])
    assert [p.id for p in sel] == ["2024-I-1", "2024-II-4"]  # file order
    with pytest.raises(UserError, match="unknown problem id"):
        load_problems("aime24", data_dir=data_dir, problem_ids=["2030-I-1"])
    assert rows_sha256(a) == rows_sha256(b) != rows_sha256(a[:4])


@pytest.mark.parametrize("line,why", [
    ('{"id": "a", "problem": "p"', "not valid JSON"),
    ('{"id": "a", "problem": "p"}', "missing or empty field 'answer'"),
    ('{"id": "a", "problem": "", "answer": "1"}', "missing or empty field 'problem'"),
    ('[1, 2]', "expected a JSON object"),
])
def test_malformed_local_file_names_file_and_line(tmp_path, line, why):
    f = tmp_path / "math500.jsonl"
    f.write_text('{"id": "ok", "problem": "1+1", "answer": "2"}\n' + line + "\n")
    with pytest.raises(UserError) as e:
        load_local(f, get_spec("math500"))
    assert str(e.value).startswith(f"{f}:2: ") and why in str(e.value)


def test_duplicate_ids_rejected(tmp_path):
    f = tmp_path / "x.jsonl"
    row = '{"id": "a", "problem": "1+1", "answer": "2"}\n'
    f.write_text(row + row)
    with pytest.raises(UserError, match=":2: duplicate id 'a'"):
        load_local(f, get_spec("math500"))


def test_hub_rows_normalize_like_local_rows(data_dir):
    """raw/ holds the upstream (Hub-column) files: normalized rows must match the schema."""
    spec = get_spec("math500")
    local = {p.id: p for p in load_problems("math500", data_dir=data_dir)}
    with open(data_dir / "raw" / "math500_test.jsonl") as fh:
        rows = [json.loads(line) for line in fh]
    for i, row in enumerate(rows[:50]):
        p = normalize_hub_row(spec, row, i)
        assert p.id in local and p.answer == local[p.id].answer
        assert p.problem == local[p.id].problem and p.level == local[p.id].level

    aqua = get_spec("aqua_rat")
    local_aqua = load_problems("aqua_rat", data_dir=data_dir)
    with open(data_dir / "raw" / "aqua_rat_test.json") as fh:
        rows = [json.loads(line) for line in fh]
    for i, row in enumerate(rows[:30]):
        p = normalize_hub_row(aqua, row, i)
        assert p.id == local_aqua[i].id and p.answer == local_aqua[i].answer
        assert p.meta["answer_text"] == local_aqua[i].meta["answer_text"]


@pytest.mark.parametrize("name,raw,expected", [
    ("gsm8k", "He pays 2 * 3 = 6.\n#### 1,234", "1234"),
    ("aime24", "025", "25"),
    ("amc23", 27.0, "27"),
    ("olympiadbench", ["$\\frac{1}{2}$", "$3$"], "\\frac{1}{2}, 3"),
    ("livemathbench", "$338,551$", "338551"),
])
def test_hub_answer_normalization(name, raw, expected):
    from benchmarks.loaders import normalize_hub_answer
    assert normalize_hub_answer(get_spec(name), raw) == expected


def test_hub_unreachable_is_one_line_error(monkeypatch):
    monkeypatch.delenv("AMIR_BENCH_DATA_DIR", raising=False)
    with pytest.raises(UserError, match="--data-dir"):
        load_problems("math500")


def test_arith_is_deterministic_disjoint_and_learnable_format():
    a, b = arith.generate("test", 50, seed=0), arith.generate("test", 50, seed=0)
    assert [p.problem for p in a] == [p.problem for p in b]
    train = arith.generate("train", 500)
    assert not {p.problem for p in train} & {p.problem for p in arith.generate("test")}
    assert {p.level for p in a} == {1, 2, 3}
    for p in a:
        assert int(p.answer) >= 0
        last = p.meta["steps"][-1]
        assert last.endswith(f"= {p.answer}")
        assert f"\\boxed{{{p.answer}}}" in arith.format_solution(p, "amir-xml")
    assert arith.generate("test", 10, seed=1)[0].problem != a[0].problem


def test_prompts_use_chat_template_and_options(tiny_ckpt):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_ckpt)
    p = build_prompt("What is 2+2?", "boxed", tok)
    assert p.startswith("<|im_start|>user\nWhat is 2+2?\n") and "\\boxed{}" in p
    assert p.endswith("<|im_start|>assistant\n")
    x = build_prompt("What is 2+2?", "amir-xml", tok)
    assert "<|im_start|>system\n" in x and "<think>" in x
    assert build_prompt("What is 2+2?", "plain", tok) == "Question: What is 2+2?\nAnswer:"
    assert "Options: A)1 B)2" in with_options("Pick.", ["A)1", "B)2"])
    with pytest.raises(UserError, match="unknown template"):
        build_prompt("x", "nope", tok)


def test_tiny_tokenizer_round_trips(tiny_ckpt):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_ckpt)
    for s in ["Ada has 12 apples. \\boxed{3/4}", "é 漢字 ∑ <answer> </think>", "  spaced\n\ttabs"]:
        assert tok.decode(tok(s, add_special_tokens=False).input_ids) == s
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


@pytest.mark.parametrize("name,raw_file,n", [
    ("minerva", "minerva_math_qwen25math_test.jsonl", 272),
    ("livemathbench", "livemathbench_AMC_en.jsonl", 46),
])
def test_hub_rows_without_ids_get_the_local_ids(data_dir, name, raw_file, n):
    """Hub rows with no id column are numbered like the local files, so runs compare."""
    spec = get_spec(name)
    local = load_problems(name, data_dir=data_dir)
    with open(data_dir / "raw" / raw_file) as fh:
        rows = [json.loads(line) for line in fh]
    assert len(rows) == n == len(local)
    for i in (0, 1, n - 1):
        row = dict(rows[i])
        row.setdefault("question", row.get("problem"))
        row.setdefault("answer", local[i].answer)
        p = normalize_hub_row(spec, row, i)
        assert p.id == local[i].id
