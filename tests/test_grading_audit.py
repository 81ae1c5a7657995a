"""The verdict audit (amir-bench vs another harness), `grade`'s extraction rules
(--benchmark, per-line benchmark, --map, the default), extract_mode everywhere, and grading
from a directory whose files shadow standard-library modules."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from amir_bench.cli import main
from amir_bench.errors import UserError
from amir_bench.grading.audit import as_verdict, wilson_interval
from amir_bench.grading.gradefile import grade_file, item_from_row, parse_map
from amir_bench.grading.items import item_for
from amir_bench.metrics import summarize_benchmark, verdicts_by_mode
from amir_bench.records import SampleRecord
from benchmarks.specs import Problem, get_spec
from conftest import DATA_DIR, REPO
from runfactory import make_run

AUDIT_FILE = DATA_DIR / "audit" / "real_outputs.jsonl"
ADJUDICATION = Path(__file__).parent / "data" / "adjudication.md"
BENCH_MAP = "math=math500,mgsm_en=gsm8k"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ----------------------------------------------------------------- grade: which extraction

def test_benchmark_extraction_is_the_run_path():
    """A line graded for a benchmark gets exactly the item `amir-bench run` builds."""
    pred = "We get 7 in the end."
    got = item_from_row({"pred": pred, "gold": "7", "benchmark": "gsm8k"}, Path("f"), 1)
    want = item_for(Problem(id="", problem="", answer="7"), get_spec("gsm8k"), pred)
    assert got == want
    # --benchmark is for the whole file and wins over the line's field
    over = item_from_row({"pred": pred, "gold": "7", "benchmark": "gsm8k"}, Path("f"), 1,
                         benchmark="math500")
    assert over.extract == get_spec("math500").extract


def test_grade_by_benchmark_field_map_and_default(tmp_path):
    rows = [
        {"pred": "We get 7 in the end.", "gold": "7", "benchmark": "gsm8k"},  # last number
        {"pred": "We get 7 in the end.", "gold": "7", "benchmark": "math500"},  # none there
        {"pred": "Answer: Adam has 16 apples.", "gold": "16", "benchmark": "mgsm_en"},
        {"pred": "I think it is 2", "gold": "2"},  # default, numeric gold: last number allowed
        {"pred": "I think it is 2", "gold": r"\frac{4}{2}"},  # default, LaTeX gold: never
        {"pred": "Answer: $\\frac{4}{2}$", "gold": "2"},
    ]
    src = write_jsonl(tmp_path / "p.jsonl", rows)
    out = tmp_path / "g.jsonl"
    counts = grade_file(src, out, workers=1, bench_map=parse_map("mgsm_en=gsm8k"))
    got = read_jsonl(out)
    assert [r["correct"] for r in got] == [True, False, True, True, False, True]
    assert [r["extract_mode"] for r in got] == ["last_number", None, "answer_number",
                                                "last_number", None, "answer_line"]
    assert [r["grade_status"] for r in got][4] == "no_answer"
    assert counts["by_extract_mode"] == {"answer_line": 1, "answer_number": 1,
                                         "last_number": 2, "none": 2}
    assert counts["correct"] == 4 and counts["total"] == 6


def test_unknown_benchmark_is_a_user_error_naming_map(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"pred": "1", "gold": "1"},
                                             {"pred": "1", "gold": "1", "benchmark": "mgsm_en"}])
    with pytest.raises(UserError, match=r"p\.jsonl:2: .*--map mgsm_en=NAME"):
        grade_file(src, tmp_path / "g.jsonl", workers=1)
    assert not (tmp_path / "g.jsonl").exists()  # nothing half-written
    with pytest.raises(UserError, match="FROM=TO"):
        parse_map("math500")


def test_grade_cli_prints_modes(tmp_path, capsys):
    src = write_jsonl(tmp_path / "p.jsonl", [{"pred": "Answer: 5", "gold": "5"}])
    assert main(["grade", str(src), "--benchmark", "math500"]) == 0
    out = capsys.readouterr().out
    assert "correct=1" in out and "answer_line=1" in out
    assert main(["grade", str(src), "--benchmark", "nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err


# ----------------------------------------------------------------- extract_mode in records

def test_sample_record_extract_mode_default_and_summary_counts():
    old = {"benchmark": "b", "problem_id": "p", "sample_idx": 0, "completion": "c",
           "finish_reason": "stop", "num_tokens": 3, "gen_logprob_sum": None,
           "extracted": "1", "correct": True, "grade_status": "ok", "gold": "1"}
    assert SampleRecord.from_dict(old).extract_mode is None  # runs written before the field
    recs = [SampleRecord(**{**old, "sample_idx": i, "extract_mode": m, "correct": c})
            for i, (m, c) in enumerate([("boxed", True), ("boxed", False), ("answer_line", True),
                                        (None, False)])]
    summary = summarize_benchmark(recs)
    by_mode = {k: v for k, v in summary.items() if k.startswith("extract_mode/")}
    assert by_mode == {"extract_mode/answer_line": 1, "extract_mode/boxed": 2,
                       "extract_mode/none": 1}


# ----------------------------------------------------------------- audit

def test_wilson_interval_matches_the_formula():
    z = 1.959963984540054
    for k, n in [(3, 4), (97, 100), (0, 10), (10, 10)]:
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        lo, hi = wilson_interval(k, n)
        assert lo == pytest.approx(centre - half, abs=1e-9)
        assert hi == pytest.approx(centre + half, abs=1e-9)
    assert wilson_interval(0, 0) == (None, None)


def test_as_verdict_reads_common_encodings():
    assert [as_verdict(v, "x") for v in (True, 0, 1.0, "True", "incorrect", None)] == \
        [True, False, True, True, False, None]
    with pytest.raises(UserError, match="x: cannot read 0.5"):
        as_verdict(0.5, "x")


def test_audit_graded_file_confusion_and_disagreements(tmp_path, capsys):
    rows = [  # already graded: read, not regraded
        {"pred": "a", "gold": "1", "correct": True, "theirs": True, "model": "m1"},
        {"pred": "b | <script>x</script>", "gold": "1", "correct": True, "theirs": False,
         "model": "m1", "extracted": "1", "extract_mode": "boxed", "benchmark": "math500"},
        {"pred": "c", "gold": "2", "correct": False, "theirs": 1, "model": "m2"},
        {"pred": "d", "gold": "2", "correct": False, "theirs": "false", "model": "m2"},
        {"pred": "e", "gold": "2", "correct": False, "model": "m2"},  # no other verdict
    ]
    src = write_jsonl(tmp_path / "graded.jsonl", rows)
    out = tmp_path / "audit"
    assert main(["audit", str(src), "--against", "theirs", "--by", "model", "--out", str(out)]) == 0
    report = json.loads((out / "audit.json").read_text())
    o = report["overall"]
    assert (o["n"], o["both_correct"], o["ours_only"], o["theirs_only"], o["both_wrong"]) == \
        (4, 1, 1, 1, 1)
    assert o["agreement"] == 0.5 and report["missing_verdicts"] == 1
    assert o["agreement_ci95"] == pytest.approx(list(wilson_interval(2, 4)))
    assert report["groups"]["model"]["m2"]["theirs_only"] == 1
    assert report["groups"]["benchmark"]["math500"]["n"] == 1
    dis = read_jsonl(out / "disagreements.jsonl")
    assert [(d["line"], d["amir_bench"], d["theirs"]) for d in dis] == [(2, True, False),
                                                                     (3, False, True)]
    assert dis[0]["extract_mode"] == "boxed" and dis[0]["model"] == "m1"
    md = (out / "disagreements.md").read_text()
    assert "&lt;script&gt;" in md and "<script>" not in md and r"b \|" in md
    assert not (out / "graded.jsonl").exists()  # nothing was graded here
    assert "2 disagreements" in capsys.readouterr().out


def test_audit_grades_ungraded_lines(tmp_path):
    rows = [{"pred": r"so \boxed{\frac{1}{2}}", "gold": "0.5", "h": True},
            {"pred": "Answer: 3", "gold": "4", "h": True},
            {"pred": "Answer: x", "gold": "4", "h": False}]
    src = write_jsonl(tmp_path / "p.jsonl", rows)
    assert main(["audit", str(src), "--against", "h", "--benchmark", "math500"]) == 0
    out = tmp_path / "p.jsonl.audit"
    graded = read_jsonl(out / "graded.jsonl")
    assert [g["correct"] for g in graded] == [True, False, False]
    assert [g["extract_mode"] for g in graded] == ["boxed", "answer_line", "answer_line"]
    assert [d["line"] for d in read_jsonl(out / "disagreements.jsonl")] == [2]


def test_audit_run_directory_reads_any_record_field(tmp_path):
    """An imported run keeps another harness's verdict in a record field: audit reads it
    from each record's JSON line, whatever the field is called."""
    run = make_run(tmp_path / "run", {"p1": [True, False], "p2": [True, True]}, n=2,
                   benchmark="math500")
    recs = read_jsonl(run / "samples.jsonl")
    theirs = [True, True, False, True]
    write_jsonl(run / "samples.jsonl", [{**r, "lm_eval_exact_match": float(t)}
                                        for r, t in zip(recs, theirs)])
    out = tmp_path / "a"
    assert main(["audit", str(run), "--against", "lm_eval_exact_match", "--by", "problem_id",
                 "--out", str(out)]) == 0
    report = json.loads((out / "audit.json").read_text())
    assert report["overall"]["ours_only"] == 1 and report["overall"]["theirs_only"] == 1
    assert report["groups"]["problem_id"]["p2"]["agreement"] == 0.5


