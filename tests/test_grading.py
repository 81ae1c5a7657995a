"""Grader unit tests: extraction, choice letters, normalization, item_for, the pool (timeouts,
cache, order, progress), grade_one and grade_file."""

from __future__ import annotations

import json
import time

import pytest

from amir_bench.errors import UserError
from amir_bench.grading import (
    GradeItem, GradeResult, Grader, extract_answer, grade_one, item_for, normalize_answer)
from amir_bench.grading.extract import bare_answer
from amir_bench.grading.gradefile import grade_file
from amir_bench.grading.items import CHOICE_EXTRACT, DEFAULT_EXTRACT
from amir_bench.grading.normalize import as_letter as _as_letter
from amir_bench.grading.normalize import normalize_pair
from benchmarks.specs import Problem, get_spec

ALL = ("boxed", "answer_tag", "gsm8k", "last_number")


# ----------------------------------------------------------------------------- extraction

@pytest.mark.parametrize("text,expected", [
    (r"so $\boxed{5}$.", "5"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"\boxed{\frac{\sqrt{3}}{2}} done", r"\frac{\sqrt{3}}{2}"),  # nested braces
    (r"first \boxed{1} then \boxed{2}", "2"),  # last box wins
    (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),  # escaped braces don't close the box
    (r"\boxed 5.", "5"),  # MATH's \boxed 5 style
    (r"\fbox{7}", "7"),
    (r"\boxed {  8 }", "8"),
    (r"\boxed{3} and then \boxed{", "3"),  # trailing unclosed box: previous one
    (r"\boxed{} oops \boxed{}", None),  # empty boxes are no answer
    (r"\boxed{\boxed{9}}", "9"),
    (r"\boxed{a \\ b}", r"a \\ b"),  # \\ is a line break, not an escaped brace
    ("no box here", None),
])
def test_extract_boxed(text, expected):
    assert extract_answer(text, ("boxed",), bare=False) == expected


def test_extract_answer_tags():
    assert extract_answer("<think>1</think><answer> 42 </answer>", ("answer_tag",)) == "42"
    assert extract_answer(r"<answer>so \boxed{7} it is</answer>", ("answer_tag",)) == "7"
    assert extract_answer("<answer>1</answer><answer>2</answer>", ("answer_tag",)) == "2"
    assert extract_answer("<ANSWER>3</ANSWER>", ("answer_tag",)) == "3"
    assert extract_answer("<answer>unclosed 5", ("answer_tag",), bare=False) is None
    assert extract_answer("<answer>$x=2$</answer>", ("answer_tag",)) == "x=2"


def test_extract_gsm8k_and_last_number():
    assert extract_answer("blah\n#### 1,234", ("gsm8k",)) == "1234"
    assert extract_answer("#### -5\n", ("gsm8k",)) == "-5"
    assert extract_answer("#### $18.50", ("gsm8k",)) == "18.50"
    assert extract_answer("#### see pwned_1", ("gsm8k",)) is None  # number must follow ####
    assert extract_answer("He has 3 apples and 12 pears.", ("last_number",)) == "12"
    assert extract_answer("so x = -4.", ("last_number",)) == "-4"
    assert extract_answer("3-5 is", ("last_number",)) == "5"  # minus between operands
    assert extract_answer("total is $1,000,000.", ("last_number",)) == "1000000"
    assert extract_answer("ratio 3/4 overall", ("last_number",), bare=False) == "3/4"
    assert extract_answer("version 2.5 wins", ("last_number",), bare=False) == "2.5"
    assert extract_answer("no digits", ("last_number",), bare=False) is None


def test_modes_in_order_first_hit_wins():
    text = "<answer>4</answer> and \\boxed{5}\n#### 6 then 7"
    assert extract_answer(text, ("boxed", "answer_tag")) == "5"
    assert extract_answer(text, ("answer_tag", "boxed")) == "4"
    assert extract_answer(text, ("gsm8k", "boxed")) == "6"
    assert extract_answer(text, ("last_number",)) == "7"


def test_bare_answer_rules():
    # a bare answer is graded whole, before the last-number fallback
    assert extract_answer("(1, 2)", ALL) == "(1, 2)"
    assert extract_answer(r"$\frac{1}{2}$", ("boxed",)) == r"\frac{1}{2}"
    assert extract_answer("Answer: 5", ("boxed",)) == "5"
    assert extract_answer(r"\text{Evelyn}", ("boxed",)) == r"\text{Evelyn}"
    # prose is not bare: last_number takes over where allowed, else no answer
    assert extract_answer("I think that the value is 5", ALL) == "5"
    assert extract_answer("I think that the value is 5", ("boxed", "answer_tag")) is None
    assert bare_answer("line one\nline two") is None
    assert bare_answer("no idea") is None and bare_answer("Evelyn") == "Evelyn"
    assert bare_answer("x" * 500) is None
    assert extract_answer("", ALL) is None


