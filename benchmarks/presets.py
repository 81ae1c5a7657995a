"""Benchmark presets: the benchmark lists (and sample counts) papers report, as data.

A preset name is accepted anywhere a benchmark list is (`run --benchmarks justrl9`). Each
member carries its n; a preset may also carry run defaults (decoding, template) that the
user's flags still override.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from amir_bench.errors import UserError
from benchmarks.specs import BenchmarkSpec, get_spec


@dataclass(frozen=True)
class Preset:
    """A named benchmark list with the protocol a paper used."""

    name: str
    members: tuple[tuple[str, int | None], ...]  # (benchmark, n); None: its default_n
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)  # run options (temperature, template…)


_AVG32, _AVG4 = 32, 4

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("justrl9", (("aime24", _AVG32), ("aime25", _AVG32), ("amc23", _AVG32),
                       ("math500", _AVG4), ("minerva", _AVG4), ("olympiadbench", _AVG4),
                       ("hmmt_feb25", _AVG32), ("brumo25", _AVG32), ("cmimc25", _AVG32)),
           "JustRL's nine: avg@32 on the competitions, avg@4 on MATH-500/Minerva/OlympiadBench"),
    Preset("amir-paper", tuple((b, 8) for b in ("gsm8k", "aime25", "olympiadbench", "amc23",
                                                "minerva", "aqua_rat", "livemathbench")),
           "AMIR-GRPO paper, Table 1 (n = 8, temperature 0.6, 1,024 new tokens, amir-xml)",
           defaults={"temperature": 0.6, "max_new_tokens": 1024, "template": "amir-xml"}),
    Preset("competition-2025", (("aime25", None), ("hmmt_feb25", None), ("brumo25", None),
                                ("cmimc25", None)),
           "2025 contests: AIME, HMMT February, BRUMO, CMIMC"),
    Preset("recent", (("aime26", None), ("olymmath_en_hard", None)),
           "2026 papers' additions: AIME 2026, OlymMATH-EN-HARD"),
]}


@dataclass
class Selection:
    """A benchmark list after presets are expanded: names in order (first mention wins), each
    one's n and where that n came from, and the run defaults the presets carry."""

    names: list[str] = field(default_factory=list)
    n: dict[str, int | None] = field(default_factory=dict)  # None: the run's default n
    n_source: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, n: int | None, source: str) -> None:
        """Add one benchmark; the same benchmark twice with different n is an error."""
        if name in self.n:
            if self.n[name] != n:
                raise UserError(f"{name} is listed twice with different n ({self.n[name]} from "
                                f"{self.n_source[name]}, {n} from {source})")
            return
        self.names.append(name)
        self.n[name], self.n_source[name] = n, source

    def add_defaults(self, preset: Preset) -> None:
        for k, v in preset.defaults.items():
            if k in self.defaults and self.defaults[k] != v:
                raise UserError(f"presets disagree on {k} ({self.defaults[k]!r} vs {v!r}); "
                                f"pass it explicitly")
            self.defaults[k] = v


def select(items: Sequence[str]) -> Selection:
    """Expand preset names; a benchmark named directly gets its spec's default_n."""
    sel = Selection()
    for item in items:
        key = item.strip().lower()
        if key in PRESETS:
            preset = PRESETS[key]
            sel.add_defaults(preset)
            for name, n in preset.members:
                spec = get_spec(name)
                if n is None:
                    sel.add(spec.name, *_spec_default(spec))
                else:
                    sel.add(spec.name, n, f"preset {preset.name}")
            continue
        try:
            spec = get_spec(item)
        except UserError as e:
            raise UserError(f"{e}; presets: {', '.join(PRESETS)}") from None
        sel.add(spec.name, *_spec_default(spec))
    return sel


def _spec_default(spec: BenchmarkSpec) -> tuple[int | None, str]:
    """A benchmark's own n and its source label (None: the run's default n applies)."""
    if spec.default_n is None:
        return None, "run default"
    return spec.default_n, "benchmark default_n"

