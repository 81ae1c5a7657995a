"""Reports: report.md + one self-contained report.html + report.json from run directories.

One rich report (two runs, two benchmarks, scores, training logs, hostile model text) is
rendered once per module and checked from several sides: sections, numbers against the
JSON, no external URL, escaping, and headless Chromium (no console errors, title intact).
Then the single-run report, the paper's Table 2 partition, 4 runs (UpSet), and bad input:
one-line errors, exit 2, nothing half-written.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from runfactory import make_run, table2_runs

from amir_bench.cli import main as cli_main
from amir_bench.metrics import summarize
from amir_bench.records import load_run
from reports.blocks import md_text
from reports.render import build_report

RESAMPLES = 200
PAYLOAD = "<script>document.title='pwned'</script>"
IMG_PAYLOAD = '<img src=x onerror="document.title=\'pwned2\'">'
CHROMIUM = "/usr/bin/chromium"


# ---------------------------------------------------------------- fixtures


def _write_log(d: Path, rows: list[dict], partial_tail: str | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if partial_tail is not None:
        text += partial_tail
    (d / "metrics.jsonl").write_text(text, encoding="utf-8")
    return d


def _two_runs(root: Path, scores: bool = True) -> tuple[Path, Path]:
    """grpo and amir on amc23 (+ 2 math500 problems); amir gains a problem whose completion,
    answer, gold and id carry script payloads."""
    evil = [{"correct": j == 0, "completion": f"Reasoning {PAYLOAD} then {IMG_PAYLOAD} done",
             "extracted": PAYLOAD if j else "7", "gold": "7"} for j in range(4)]
    evil_grpo = [{"correct": False, "completion": f"bad {PAYLOAD}", "extracted": IMG_PAYLOAD,
                  "gold": "7"} for _ in range(4)]
    grpo = {"p1": 2, "p2": 0, "p3": 4, "p4": 1, f"x{PAYLOAD}": evil_grpo}
    amir = {"p1": 3, "p2": 1, "p3": 4, "p4": 0, f"x{PAYLOAD}": evil}
    extra_g = [{"benchmark": "math500", "problem_id": "m1", "sample_idx": j, "correct": j < 1}
               for j in range(4)] + [{"benchmark": "math500", "problem_id": "m2",
                                      "sample_idx": j, "correct": j < 2} for j in range(4)]
    extra_a = [{"benchmark": "math500", "problem_id": "m1", "sample_idx": j, "correct": j < 3}
               for j in range(4)] + [{"benchmark": "math500", "problem_id": "m2",
                                      "sample_idx": j, "correct": j < 2} for j in range(4)]
    man = {"checkpoint": {"path": f"ckpt/{PAYLOAD}", "sha256": "ab" * 32},
           "package_versions": {"python": "3.11.7", "torch": "2.13.0"}}
    g = make_run(root / "grpo", grpo, records=extra_g, scores=scores, manifest=man)
    a = make_run(root / "amir", amir, records=extra_a, scores=scores, manifest=man)
    return g, a


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    root = tmp_path_factory.mktemp("rich")
    g, a = _two_runs(root)
    steps = range(0, 50, 10)
    glog = _write_log(root / "train_grpo", [{"step": s, "reward": 0.1 + s / 100, "reward_std": 0.05,
                                             "accuracy": 0.2 + s / 200, "loss": 1.0 - s / 100,
                                             "completion_length_correct": 300 - s,
                                             "completion_length_incorrect": 400 - s} for s in steps])
    alog = _write_log(root / "train_amir", [{"step": s, "reward": 0.15 + s / 100, "reward_std": 0.04,
                                             "accuracy": 0.25 + s / 200, "amir/lambda": 0.1,
                                             "amir/pairs": 12 + s, "amir/pref_loss": 0.69 - s / 200,
                                             "amir/margin": s / 1000, "loss": 0.9 - s / 100}
                                            for s in steps], partial_tail='{"step": 60, "rew')
    out = root / "report"
    data = build_report([g, a], out, train_logs=[glog, alog], names=["GRPO", f"AMIR{PAYLOAD}"],
                        resamples=RESAMPLES)
    return {"data": data, "out": out, "runs": (g, a),
            "md": (out / "report.md").read_text(encoding="utf-8"),
            "html": (out / "report.html").read_text(encoding="utf-8"),
            "json": json.loads((out / "report.json").read_text(encoding="utf-8"))}


# ---------------------------------------------------------------- the rich report


def test_rich_report_has_every_section(rich):
    out, md, page, js = rich["out"], rich["md"], rich["html"], rich["json"]
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.html", "report.json",
                                                     "report.md"]
    for heading in ("Setup and provenance", "Main results", "Coverage", "Length and correctness",
                    "Log-prob margin", "Training curves", "Where the runs disagree"):
        assert f"## {heading}" in md
        assert heading in page
    assert set(js["figures"]) == {"coverage", "forest", "length", "length_quintiles", "margin",
                                  "training", "curves", "pareto"}
    for rel in js["figures"].values():
        assert (out / rel).stat().st_size > 1000
        assert f"]({rel})" in md
    assert page.count('src="data:image/png;base64,') == 8
    assert js["coverage"]["labels"] == ["GRPO", f"AMIR{PAYLOAD}"]
    assert js["margin"] is not None and js["margin_note"] is None
    # training: both logs, GRPO has no amir/* curves, the partial last line is noted
    t = {lg["name"]: lg for lg in js["training"]}
    assert t["train_amir"]["steps"] == 5 and t["train_amir"]["partial_last_line_skipped"]
    assert "amir/lambda" not in t["train_grpo"]["series"]
    assert t["train_amir"]["last"]["amir/pairs"] == 52
    assert any("train_amir" in n and "incomplete" in n for n in js["notes"])
    json.dumps(js, allow_nan=False)


def test_rich_report_numbers_come_from_samples_and_match_json(rich):
    js, md = rich["json"], rich["md"]
    g, a = rich["runs"]
    for run_dir, name in zip((g, a), js["names"]):
        fresh = summarize(load_run(run_dir).samples, 4)
        assert set(js["main_table"]["per_run"][name]) == set(fresh)
        for bench, vals in fresh.items():
            assert js["main_table"]["per_run"][name][bench] == pytest.approx(vals)
    # amc23 avg@n of GRPO: (2 + 0 + 4 + 1 + 0) / (5 * 4)
    assert js["main_table"]["per_run"]["GRPO"]["amc23"]["avg@n"] == pytest.approx(7 / 20)
    # every main-table row of report.md shows the JSON value, formatted to 0.1 %
    metrics = js["main_table"]["metrics"]
    rows = [ln for ln in md.splitlines() if ln.startswith("| amc23 | GRPO |")]
    cells = [c.strip() for c in rows[0].strip("|").split("|")]  # the first table is the main one
    s = js["main_table"]["per_run"]["GRPO"]["amc23"]
    assert cells[2:2 + len(metrics)] == [f"{100 * s[m]:.1f}" for m in metrics]
    # comparison cells: A → B (gain) [CI] from coverage's paired bootstrap
    comp = {(c["benchmark"], c["metric"]): c for c in js["main_table"]["comparisons"]}
    c = comp[("amc23", "avg@n")]
    assert c["a_value"] == pytest.approx(7 / 20) and c["b_value"] == pytest.approx(9 / 20)
    assert c["gain"] == pytest.approx(0.1)
    cov_d = js["coverage"]["benchmarks"]["amc23"]["pairs"][0]["diff"]["avg@n"]
    assert (c["ci_low"], c["ci_high"]) == (cov_d["ci_low"], cov_d["ci_high"])
    text = (f"{100 * c['a_value']:.1f} → {100 * c['b_value']:.1f} ({100 * c['gain']:+.1f}) "
            f"[{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}]")
    assert md_text(text) in md  # brackets are backslash-escaped in Markdown
    # coverage partition counts in the Markdown table are the JSON's
    part = {p["cell"]: p for p in js["coverage"]["overall"]["partition"]}
    assert part["01"]["count"] == 2  # x<script> and p2: AMIR only
    assert f"| ✓ | ✓ | {part['11']['count']} {part['11']['pct_union']:.1f}%" in md


def test_drilldown_lists_disagreements(rich):
    dd = rich["json"]["drilldown"]
    amc = dd["per_benchmark"]["amc23"]
    assert amc["disagree"] == 3  # p2 and x<script> gained, p4 lost
    assert amc["problem_ids"][-1] == "p4"
    rows = {r["problem_id"]: r for r in dd["rows"]}
    evil = rows[f"x{PAYLOAD}"]
    assert evil["kind"] == "gain" and evil["gold"] == "7"
    amir = evil["runs"][f"AMIR{PAYLOAD}"]
    assert amir["correct"] and amir["extracted"] == "7" and amir["n_correct"] == 1
    assert PAYLOAD in amir["excerpt"]
    grpo = evil["runs"]["GRPO"]
    assert not grpo["correct"] and grpo["extracted"] == IMG_PAYLOAD


def test_html_is_self_contained(rich):
    page = rich["html"]
    assert "<script" not in page.lower()
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page
    assert not re.search(r"(?i)\b(?:https?|ftp|file|wss?):", page)
    assert "//" not in re.sub(r'src="data:[^"]*"', "", page)
    for attr, val in re.findall(r'\s(src|href|action|srcset|poster|data)="([^"]*)"', page):
        assert (attr == "src" and val.startswith("data:image/png;base64,")) or \
            (attr == "href" and val.startswith("#")), (attr, val[:60])
    # the embedded PNGs carry no URL either (matplotlib's Software tag is dropped)
    for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        assert b"http" not in base64.b64decode(b64)
    assert "Content-Security-Policy" in page


def test_model_text_is_escaped_everywhere(rich):
    page, md = rich["html"], rich["md"]
    ours = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="[^"<>]*" class="plot">')
    assert len(ours.findall(page)) == 8
    text = ours.sub("", page)
    for raw in (PAYLOAD, IMG_PAYLOAD, "<img", "<script"):
        assert raw not in text
        assert raw not in md
    assert html.escape(PAYLOAD) in page  # shown as text, in the excerpt, the id, the name
    assert page.count(html.escape("document.title='pwned'")) >= 5
    assert "&lt;script&gt;" in md


def _chromium_dump(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """(dumped DOM, console lines) of the page in headless Chromium."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=2000", "--dump-dom",
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return proc.stdout, console


