"""`amir-bench curves`, `coverage --by / --difficulty-ref / --group`, accuracy vs tokens, and the
report sections of reports/where.py, on small hand-built runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runfactory import make_run

from amir_bench.cli import main
from amir_bench.records import load_run


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "base", {"p1": 1, "p2": 1, "p3": 4, "p4": 0}, n=4)
    make_run(tmp_path / "rl", {"p1": 4, "p2": 0, "p3": 4, "p4": 0}, n=4)
    make_run(tmp_path / "rl2", {"p1": 3, "p2": 0, "p3": 4, "p4": 1}, n=4)
    return tmp_path


def _error(capsys, needle: str) -> None:
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


def _fails(capsys, argv: list, needle: str) -> None:
    """The command exits 2 with one error line that contains needle."""
    capsys.readouterr()
    assert main(argv) == 2
    _error(capsys, needle)


def test_curves_json_and_out(runs, capsys):
    rc = main(["curves", "base", "rl", "--json", "--resamples", "200", "--out", "c.json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((runs / "c.json").read_text())
    assert printed["ks"] == [1, 2, 4] and saved["benchmarks"] == printed["benchmarks"]
    rl = {d["k"]: d["estimate"] for d in printed["benchmarks"]["amc23"]["runs"]["rl"]["pass@k"]}
    assert rl == {1: pytest.approx(0.5), 2: pytest.approx(0.5), 4: pytest.approx(0.5)}
    base = printed["benchmarks"]["amc23"]["runs"]["base"]["pass@k"]
    assert base[2]["estimate"] == pytest.approx(0.75)  # p1, p2, p3 solved at k = 4
    assert printed["maj_method"]["amc23"] == {"1": "exact", "2": "exact", "4": "exact"}
    pair = printed["benchmarks"]["amc23"]["pairs"][0]
    assert pair["pass@k"]["crossing"]["small_k_leader"] == "b"


def test_curves_tables_and_bad_input(runs, capsys):
    assert main(["curves", "base", "rl", "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "pass@k / maj@k" in out and "crossing k" in out
    _fails(capsys, ["curves", "base", "nope"], "nope")
    _fails(capsys, ["curves", "base", "--maj-subsets", "0"], "--maj-subsets")
    make_run(runs / "n8", {"p1": 1, "p2": 1, "p3": 4, "p4": 0}, n=8)
    _fails(capsys, ["curves", "base", "n8"], "samples per problem")
    assert not list(runs.glob("*.json"))


def test_coverage_by_difficulty_and_reference(runs, capsys):
    rc = main(["coverage", "base", "rl", "--by", "difficulty", "--difficulty-ref", "rl2",
               "--resamples", "100"])
    assert rc == 0
    res = json.loads((runs / "coverage.json").read_text())
    st = res["strata"][0]
    assert st["by"] == "difficulty" and st["reference"] == "rl2" and not st["notes"]
    # rl2 rates: p1 3/4, p2 0, p3 1, p4 1/4
    assert st["strata"] == ["0", "(0, .25]", "(.5, .75]", "1"]
    assert st["benchmarks"]["amc23"]["0"]["pairs"][0]["losses"] == ["p2"]
    assert "strata by difficulty (reference rl2)" in capsys.readouterr().out
    _fails(capsys, ["coverage", "base", "rl", "--by", "topic"], "--by 'topic'")


def test_coverage_by_level_reads_the_benchmark_rows(tmp_path, monkeypatch, data_dir, capsys):
    from benchmarks.loaders import benchmark_source, load_problems, rows_sha256
    from benchmarks.specs import get_spec

    data_dir = Path(data_dir).resolve()
    monkeypatch.setenv("AMIR_BENCH_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    probs = load_problems("math500", data_dir=data_dir)[:6]
    entry = {"source": benchmark_source(get_spec("math500"), data_dir),
             "sha256": rows_sha256(probs), "count": 6, "problem_ids": [p.id for p in probs]}
    for name, counts in (("a", [0, 1, 2, 3, 4, 0]), ("b", [4, 0, 2, 4, 4, 1])):
        make_run(tmp_path / name, dict(zip([p.id for p in probs], counts)), n=4,
                 benchmark="math500", manifest={"benchmarks": {"math500": entry}})
    assert main(["coverage", "a", "b", "--by", "level", "--by", "subject",
                 "--resamples", "50"]) == 0
    res = json.loads((tmp_path / "coverage.json").read_text())
    levels = {str(p.level) for p in probs}
    assert set(res["strata"][0]["strata"]) == levels
    assert set(res["strata"][1]["strata"]) == {p.subject for p in probs}
    total = sum(b["problems"] for b in res["strata"][0]["benchmarks"]["math500"].values())
    assert total == 6
    # runs whose rows cannot be found: one line that says what to pass
    make_run(tmp_path / "c", {"p1": 1}, n=4)
    make_run(tmp_path / "d", {"p1": 2}, n=4)
    capsys.readouterr()
    _fails(capsys, ["coverage", "c", "d", "--by", "level", "--out", "x.json"], "--data-dir")
    assert not (tmp_path / "x.json").exists()


def test_coverage_groups(runs, capsys):
    rc = main(["coverage", "base", "--group", "rl=rl,rl2", "--resamples", "200"])
    assert rc == 0
    res = json.loads((runs / "coverage.json").read_text())
    rep = res["replicates"]
    assert rep["groups"] == {"base": 1, "rl": 2}
    m = rep["benchmarks"]["amc23"]["metrics"]["rl"]["avg@n"]
    assert m["per_seed"] == [0.5, 0.5] and m["mean"] == 0.5
    diff = rep["benchmarks"]["amc23"]["pairs"][0]["diff"]["avg@n"]["estimate"]
    assert diff == pytest.approx(0.5 - 6 / 16)
    out = capsys.readouterr().out
    assert "replicate groups" in out and "two-level" in out
    _fails(capsys, ["coverage", "--group", "x"], "NAME=RUN")
    _fails(capsys, ["coverage", "rl", "--group", "rl=rl2"], "used twice")
    _fails(capsys, ["coverage"], "no run directories")


def test_tokens_pareto_matched_length_and_reasoning(tmp_path):
    from analysis.tokens import pareto_front, tokens_of_runs

    assert pareto_front([100, 200, 150, 300], [0.5, 0.7, 0.4, 0.7]) == [True, True, False, False]
    think = [{"correct": True, "completion": "<think>abcdef</think>xy", "num_tokens": 23},
             {"correct": False, "completion": "no reasoning here", "num_tokens": 10}]
    a = make_run(tmp_path / "a", {"p1": think, "p2": [True, False]}, n=2)
    b = make_run(tmp_path / "b", {"p1": [False, False], "p2": [True, True]}, n=2)
    res = tokens_of_runs([load_run(a), load_run(b)], ["a", "b"])
    blk = res["benchmarks"]["amc23"]
    rs = blk["runs"]["a"]["reasoning"]
    # "<think>abcdef</think>" is 21 of 23 characters: 21 of 23 tokens are reasoning
    assert rs["samples_with_reasoning"] == 1
    assert rs["all"] == {"samples": 1, "reasoning_tokens": 21.0, "answer_tokens": 2.0}
    assert blk["runs"]["b"]["reasoning"] is None
    bins = blk["matched_length"]
    for lab in ("a", "b"):
        assert sum(x["runs"][lab]["samples"] for x in bins) == 4
    assert blk["runs"]["a"]["accuracy"] == 0.5 and blk["runs"]["b"]["accuracy"] == 0.5


def test_report_sections_from_run_objects(runs):
    from analysis.coverage import coverage
    from reports.blocks import to_markdown
    from reports.where import collect_where, where_blocks, where_figures

    dirs = [runs / "base", runs / "rl", runs / "rl2"]
    loaded = [load_run(d) for d in dirs]
    cov = coverage(dirs, resamples=100)
    data = collect_where(loaded, ["base", "rl", "rl2"], coverage=cov, resamples=100,
                         groups={"rl": loaded[1:]})
    json.dumps(data)  # every number JSON-able for report.json
    assert set(data["strata"]) == {"difficulty"}
    assert any("level and subject omitted" in n for n in data["strata_notes"])
    md = to_markdown(where_blocks(data), {"curves": "figures/curves.png"})
    for heading in ("## pass@k and maj@k curves", "## Where the differences come from: strata",
                    "## Accuracy vs tokens", "## Replicate seeds", "### by difficulty"):
        assert heading in md
    assert "crossing k" in md and "figures/curves.png" in md
    figs = where_figures(data)
    assert set(figs) == {"curves", "pareto"}
    assert all(png.startswith(b"\x89PNG") for png in figs.values())
    single = collect_where(loaded[:1], ["base"], resamples=50)
    assert single["strata"] == {} and single["curves"]["labels"] == ["base"]
    assert "give two or more runs" in to_markdown(where_blocks(single), {})


def test_strata_section_with_a_stratum_missing_from_the_first_benchmark(tmp_path):
    """amc23's problems are all easy for the reference, math500's all unsolved: each benchmark
    has only one difficulty bin, and the section still lists both."""
    from analysis.coverage import coverage
    from analysis.strata import reference_rates, strata
    from reports.blocks import to_markdown
    from reports.where import strata_section

    recs = [{"benchmark": "math500", "problem_id": f"m{i}", "sample_idx": j, "correct": False}
            for i in range(3) for j in range(4)]
    a = make_run(tmp_path / "a", {"p1": 4, "p2": 4}, n=4, records=recs)
    b = make_run(tmp_path / "b", {"p1": 2, "p2": 4}, n=4, records=recs)
    cov = coverage([a, b], resamples=50)
    st = strata(cov, "difficulty", ref_rates=reference_rates(cov), reference="a", resamples=50)
    assert list(st["benchmarks"]["amc23"]) == ["1"] and list(st["benchmarks"]["math500"]) == ["0"]
    md = to_markdown(strata_section({"difficulty": st}, []), {})
    assert "| math500 | 0 | 3 |" in md and "| amc23 | 1 | 2 |" in md
    assert "only a / only b" in md


def test_curves_force_compares_at_the_smaller_n(runs, capsys):
    make_run(runs / "n8", {"p1": [True] * 4 + [False] * 4, "p2": 0, "p3": 8, "p4": 0}, n=8)
    assert main(["curves", "base", "n8", "--force", "--json", "--resamples", "50"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 4 and res["ks"] == [1, 2, 4]
    n8 = {d["k"]: d["estimate"] for d in res["benchmarks"]["amc23"]["runs"]["n8"]["pass@k"]}
    assert n8[1] == pytest.approx(0.5)  # the first 4 samples: p1 4/4, p3 4/4
    assert any("differ in n" in note for note in res["notes"])


def test_where_blocks_render_to_html_with_names_escaped(runs):
    from reports.html import render_page
    from reports.where import collect_where, where_blocks, where_figures

    loaded = [load_run(runs / "base"), load_run(runs / "rl")]
    names = ["<b>base</b>", "rl"]
    data = collect_where(loaded, names, resamples=50)
    page = render_page("where", where_blocks(data), where_figures(data))
    assert "&lt;b&gt;base&lt;/b&gt;" in page and "<b>base</b>" not in page
    assert "pass@k and maj@k curves" in page and "data:image/png;base64" in page
