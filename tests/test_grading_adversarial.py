"""Adversarial completions: each is bounded by the per-item timeout, a batch of 100 finishes,
and no payload has any effect (the parent never parses model text; workers only parse)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from amir_bench.grading import GradeItem, Grader, extract_answer
from amir_bench.grading.items import DEFAULT_EXTRACT

ALLOWED = {"ok", "no_answer", "timeout", "error"}
TIMEOUT = 2.0


def payloads(marker: Path) -> list[str]:
    m = str(marker)
    return [
        rf"\boxed{{__import__('os').system('touch {m}')}}",
        rf"\boxed{{open('{m}', 'w').write('pwned')}}",
        rf"\boxed{{eval(\"__import__('os').system('touch {m}')\")}}",
        rf"\boxed{{exec(\"open('{m}','w').write('x')\")}}",
        rf"<answer>__import__('subprocess').call(['touch', '{m}'])</answer>",
        rf"__import__('os').system('touch {m}')",
        rf"\boxed{{().__class__.__bases__[0].__subclasses__()}} and {m}",
        rf"\boxed{{(lambda: __import__('os').system('touch {m}'))()}}",
        rf"#### __import__('os').system('touch {m}')",
        rf"\boxed{{1 + __import__('pathlib').Path('{m}').touch() }}",
        rf"$\boxed{{\text{{__import__('os').system('touch {m}')}}}}$",
        rf"The answer is $__import__('os').system('touch {m}')$",
    ]


def adversarial_batch(tmp: Path, n: int = 100) -> tuple[list[GradeItem], list[Path]]:
    big_prose = ("Let us think step by step. " * 8000)[:200_000]
    towers = [r"\boxed{9^{9^{9^{9}}}}", r"\boxed{10^{10^{10^{10}}}}", r"\boxed{7^{7^{7^{7}}}}",
              r"\boxed{2^{2^{2^{2^{2^{2}}}}}}"]
    fixed = [
        big_prose + r"\boxed{12}",  # 200 KB of prose, answer at the end
        "9" * 200_000,  # a 200 KB number
        r"\boxed{" + "1+" * 100_000 + "1}",  # a 200 KB boxed expression
        r"\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",  # 10k nested braces
        "{" * 10_000 + "1" + "}" * 10_000,  # 10k nested braces, bare
        r"\boxed{" * 10_000,  # 10k unclosed boxes
        r"\boxed{" + r"\sqrt{" * 5_000 + "2" + "}" * 5_000 + "}",
        r"\boxed{" + "(" * 10_000 + "1" + ")" * 10_000 + "}",
        "<answer>" * 5_000 + "1" + "</answer>" * 5_000,
        "#" * 200_000,
    ]
    items: list[GradeItem] = []
    markers: list[Path] = []
    i = 0
    while len(items) < n:
        marker = tmp / f"pwned_{i}"
        markers.append(marker)
        pool = payloads(marker)
        for text in pool:
            items.append(GradeItem(text, "1"))
        if i < len(towers):
            items.append(GradeItem(towers[i], "1"))
        if i == 0:
            items.extend(GradeItem(t, "1") for t in fixed)
        i += 1
    return items[:n], markers


def test_adversarial_batch_of_100_finishes_and_payloads_do_nothing(tmp_path):
    items, markers = adversarial_batch(tmp_path, 100)
    assert len(items) == 100
    t = time.monotonic()
    with Grader(timeout=TIMEOUT, workers=2) as g:
        res = g.grade(items)
        max_latency = g.max_latency
    elapsed = time.monotonic() - t
    assert len(res) == 100
    assert {r.status for r in res} <= ALLOWED
    # gold is 1: only a literal last number "1" (e.g. in "{{{1}}}") may be graded correct
    assert all(r.extracted == "1" for r in res if r.correct)
    assert not any(m.exists() for m in markers), "a payload ran"
    assert not list(tmp_path.glob("pwned_*"))
    # no sample stalls past its timeout (plus scheduling slack), and the batch is bounded
    assert max_latency < TIMEOUT + 3.0
    assert elapsed < 120
    # the power tower is bounded by the timeout, not verified
    tower = [r for it, r in zip(items, res) if it.completion == r"\boxed{9^{9^{9^{9}}}}"]
    assert tower and tower[0].status == "timeout"


def test_extraction_of_adversarial_text_is_fast(tmp_path):
    items, _ = adversarial_batch(tmp_path, 100)
    t = time.perf_counter()
    for it in items:
        extract_answer(it.completion, DEFAULT_EXTRACT)
    assert time.perf_counter() - t < 10.0


def test_parent_never_parses_model_text(tmp_path):
    """Grade payloads in a fresh interpreter and check the parent never imported sympy,
    math_verify or latex2sympy (so model text cannot have reached sympify/parse_expr there)."""
    marker = tmp_path / "pwned_parent"
    script = textwrap.dedent(f"""
        import sys
        from amir_bench.grading import Grader, GradeItem
        texts = {payloads(marker)!r}
        with Grader(timeout=5.0, workers=1) as g:
            res = g.grade([GradeItem(t, "1") for t in texts] + [GradeItem(r"\\boxed{{1/2}}", "0.5")])
        assert res[-1].correct, res[-1]
        bad = [m for m in ("sympy", "math_verify", "latex2sympy2_extended") if m in sys.modules]
        print("HEAVY:", bad)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=str(Path(__file__).resolve().parents[1]))
    assert out.returncode == 0, out.stderr
    assert "HEAVY: []" in out.stdout
    assert not marker.exists()


@pytest.mark.parametrize("text", [
    r"\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "x" * 200_000,
])
def test_oversized_answers_are_not_sent_to_sympy(text):
    with Grader(timeout=TIMEOUT, workers=1) as g:
        res = g.grade([GradeItem(text, "1", extract=("boxed", "last_number"))])[0]
    assert res.status in ("ok", "no_answer") and res.correct is False


REDOS = [
    "answer" + " " * 100_000 + "x",
    "The answer is:" + " \n" * 50_000,
    "####" + " " * 100_000,
    "#### " + "-" * 100_000,
    "\\text{" * 30_000,
    "\\boxed " + "x" * 200_000,
    "1," * 100_000,
    "1." * 100_000,
    "(" * 100_000 + "A",
    "<answer>" * 30_000,
    "</answer>" * 30_000,
    "$" * 200_000,
    "\\(" * 100_000,
    "5 " + "a" * 200_000 + "1",
    "answer " + "option " * 30_000,
    "9e" * 100_000,
]


@pytest.mark.parametrize("i", range(len(REDOS)))
def test_no_regex_blowup_in_parent_side_string_work(i):
    """Linear-time string work on pathological text (catastrophic regex backtracking would
    take minutes here): every extractor, the choice-letter and option-text checks, and the
    worker's normalizers on answer-sized slices."""
    from amir_bench.grading.extract import EXTRACTORS, bare_answer
    from amir_bench.grading.normalize import as_letter as _as_letter
    from amir_bench.grading.normalize import lenient_text as _lenient_text
    from amir_bench.grading.normalize import normalize_answer, normalize_pair
    text = REDOS[i]
    t = time.perf_counter()
    for mode in EXTRACTORS:
        extract_answer(text, (mode,))
    bare_answer(text)
    _as_letter(text)
    _lenient_text(text[:5000])
    normalize_answer(text[:1500])
    normalize_pair(text[:1500], "1,2")
    normalize_pair(text[:1500], "(1, 2)")
    assert time.perf_counter() - t < 3.0