@pytest.mark.parametrize("argv_tail,err", [
    (["--against", "nope"], "no line has a verdict in field 'nope'"),
    (["--against", "bad"], "field 'bad': cannot read 'maybe'"),
])
def test_audit_bad_input_is_one_line_exit_2(tmp_path, capsys, argv_tail, err):
    src = write_jsonl(tmp_path / "g.jsonl", [{"pred": "1", "gold": "1", "correct": True,
                                              "bad": "maybe"}])
    assert main(["audit", str(src), *argv_tail]) == 2
    captured = capsys.readouterr().err
    assert err in captured and "Traceback" not in captured
    assert main(["audit", str(tmp_path / "missing.jsonl"), "--against", "x"]) == 2
    assert not (tmp_path / "g.jsonl.audit").exists()


# ----------------------------------------------------------------- the real outputs

def _adjudicated_lines() -> set[int]:
    return {int(m.group(1)) for m in re.finditer(r"^\| (\d+) \|", ADJUDICATION.read_text(), re.M)}


@pytest.mark.slow
@pytest.mark.skipif(not AUDIT_FILE.exists(),
                    reason=f"audit file not found at {AUDIT_FILE} (set AMIR_BENCH_DATA_DIR)")
def test_real_outputs_agreement(tmp_path):
    """3,640 real completions graded the way `amir-bench run` would: agreement with each
    harness's own verdict, and every accept the original rejects adjudicated by hand."""
    out = tmp_path / "audit"
    assert main(["audit", str(AUDIT_FILE), "--against", "orig_correct", "--map", BENCH_MAP,
                 "--out", str(out)]) == 0
    report = json.loads((out / "audit.json").read_text())
    assert report["overall"]["n"] == 3640
    assert report["overall"]["agreement"] >= 0.975, report["overall"]
    for name, c in report["groups"]["benchmark"].items():
        assert c["agreement"] >= 0.95, (name, c)
    ours_only = {d["line"] for d in read_jsonl(out / "disagreements.jsonl") if d["amir_bench"]}
    assert ours_only == _adjudicated_lines()