def test_choice_letter_extraction():
    modes = ("choice_letter",)
    assert extract_answer("The answer is (C).", modes) == "C"
    assert extract_answer("Answer: **D**", modes) == "D"
    assert extract_answer("I pick B) since it fits", modes) == "B"
    assert extract_answer("Options (A) and (E); the correct option is E", modes) == "E"
    assert extract_answer("A car travels at a speed", modes, bare=False) is None  # article, not option
    assert _as_letter(r"\text{(C)}") == "C"
    assert _as_letter("c") == "C"
    assert _as_letter("(B) 36") == "B"
    assert _as_letter("Option e") == "E"
    assert _as_letter("36") is None
    assert _as_letter("Cannot be determined") is None
    assert _as_letter("F") is None


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match="unknown extraction mode"):
        extract_answer("x", ("boxd",))


def test_extraction_is_linear_on_big_inputs():
    big = ("word " * 40_000) + r"\boxed{12}"
    nested = r"\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}"
    many_open = r"\boxed{" * 30_000  # quadratic brace matching would take minutes
    t = time.perf_counter()
    assert extract_answer(big, ALL) == "12"
    assert extract_answer(nested, ALL).startswith("{{{")
    assert extract_answer(many_open, ("boxed",), bare=False) is None
    assert extract_answer("9" * 200_000, ("last_number",)) == "9" * 200_000
    assert time.perf_counter() - t < 5.0


# ----------------------------------------------------------------------------- normalization

def test_normalizations():
    assert normalize_answer(r"\dfrac{1}{2}") == r"\frac{1}{2}"
    assert normalize_answer(r"\text{13}") == "13"
    assert normalize_answer(r"30^{\circ}") == "30"
    assert normalize_answer("4.5e33") == r"4.5\times 10^{33}"
    assert normalize_answer(r"5\text{ cm}^2") == "5"
    assert normalize_answer("2**5") == "2^5"
    assert normalize_answer("np.arcsin(10/13)") == r"\arcsin(10/13)"
    assert normalize_pair("1,000", "1000") == ("1000", "1000")
    assert normalize_pair("1,000", "1,2") == ("1,000", "1,2")  # gold is a list: keep
    assert normalize_pair("3, 1", "(3,1)") == ("(3, 1)", "(3,1)")
    assert normalize_pair("3, 1, 2", "(3,1)")[0] == "3, 1, 2"  # arity differs: keep


# ----------------------------------------------------------------------------- item_for

def test_item_for_specs():
    aqua = get_spec("aqua_rat")
    p = Problem(id="1", problem="?", answer="A",
                meta={"answer_text": "36", "options": ["A)36", "B)15"]})
    it = item_for(p, aqua, "The answer is (A)")
    assert it.kind == "choice" and it.alternatives == ("36",) and it.gold == "A"
    assert it.extract == aqua.extract
    p2 = Problem(id="2", problem="?", answer="D",
                 meta={"answer_text": "Cannot be determined", "answer_text_needs_options": True})
    assert item_for(p2, aqua, "x").alternatives == ()
    minerva = get_spec("minerva")
    p3 = Problem(id="3", problem="?", answer="4.5e33",
                 meta={"answer_alternatives": ["4.5e33", r"4.5 \times 10^{33}"]})
    assert item_for(p3, minerva, "x").alternatives == (r"4.5 \times 10^{33}",)
    # an "alternative" that is another number altogether is dropped
    p4 = Problem(id="4", problem="?", answer="1.4903e4",
                 meta={"answer_alternatives": [r"4.4677 \times 10^{14}"]})
    assert item_for(p4, minerva, "x").alternatives == ()
    gsm = get_spec("gsm8k")
    it5 = item_for(Problem(id="5", problem="?", answer="18"), gsm, "#### 18")
    assert it5.kind == "math" and it5.extract == gsm.extract and it5.alternatives == ()


# ----------------------------------------------------------------------------- the pool

@pytest.fixture(scope="module")
def grader():
    with Grader(timeout=3.0, workers=2, _test_hooks=True) as g:
        yield g


def test_grade_preserves_order_caches_and_reports_progress(grader):
    # \frac{i}{3} vs i/3 needs math-verify (integer pairs are decided in the parent)
    items = [GradeItem(rf"so \boxed{{\frac{{{i}}}{{3}}}}", f"{i % 7}/3") for i in range(40)]
    items += items[:10]  # repeats come from the cache
    seen = []
    res = grader.grade(items, progress=seen.append)
    assert [r.correct for r in res] == [i % 7 == i for i in range(40)] + [i % 7 == i for i in range(10)]
    assert [r.extracted for r in res[:2]] == [r"\frac{0}{3}", r"\frac{1}{3}"]
    assert all(r.status == "ok" for r in res)
    assert sum(seen) == len(items)
    hits = grader.stats["cache_hits"]
    again = grader.grade(items[:5])
    assert again == res[:5]
    assert grader.stats["cache_hits"] == hits + 5


def test_no_answer_status(grader):
    res = grader.grade([GradeItem("I could not solve it.", "5", extract=("boxed",))])
    assert res == [GradeResult(None, False, "no_answer")]