def test_html_opens_in_headless_chromium(rich, tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not installed (`make test` runs scripts/ensure_chromium.sh; "
                    "it could not install Debian's chromium here)")
    dom, console = _chromium_dump(rich["out"] / "report.html", tmp_path)
    assert console == [], console
    m = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert m, dom[:500]
    assert html.unescape(m.group(1)) == rich["json"]["title"]
    assert html.unescape(m.group(1)) not in ("pwned", "pwned2")
    assert "Where the runs disagree" in dom
    assert dom.count("<img") == 8  # the plots, not the payload's <img>


def test_chromium_check_would_catch_a_script(tmp_path):
    """The browser check is not vacuous: an unescaped script shows up in it."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not installed")
    bad = tmp_path / "bad.html"
    bad.write_text(f"<!DOCTYPE html><html><head><title>t</title></head><body>{PAYLOAD}"
                   "</body></html>", encoding="utf-8")
    dom, _ = _chromium_dump(bad, tmp_path)
    assert "<title>pwned</title>" in dom
    from reports.html import CSP
    bad.write_text(f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
                   f'content="{CSP}"><title>t</title></head><body>{PAYLOAD}</body></html>',
                   encoding="utf-8")
    dom, console = _chromium_dump(bad, tmp_path)
    assert "<title>t</title>" in dom and any("Content Security Policy" in c for c in console)


def test_html_builder_escapes_and_refuses_external_resources():
    from reports.html import Markup, esc, tag

    assert tag("td", PAYLOAD) == "<td>" + html.escape(PAYLOAD) + "</td>"
    assert tag("span", "x", title='"><script>') == '<span title="&quot;&gt;&lt;script&gt;">x</span>'
    assert esc(Markup("<b>")) == "<b>" and esc(None) == ""
    for bad in ({"src": "https://example.com/a.png"}, {"src": "//example.com/a.png"},
                {"href": "https://example.com"}, {"href": "javascript:alert(1)"},
                {"onclick": "alert(1)"}, {"style": "background:url(https://e.com)"}):
        with pytest.raises(ValueError):
            tag("img" if "src" in bad else "a", **bad)


def test_cli_module_import_is_light():
    code = ("import sys, reports.commands; heavy = [m for m in ('matplotlib', 'pandas', "
            "'seaborn', 'reports.render', 'analysis.coverage') if m in sys.modules]; "
            "sys.exit(str(heavy) if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------- other shapes


def test_single_run_report_omits_comparisons(tmp_path):
    g, _ = _two_runs(tmp_path, scores=False)
    data = build_report([g], tmp_path / "out", resamples=RESAMPLES)
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert data["coverage"] is None and data["drilldown"] is None
    assert data["main_table"]["comparisons"] == []
    assert "## Main results" in md and "## Length and correctness" in md
    assert "## Coverage" not in md and "## Where the runs disagree" not in md
    assert any(n.startswith("Single run") for n in data["notes"])
    # no scores: the margin section says why and how to get it
    assert data["margin"] is None and "amir-bench score" in data["margin_note"]
    assert "Log-prob margin omitted" in md
    assert data["length"]["pairs"] == []
    assert set(data["figures"]) == {"length", "length_quintiles", "curves", "pareto"}


def test_table2_partition_in_report(tmp_path):
    runs = table2_runs(tmp_path / "runs")
    data = build_report(runs, tmp_path / "out", resamples=RESAMPLES)
    part = {p["cell"]: p for p in data["coverage"]["benchmarks"]["amc23"]["partition"]}
    pct = {k: round(part[k]["pct_union"], 1) for k in ("111", "110", "101", "100", "011", "010", "001")}
    assert pct == {"111": 70.6, "110": 2.9, "101": 11.8, "100": 2.9, "011": 2.9, "010": 0.0,
                   "001": 8.8}
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "| ✓ | ✓ | ✓ | 24 70.6% | 24 70.6% |" in md
    assert data["drilldown"]["total"] == 34 - 24  # solved by some, not all
    assert len(data["main_table"]["comparisons"]) > 0


def test_four_runs_use_upset_plot_and_list_all_pairs(tmp_path):
    specs = [{"p1": 1, "p2": 0, "p3": 2}, {"p1": 0, "p2": 1, "p3": 2},
             {"p1": 1, "p2": 1, "p3": 0}, {"p1": 2, "p2": 2, "p3": 2}]
    runs = [make_run(tmp_path / f"r{i}", s) for i, s in enumerate(specs)]
    data = build_report(runs, tmp_path / "out", resamples=RESAMPLES)
    assert len({(c["a"], c["b"]) for c in data["main_table"]["comparisons"]}) == 6
    assert "coverage" in data["figures"]


def test_same_dir_names_are_disambiguated(tmp_path):
    a = make_run(tmp_path / "grpo" / "final", {"p1": 1, "p2": 0})
    b = make_run(tmp_path / "amir" / "final", {"p1": 1, "p2": 2})
    data = build_report([a, b], tmp_path / "out", resamples=RESAMPLES)
    assert data["names"] == ["grpo/final", "amir/final"]


def test_cli_report_writes_and_rerender_replaces(tmp_path, capsys):
    g = make_run(tmp_path / "grpo", {"p1": 1, "p2": 0, "p3": 4})
    a = make_run(tmp_path / "amir", {"p1": 2, "p2": 1, "p3": 4})
    out = tmp_path / "out"
    rc = cli_main(["report", str(g), str(a), "--out", str(out), "--name", "GRPO", "--name",
                   "AMIR", "--resamples", "100", "--seed", "3"])
    assert rc == 0
    assert "report.html" in capsys.readouterr().out
    first = json.loads((out / "report.json").read_text())
    assert first["names"] == ["GRPO", "AMIR"] and first["seed"] == 3
    # a second render over the same folder replaces the files and leaves no temp files
    assert cli_main(["report", str(a), "--out", str(out), "--resamples", "100"]) == 0
    assert json.loads((out / "report.json").read_text())["names"] == ["amir"]
    assert not (out / "figures" / "coverage.png").exists()  # stale figure removed
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_summary_json_is_checked_not_trusted(pair, tmp_path):
    from amir_bench.runstore import write_summary

    g, a = pair
    write_summary(g)
    stale = write_summary(a)
    stale["amc23"]["avg@n"] = 0.99
    (a / "summary.json").write_text(json.dumps(stale))
    data = build_report([g, a], tmp_path / "out", resamples=50)
    prov = {r["name"]: r for r in data["runs"]}
    assert prov["grpo"]["summary_json"] == "matches samples"
    assert prov["amir"]["summary_json"].startswith("stale (amc23/avg@n)")
    assert data["main_table"]["per_run"]["amir"]["amc23"]["avg@n"] == pytest.approx(7 / 12)


def test_margin_for_the_scored_runs_only(tmp_path):
    g = make_run(tmp_path / "grpo", {"p1": 1, "p2": 0, "p3": 2}, scores=True)
    a = make_run(tmp_path / "amir", {"p1": 2, "p2": 1, "p3": 2})
    data = build_report([g, a], tmp_path / "out", resamples=50)
    assert data["margin"]["labels"] == ["grpo"]
    assert "amir has no scores.jsonl" in data["margin_note"]
    assert "margin" in data["figures"]


def test_ensure_chromium_script_exits_0():
    script = Path(__file__).resolve().parents[1] / "scripts" / "ensure_chromium.sh"
    assert subprocess.run(["sh", str(script)], capture_output=True, timeout=600).returncode == 0


# ---------------------------------------------------------------- bad input


def _fails(argv: list[str], capsys, match: str) -> str:
    rc = cli_main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err
    assert re.search(match, err), err
    return err


@pytest.fixture
def pair(tmp_path):
    g = make_run(tmp_path / "grpo", {"p1": 1, "p2": 0, "p3": 4})
    a = make_run(tmp_path / "amir", {"p1": 2, "p2": 1, "p3": 4})
    return g, a


def _truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("case,match", [
    ("not_a_dir", r"not a directory"),
    ("no_manifest", r"not a run directory \(no manifest\.json\)"),
    ("no_samples", r"run has no samples\.jsonl"),
    ("empty_samples", r"holds no samples"),
    ("truncated_samples", r"samples\.jsonl:\d+: not valid JSON"),
    ("truncated_manifest", r"manifest\.json: not valid JSON"),
    ("truncated_summary", r"summary\.json: not valid JSON \(truncated\?\)"),
    ("bad_record", r"samples\.jsonl:1: not a SampleRecord"),
    ("truncated_scores", r"scores\.jsonl:\d+: "),
    ("partial_scores", r"scores\.jsonl covers \d+ of \d+ samples"),
])
def test_bad_run_dirs_exit_2_and_write_nothing(case, match, pair, tmp_path, capsys):
    g, a = pair
    bad = a
    if case == "not_a_dir":
        bad = tmp_path / "missing"
    elif case == "no_manifest":
        bad = tmp_path / "plain"
        bad.mkdir()
        (bad / "notes.txt").write_text("hello")
    elif case == "no_samples":
        (a / "samples.jsonl").unlink()
    elif case == "empty_samples":
        (a / "samples.jsonl").write_text("")
    elif case == "truncated_samples":
        _truncate(a / "samples.jsonl")
    elif case == "truncated_manifest":
        _truncate(a / "manifest.json")
    elif case == "truncated_summary":
        (a / "summary.json").write_text('{"amc23": {"avg@n": 0.')
    elif case in ("truncated_scores", "partial_scores"):
        make_run(g, {"p1": 1, "p2": 0, "p3": 4}, scores=True)
        make_run(a, {"p1": 2, "p2": 1, "p3": 4}, scores=True)
        if case == "truncated_scores":
            _truncate(a / "scores.jsonl")
        else:
            lines = (a / "scores.jsonl").read_text().splitlines(keepends=True)
            (a / "scores.jsonl").write_text("".join(lines[:-3]))
    elif case == "bad_record":
        lines = (a / "samples.jsonl").read_text().splitlines()
        rec = json.loads(lines[0])
        del rec["correct"]
        lines[0] = json.dumps(rec)
        (a / "samples.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    _fails(["report", str(g), str(bad), "--out", str(out)], capsys, match)
    assert not out.exists()


def test_incompatible_runs_need_force(tmp_path, capsys):
    g = make_run(tmp_path / "grpo", {"p1": 1, "p2": 0, "p3": 4})
    a = make_run(tmp_path / "amir", {"p1": 2, "p2": 1, "p3": 4}, sha="other-rows")
    out = tmp_path / "out"
    _fails(["report", str(g), str(a), "--out", str(out)], capsys, r"different amc23 rows.*--force")
    assert not out.exists()
    assert cli_main(["report", str(g), str(a), "--out", str(out), "--force",
                     "--resamples", "50"]) == 0
    data = json.loads((out / "report.json").read_text())
    assert any("different amc23 rows" in n for n in data["coverage"]["notes"])
    assert "benchmarks.amc23.sha256" in data["differences"]


def test_different_n_is_an_error(tmp_path, capsys):
    g = make_run(tmp_path / "grpo", {"p1": 1, "p2": 0}, n=4)
    a = make_run(tmp_path / "amir", {"p1": 2, "p2": 1}, n=2)
    _fails(["report", str(g), str(a), "--out", str(tmp_path / "out")], capsys,
           r"differ in samples per problem")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra,match", [
    (["--name", "only-one"], r"--name given 1 time\(s\) for 2 run\(s\)"),
    (["--name", "x", "--name", "x"], r"names must be unique"),
    (["--train-log", "NOLOG"], r"--train-log .*: no metrics\.jsonl"),
    (["--train-log", "MISSING"], r"--train-log .*: not a directory"),
    (["--train-log", "BADLOG"], r"metrics\.jsonl:2: not valid JSON"),
    (["--resamples", "0"], r"--resamples must be at least 1"),
])
def test_bad_options_exit_2(extra, match, pair, tmp_path, capsys):
    g, a = pair
    (tmp_path / "nolog").mkdir()
    _write_log(tmp_path / "badlog", [{"step": 0, "reward": 0.1}], partial_tail="{oops\n{}\n")
    subst = {"NOLOG": str(tmp_path / "nolog"), "MISSING": str(tmp_path / "missing"),
             "BADLOG": str(tmp_path / "badlog")}
    extra = [subst.get(x, x) for x in extra]
    _fails(["report", str(g), str(a), "--out", str(tmp_path / "out")] + extra, capsys, match)
    assert not (tmp_path / "out").exists()


def test_same_run_twice_and_out_is_a_file(pair, tmp_path, capsys):
    g, a = pair
    _fails(["report", str(g), str(g), "--out", str(tmp_path / "o1")], capsys, r"given twice")
    f = tmp_path / "o2"
    f.write_text("x")
    _fails(["report", str(g), str(a), "--out", str(f)], capsys, r"exists and is not a directory")
    assert f.read_text() == "x"


def test_failure_while_rendering_leaves_old_report_intact(pair, tmp_path, monkeypatch):
    g, a = pair
    out = tmp_path / "out"
    build_report([g, a], out, resamples=50)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    from reports import plots

    def boom(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(plots, "margin_figure", boom)
    monkeypatch.setattr(plots, "length_figure", boom)
    with pytest.raises(RuntimeError, match="plot failed"):
        build_report([a, g], out, resamples=50)
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    shutil.rmtree(out)
    with pytest.raises(RuntimeError):
        build_report([a, g], out, resamples=50)
    assert not out.exists()