# ----------------------------------------------------------------- worker isolation

def test_grading_from_a_directory_that_shadows_the_stdlib(tmp_path):
    """`inspect.py`, `dis.py`, `math.py` in the working directory must not reach the grading
    workers (they used to die at startup: the worker interpreter put the cwd first)."""
    for mod in ("inspect", "dis", "math"):
        (tmp_path / f"{mod}.py").write_text('raise SystemExit("shadowed stdlib imported")\n')
    write_jsonl(tmp_path / "p.jsonl", [{"pred": r"\boxed{\frac{1}{2}}", "gold": "0.5"},
                                       {"pred": r"\boxed{\sqrt{12}}", "gold": r"2\sqrt{3}"}])
    # The parent runs as the console script does: its own directory, not the cwd, on sys.path.
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from amir_bench.cli import main; "
            "sys.exit(main(['grade', 'p.jsonl', '--timeout', '20']))")
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "shadowed" not in proc.stderr
    assert [r["correct"] for r in read_jsonl(tmp_path / "p.graded.jsonl")] == [True, True]


# ----------------------------------------------------------------- references and perturbations

def _wrong_number(ans: str) -> str:
    return str(int(ans.replace(",", "")) + 7) if ans.replace(",", "").lstrip("-").isdigit() \
        else ans + "+1"


@pytest.mark.slow
def test_references_pass_and_perturbed_answers_fail_with_spec_extraction(data_dir):
    """Every MATH-500 and GSM8K reference solution is graded correct under its benchmark's
    extraction; the same solutions with a wrong final answer are accepted at most 0.5 %."""
    from amir_bench.grading import Grader

    items, wrong = [], []
    for name, file in (("math500", "math500.jsonl"), ("gsm8k", "gsm8k_test.jsonl")):
        spec = get_spec(name)
        rows = read_jsonl(data_dir / file)
        for r, nxt in zip(rows, rows[1:] + rows[:1]):
            p = Problem(id=r["id"], problem="", answer=r["answer"], meta=r.get("meta") or {})
            items.append((name, item_for(p, spec, r["solution"])))
            if name == "gsm8k":
                body = r["solution"].rsplit("####", 1)[0]
                bad = f"{body}#### {_wrong_number(r['answer'])}"
            else:
                i = r["solution"].rfind("\\boxed{")
                other = nxt["answer"] if nxt["answer"].strip() != r["answer"].strip() \
                    else r["answer"] + "+1"
                bad = r["solution"][:i] + "\\boxed{" + other + "}" + "\n"
            wrong.append((name, item_for(p, spec, bad)))
    with Grader(timeout=10.0) as g:
        res = g.grade([it for _, it in items + wrong])
    good, bad = res[:len(items)], res[len(items):]
    misses = [(n, it.gold, r) for (n, it), r in zip(items, good) if not r.correct]
    assert not misses, misses[:10]
    false_accepts = [(n, it.gold, r) for (n, it), r in zip(wrong, bad) if r.correct]
    print(f"references {len(good) - len(misses)}/{len(good)} correct; "
          f"false accepts {len(false_accepts)}/{len(wrong)}")
    assert len(false_accepts) <= 0.005 * len(wrong), false_accepts
