"""`amir-bench demo --quick`: the whole pipeline end to end at toy size, and re-use on re-run."""

from __future__ import annotations

import json

import pytest

from amir_bench.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "quick"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    return out


def test_every_artifact_exists(demo_out):
    expected = [
        "base/warmstart.json", "base/config.json", "base/tokenizer.json",
        "demo.json", "headline.md",
        "analysis/coverage.json", "analysis/length.json", "analysis/margin.json",
        "report/report.md", "report/report.html", "report/report.json",
    ]
    for algo in ("grpo", "amir-grpo"):
        expected += [f"train/{algo}-s0/{f}" for f in
                     ("train_info.json", "metrics.jsonl", "recipe.yaml", "config.json")]
    for run in ("base", "grpo-s0", "amir-grpo-s0"):
        expected += [f"runs/{run}/{f}" for f in
                     ("manifest.json", "samples.jsonl", "summary.json", "scores.jsonl")]
    missing = [f for f in expected if not (demo_out / f).exists()]
    assert not missing
    warm = json.loads((demo_out / "base/warmstart.json").read_text())
    assert warm["steps"] == 40  # quick mode trains the fixed minimum
    amir_log = [json.loads(x) for x in
                (demo_out / "train/amir-grpo-s0/metrics.jsonl").read_text().splitlines()]
    assert any("amir/lambda" in row for row in amir_log)
    grpo_log = [json.loads(x) for x in
                (demo_out / "train/grpo-s0/metrics.jsonl").read_text().splitlines()]
    assert not any("amir/lambda" in row for row in grpo_log)


def test_report_numbers_match_the_json_files(demo_out):
    md = (demo_out / "report/report.md").read_text()
    report = json.loads((demo_out / "report/report.json").read_text())
    demo = json.loads((demo_out / "demo.json").read_text())
    per_run = report["main_table"]["per_run"]
    metrics = report["main_table"]["metrics"]
    for run, name in (("base", "base"), ("grpo-s0", "GRPO"), ("amir-grpo-s0", "AMIR-GRPO")):
        summary = json.loads((demo_out / "runs" / run / "summary.json").read_text())["arith"]
        for m in metrics:
            assert per_run[name]["arith"][m] == pytest.approx(summary[m])
        row = next(ln for ln in md.splitlines() if ln.startswith(f"| arith | {name} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2:2 + len(metrics)] == [f"{100 * summary[m]:.1f}" for m in metrics]
    # the headline in demo.json is the same data as the run summaries and coverage.json
    head = demo["per_seed"][0]
    base_summary = json.loads((demo_out / "runs/base/summary.json").read_text())["arith"]
    assert head["avg@n"]["base"] == pytest.approx(base_summary["avg@n"])
    cov = json.loads((demo_out / "analysis/coverage.json").read_text())["benchmarks"]["arith"]
    assert {c["cell"]: c["count"] for c in cov["partition"]} == \
        {k: v["count"] for k, v in head["coverage_cells"].items()}
    assert sum(v["count"] for v in head["coverage_cells"].values()) == head["problems"] == 24
    headline = (demo_out / "headline.md").read_text()
    assert f"| base | {100 * base_summary['avg@n']:.1f} |" in headline


def test_rerun_reuses_finished_stages(demo_out, capsys):
    before = {p: p.stat().st_mtime_ns for p in demo_out.rglob("*.safetensors")}
    samples = (demo_out / "runs/grpo-s0/samples.jsonl").read_bytes()
    assert main(["demo", "--quick", "--out", str(demo_out)]) == 0
    out = capsys.readouterr().out
    assert "reusing" in out
    assert {p: p.stat().st_mtime_ns for p in demo_out.rglob("*.safetensors")} == before
    assert (demo_out / "runs/grpo-s0/samples.jsonl").read_bytes() == samples


def test_same_output_twice(demo_out, tmp_path):
    # a second run from scratch on the same machine gives the same samples and numbers (seed 0)
    again = tmp_path / "again"
    assert main(["demo", "--quick", "--out", str(again)]) == 0
    for run in ("base", "grpo-s0", "amir-grpo-s0"):
        rel = f"runs/{run}/samples.jsonl"
        assert (again / rel).read_bytes() == (demo_out / rel).read_bytes()
    first, second = (json.loads((d / "demo.json").read_text()) for d in (demo_out, again))
    assert second["per_seed"] == first["per_seed"]
    assert second["warm_start"]["probe_accuracy"] == first["warm_start"]["probe_accuracy"]
    assert [s["stage"] for s in second["stages"]] == [s["stage"] for s in first["stages"]]
