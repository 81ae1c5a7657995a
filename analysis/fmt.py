"""Display helpers shared by the analysis tables (CLI) and the report: one missing-value
mark, percentages, signed differences, CIs and p-values, and which scopes a table shows."""

from __future__ import annotations

import math
from typing import Any, Mapping

MISSING = "—"


def is_num(v: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def pct(x: Any, digits: int = 1) -> str:
    """A rate as a percentage: 0.123 -> '12.3'."""
    return MISSING if not is_num(x) else f"{100.0 * x:.{digits}f}"


def spct(x: Any, digits: int = 1) -> str:
    """A difference of rates in signed percentage points: 0.023 -> '+2.3'."""
    return MISSING if not is_num(x) else f"{100.0 * x:+.{digits}f}"


def num(x: Any, digits: int = 1) -> str:
    return MISSING if not is_num(x) else f"{x:.{digits}f}"


def snum(x: Any, digits: int = 1) -> str:
    return MISSING if not is_num(x) else f"{x:+.{digits}f}"


def pval(p: Any) -> str:
    if not is_num(p):
        return MISSING
    return "<0.001" if p < 1e-3 else f"{p:.3f}"


def ci_text(d: dict | None, fmt=spct) -> str:
    """'[lo, hi]' of a {"ci_low", "ci_high"} dict, '' when either is missing."""
    if not d or not is_num(d.get("ci_low")) or not is_num(d.get("ci_high")):
        return ""
    return f"[{fmt(d['ci_low'])}, {fmt(d['ci_high'])}]"


def estimate_ci(d: dict | None, fmt=spct) -> str:
    """'+2.3 [-0.4, +5.1]' from {"estimate", "ci_low", "ci_high"}."""
    if not d or not is_num(d.get("estimate")):
        return MISSING
    ci = ci_text(d, fmt)
    return f"{fmt(d['estimate'])} {ci}" if ci else fmt(d["estimate"])


def with_all(per_bench: Mapping[str, Any], overall: Any, name: str = "all") -> list[tuple[str, Any]]:
    """(scope, block) per benchmark, then (name, overall) when there are several benchmarks
    (with one, the pooled row would repeat it)."""
    out = list(per_bench.items())
    if len(out) > 1 and overall:
        out.append((name, overall))
    return out
