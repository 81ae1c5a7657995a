"""Presets and per-benchmark n: expansion, where each n comes from, layering of a preset's
run defaults under the user's flags, and what the manifest records."""

from __future__ import annotations

import pytest

from amir_bench.backends import Decoding
from amir_bench.cli import main
from amir_bench.errors import UserError
from amir_bench.runconfig import RunConfig
from benchmarks.presets import PRESETS, select
from benchmarks.specs import REGISTRY

JUSTRL9 = {"aime24": 32, "aime25": 32, "amc23": 32, "math500": 4, "minerva": 4,
           "olympiadbench": 4, "hmmt_feb25": 32, "brumo25": 32, "cmimc25": 32}


def test_every_preset_member_is_a_benchmark():
    for p in PRESETS.values():
        assert p.members and all(name in REGISTRY for name, _ in p.members), p.name


def test_default_n_follows_the_field():
    n = {name: s.default_n for name, s in REGISTRY.items()}
    assert {n[b] for b in ("aime24", "aime25", "aime26", "amc23", "hmmt_feb25", "brumo25",
                           "cmimc25")} == {32}
    assert {n[b] for b in ("math500", "minerva", "olympiadbench", "gsm8k")} == {4}
    assert n["olymmath_en_easy"] == n["olymmath_en_hard"] == 64


def test_justrl9_expands_with_its_n():
    sel = select(["justrl9"])
    assert sel.names == list(JUSTRL9) and sel.n == JUSTRL9
    assert set(sel.n_source.values()) == {"preset justrl9"} and sel.defaults == {}


def test_mixed_list_keeps_order_and_sources():
    sel = select(["math500", "recent", "aime2026"])  # an alias of a member is the same one
    assert sel.names == ["math500", "aime26", "olymmath_en_hard"]
    assert sel.n == {"math500": 4, "aime26": 32, "olymmath_en_hard": 64}
    assert set(sel.n_source.values()) == {"benchmark default_n"}
    assert select(["aqua_rat"]).n == {"aqua_rat": None}  # no field default: the run's n


def test_conflicting_lists_are_one_line_errors():
    with pytest.raises(UserError, match="listed twice with different n"):
        select(["amir-paper", "justrl9"])  # aime25 at n = 8 and at n = 32
    with pytest.raises(UserError, match="unknown benchmark 'nosuch'.*presets: justrl9"):
        select(["nosuch"])


def test_flags_override_preset_defaults_which_override_dataclass_defaults():
    cfg = RunConfig.from_options("ckpt", {"benchmarks": ("amir-paper",), "n": None,
                                          "temperature": None, "seed": 3})
    assert cfg.template == "amir-xml" and cfg.decoding.temperature == 0.6
    assert cfg.decoding.max_new_tokens == 1024 and cfg.decoding.seed == 3
    assert set(cfg.n_per_benchmark.values()) == {8}
    cfg = RunConfig.from_options("ckpt", {"benchmarks": ("amir-paper",), "template": "boxed",
                                          "max_new_tokens": 64})
    assert cfg.template == "boxed" and cfg.decoding.max_new_tokens == 64
    cfg = RunConfig.from_options("ckpt", {"benchmarks": ("justrl9",), "n": 2})
    assert set(cfg.n_per_benchmark.values()) == {2} and set(cfg.n_source.values()) == {"--n"}
    cfg = RunConfig.from_options("ckpt", {"benchmarks": ("aqua_rat", "math500")})
    assert cfg.n_per_benchmark == {"aqua_rat": Decoding().n, "math500": 4}
    assert cfg.n_source == {"aqua_rat": "run default", "math500": "benchmark default_n"}
    assert cfg.template == "boxed" and cfg.decoding == Decoding()


def test_manifest_decoding_holds_n_only_when_shared():
    cfg = RunConfig.from_options("ckpt", {"benchmarks": ("justrl9",)})
    assert "n" not in cfg.manifest_decoding(list(JUSTRL9))
    assert cfg.manifest_decoding(["aime24", "hmmt_feb25"])["n"] == 32
    assert cfg.decoding_for("math500").n == 4 and cfg.decoding_for("aime24").n == 32


def test_benchmarks_command_lists_licenses_rows_n_and_presets(capsys):
    assert main(["benchmarks"]) == 0
    out = capsys.readouterr().out
    for name in ("aime26", "hmmt_feb25", "brumo25", "cmimc25", "olymmath_en_easy",
                 "olymmath_en_hard", "justrl9", "amir-paper", "competition-2025", "recent"):
        assert name in out
    assert out.count("CC BY-NC-SA 4.0") == 4  # the four MathArena sets
    assert "MathArena/hmmt_feb_2025" in out and "temperature=0.6" in out


def test_declared_rows_match_the_local_files(data_dir):
    from benchmarks.loaders import load_problems

    for name, spec in REGISTRY.items():
        if spec.builtin or not (data_dir / spec.local_file).exists():
            continue
        assert len(load_problems(name, data_dir=data_dir)) == spec.rows, name


def test_where_n_came_from_is_provenance_not_configuration(tmp_path):
    """--n 8 and the run default 8 are the same run: --resume accepts either."""
    from amir_bench.evaluate import _manifest, select_problems
    from amir_bench.runstore import diff_config

    def manifest(n):
        cfg = RunConfig.from_options(str(tmp_path), {"benchmarks": ("arith",), "n": n,
                                                     "limit": 2})
        return _manifest(cfg, "hf", select_problems(cfg))

    implicit, explicit = manifest(None), manifest(8)
    assert implicit["benchmarks"]["arith"]["n"] == explicit["benchmarks"]["arith"]["n"] == 8
    assert (implicit["n_source"], explicit["n_source"]) == ({"arith": "run default"},
                                                            {"arith": "--n"})
    assert diff_config(implicit, explicit) == []
    assert sorted(diff_config(implicit, manifest(4))) == ["benchmarks.arith.n", "decoding.n"]