def test_timeout_item_does_not_stall_the_batch(grader):
    """A real slow item (sympy evaluates a power tower) times out by the worker's alarm; an
    item stuck with signals blocked (test hook) is killed by the parent. The rest are ok."""
    items = [GradeItem(r"\boxed{9^{9^{9^{9}}}}", "1"),
             GradeItem("__test_hook__:sleep:30", "1"),
             *[GradeItem(rf"\boxed{{\frac{{{i}}}{{2}}}}", f"{i}/2") for i in range(20)]]
    t = time.monotonic()
    res = grader.grade(items)
    elapsed = time.monotonic() - t
    assert res[0].status == "timeout" and res[0].correct is False
    assert res[1].status == "timeout" and res[1].correct is False
    assert all(r.status == "ok" and r.correct for r in res[2:])
    assert grader.stats["kills"] >= 1  # the stuck worker was killed and replaced
    assert elapsed < 30  # generous: two timeouts of 3 s plus a worker restart
    # the pool still works after a kill
    assert grader.grade([GradeItem(r"\boxed{\frac{4}{2}}", "2")])[0].correct


def test_worker_exception_is_error_status(grader):
    res = grader.grade([GradeItem("__test_hook__:raise", "1"), GradeItem("1", "1")])
    assert res[0].status == "error" and res[0].correct is False
    assert res[1] == GradeResult("1", True, "ok")


def test_grade_one():
    assert grade_one(r"so \boxed{\frac{1}{2}}", "0.5").correct is True
    r = grade_one("The answer is (B)", "C", kind="choice", extract=CHOICE_EXTRACT)
    assert r == GradeResult("B", False, "ok")


# ----------------------------------------------------------------------------- grade_file

def test_grade_file_round_trip(tmp_path):
    src = tmp_path / "preds.jsonl"
    lines = [
        {"pred": r"so \boxed{1,000}", "gold": "1000", "note": "kept"},
        {"pred": "0.5", "gold": r"\frac{1}{2}"},
        {"pred": "nothing here", "gold": "3", "extract": ["boxed"]},
        {"pred": "The answer is (C)", "gold": "C", "kind": "choice"},
        {"pred": "7", "gold": 8},
    ]
    src.write_text("".join(json.dumps(x) + "\n" for x in lines) + "\n", encoding="utf-8")
    out = tmp_path / "graded.jsonl"
    counts = grade_file(src, out, timeout=5.0, workers=1)
    got = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [g["correct"] for g in got] == [True, True, False, True, False]
    assert [g["grade_status"] for g in got] == ["ok", "ok", "no_answer", "ok", "ok"]
    assert got[0]["extracted"] == "1,000" and got[0]["note"] == "kept"
    assert got[2]["extracted"] is None
    assert counts["total"] == 5 and counts["correct"] == 3 and counts["no_answer"] == 1
    # grading in place is safe (atomic replace)
    grade_file(out, out, workers=1)
    assert [json.loads(x)["correct"] for x in out.read_text().splitlines()] == [True, True, False, True, False]


@pytest.mark.parametrize("bad_line,message", [
    ('{"pred": "1"}', "missing field 'gold'"),
    ('{"gold": "1"}', "missing field 'pred'"),
    ('{"pred": 5, "gold": "1"}', "'pred' must be a string"),
    ('{"pred": "1", "gold": "1", "kind": "essay"}', "field 'kind'"),
    ('{"pred": "1", "gold": "1", "extract": ["boxd"]}', "unknown extraction mode 'boxd'"),
    ('{"pred": "1", "gold": ', "not valid JSON"),
    ('[1, 2]', "expected a JSON object"),
])
def test_grade_file_malformed_line(tmp_path, bad_line, message):
    src = tmp_path / "in.jsonl"
    src.write_text('{"pred": "1", "gold": "1"}\n\n' + bad_line + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("untouched\n")
    with pytest.raises(UserError) as ei:
        grade_file(src, out, workers=1)
    msg = str(ei.value)
    assert msg.startswith(f"{src}:3: ") and message in msg and "\n" not in msg
    assert out.read_text() == "untouched\n"  # nothing written on error


def test_grade_file_missing_input(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        grade_file(tmp_path / "nope.jsonl", tmp_path / "o.jsonl")


def test_default_extract_constant():
    assert GradeItem("x", "y").extract == DEFAULT_EXTRACT


def test_first_batch_long_after_startup_is_graded(monkeypatch):
    # the workers signal readiness at startup; a first batch that comes later than the startup
    # timeout (a warm start trains for minutes between probes) must still find them ready
    monkeypatch.setattr(Grader, "STARTUP_TIMEOUT", 1.0)
    with Grader(workers=1) as g:
        deadline = time.monotonic() + 120
        while not all(w.conn.poll() for w in g._workers) and time.monotonic() < deadline:
            time.sleep(0.1)  # the ready signal has arrived, unread
        time.sleep(1.5)  # ... and the startup timeout has passed since the spawn
        res = g.grade([GradeItem(r"\boxed{\frac{1}{2}}", "0.5")])
    assert res[0].correct and res[0].status == "ok"
