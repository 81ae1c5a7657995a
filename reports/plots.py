"""Report figures: matplotlib (Agg) + seaborn, returned as PNG bytes.

Every function takes plain data (dicts / DataFrames) and returns the PNG of one figure; the
caller embeds it in the HTML (base64) and writes it next to report.md. matplotlib is imported
inside functions so importing this module stays light.
"""

from __future__ import annotations

import io
import math
import textwrap
from typing import Mapping, Sequence

DPI = 90
PALETTE = ["#3056d3", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#1098ad", "#c2255c", "#5c940d"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _sns():
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.85)
    return sns


def to_png(fig) -> bytes:
    """Serialize and close a figure. No metadata: the PNG carries no URL or version text."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _grid(n_panels: int, ncols: int = 3, w: float = 4.2, h: float = 3.2):
    plt = _plt()
    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    # fixed margins instead of a layout engine: constrained/tight layout re-draws the figure
    # several times, which dominated the report's wall time
    width, height = w * ncols, h * nrows + 0.5
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.2 / width, bottom=0.6 / height,
                        top=1.0 - 0.9 / height, wspace=0.32, hspace=0.55)
    flat = list(axes.ravel())
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def _suptitle(fig, text: str, fontsize: float = 11) -> None:
    """A figure title wrapped to the figure's width (a one-panel figure is narrow: an unwrapped
    title would be clipped at both edges), with the top margin grown to fit its lines."""
    width, height = fig.get_size_inches()
    chars = max(20, int(width * 72 / (0.55 * fontsize)))  # ~0.55 em per character
    lines = textwrap.wrap(text, chars) or [""]
    fig.suptitle("\n".join(lines), fontsize=fontsize)
    top = 1.0 - (0.45 + 0.22 * len(lines) + 0.25) / height
    fig.subplots_adjust(top=min(fig.subplotpars.top, top))


def _integer_axis(axis) -> None:
    """Integer ticks only (quintile numbers, training steps)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


# ------------------------------------------------------------------ coverage: Venn / UpSet


def _venn_positions(m: int) -> tuple[list[tuple[float, float]], dict[tuple[int, ...], tuple[float, float]]]:
    """Circle centres and the label position of each region (key = membership tuple)."""
    if m == 2:
        centres = [(-0.55, 0.0), (0.55, 0.0)]
        labels = {(1, 0): (-1.0, 0.0), (0, 1): (1.0, 0.0), (1, 1): (0.0, 0.0)}
        return centres, labels
    d = 0.62
    angles = [90.0, 210.0, 330.0]
    centres = [(d * math.cos(math.radians(a)), d * math.sin(math.radians(a))) for a in angles]
    labels: dict[tuple[int, ...], tuple[float, float]] = {(1, 1, 1): (0.0, 0.0)}
    for i, a in enumerate(angles):
        key = tuple(int(j == i) for j in range(3))
        labels[key] = (1.15 * math.cos(math.radians(a)), 1.15 * math.sin(math.radians(a)))
    for i in range(3):
        for j in range(i + 1, 3):
            a = math.radians((angles[i] + angles[j]) / 2 + (180 if j - i == 2 else 0))
            key = tuple(int(k in (i, j)) for k in range(3))
            labels[key] = (0.78 * math.cos(a), 0.78 * math.sin(a))
    return centres, labels


def _draw_venn(ax, names: Sequence[str], cells: Mapping[tuple[int, ...], int], title: str) -> None:
    from matplotlib.patches import Circle

    m = len(names)
    centres, label_pos = _venn_positions(m)
    for i, (cx, cy) in enumerate(centres):
        ax.add_patch(Circle((cx, cy), 1.0, alpha=0.25, color=PALETTE[i % len(PALETTE)], lw=0))
        ax.add_patch(Circle((cx, cy), 1.0, fill=False, color=PALETTE[i % len(PALETTE)], lw=1.5))
        # run name just outside its circle, away from the middle
        if m == 3:
            r = math.hypot(cx, cy)
            nx, ny = cx / r * (r + 1.3), cy / r * (r + 1.3)
        else:
            nx, ny = cx * 1.6, 1.22
        ax.text(nx, ny, names[i], ha="center", va="center", fontsize=9, fontweight="bold",
                color=PALETTE[i % len(PALETTE)])
    union = sum(v for k, v in cells.items() if any(k))
    for key, (x, y) in label_pos.items():
        v = int(cells.get(key, 0))
        pct = f"\n{100.0 * v / union:.1f}%" if union else ""
        ax.text(x, y, f"{v}{pct}", ha="center", va="center", fontsize=8.5)
    none = int(cells.get(tuple([0] * m), 0))
    bottom = -2.05 if m == 3 else -1.35
    ax.text(0, bottom, f"solved by none: {none}", ha="center", va="center", fontsize=8,
            color="#5b6475")
    ax.set_xlim(-2.4, 2.4)
    ax.set_ylim(-2.3, 2.2) if m == 3 else ax.set_ylim(-1.6, 1.5)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=10)


def _draw_upset(ax, names: Sequence[str], cells: Mapping[tuple[int, ...], int], title: str) -> None:
    items = sorted(((k, v) for k, v in cells.items() if v > 0 and any(k)), key=lambda kv: -kv[1])
    m = len(names)
    xs = list(range(len(items)))
    heights = [v for _, v in items]
    ax.bar(xs, heights, color="#3056d3")
    for x, h in zip(xs, heights):
        ax.text(x, h, str(h), ha="center", va="bottom", fontsize=7)
    top = max(heights) if heights else 1
    # membership dot matrix under the bars, in data coordinates below zero
    step = top * 0.12
    for x, (key, _) in zip(xs, items):
        ys = [-(i + 1) * step for i in range(m)]
        on = [y for y, bit in zip(ys, key) if bit]
        ax.scatter([x] * m, ys, s=18, color=["#1d2330" if b else "#d0d4dc" for b in key], zorder=3)
        if len(on) > 1:
            ax.plot([x, x], [min(on), max(on)], color="#1d2330", lw=1.2)
    ax.set_yticks([-(i + 1) * step for i in range(m)] + [0, top])
    ax.set_yticklabels(list(names) + ["0", str(top)], fontsize=7)
    ax.set_ylim(-(m + 0.7) * step, top * 1.15)
    ax.set_xticks([])
    ax.set_title(title, fontsize=10)


def coverage_figure(names: Sequence[str], panels: Sequence[tuple[str, Mapping[tuple[int, ...], int]]]) -> bytes:
    """One Venn (2–3 runs) or UpSet-style bar panel per (title, cells)."""
    fig, axes = _grid(len(panels), ncols=3, w=4.0, h=3.8)
    for ax, (title, cells) in zip(axes, panels):
        if len(names) in (2, 3):
            _draw_venn(ax, names, cells, title)
        else:
            _draw_upset(ax, names, cells, title)
    _suptitle(fig, "Problems solved: partition over runs")
    return to_png(fig)


# ------------------------------------------------------------------------ length


def _box_stats(v) -> dict | None:
    """Tukey box statistics of one sample (whiskers at the last points within 1.5 IQR)."""
    import numpy as np

    v = np.asarray(v, dtype=float)
    if len(v) == 0:
        return None
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    iqr = q3 - q1
    lo = v[v >= q1 - 1.5 * iqr].min()
    hi = v[v <= q3 + 1.5 * iqr].max()
    return {"q1": q1, "med": med, "q3": q3, "whislo": lo, "whishi": hi, "mean": float(v.mean()),
            "fliers": []}


LENGTH_COLORS = {True: "#2f9e44", False: "#e03131"}


def length_figure(frame, names: Sequence[str], benchmarks: Sequence[str]) -> bytes:
    """Token-length boxes of correct vs incorrect samples, per benchmark and run.

    frame: DataFrame with columns run, benchmark, num_tokens, correct. Box statistics are
    computed per group with numpy (30-odd groups), not per record.
    """
    _sns()
    from matplotlib.patches import Patch

    fig, axes = _grid(len(benchmarks), ncols=3, w=max(3.4, 1.3 * len(names) + 1.6), h=3.2)
    groups = {key: g.to_numpy() for key, g in
              frame.groupby(["benchmark", "run", "correct"], sort=False)["num_tokens"]}
    for ax, bench in zip(axes, benchmarks):
        for i, name in enumerate(names):
            for ok, dx in ((True, -0.19), (False, 0.19)):
                st = _box_stats(groups.get((bench, name, ok), []))
                if st is None:
                    continue
                art = ax.bxp([st], positions=[i + dx], widths=0.34, showfliers=False,
                             patch_artist=True, manage_ticks=False)
                for box in art["boxes"]:
                    box.set_facecolor(LENGTH_COLORS[ok])
                    box.set_alpha(0.85)
                for med in art["medians"]:
                    med.set_color("#1d2330")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=15)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(bench, fontsize=10)
        ax.set_ylabel("tokens")
    if axes:
        axes[0].legend(handles=[Patch(color=LENGTH_COLORS[True], label="correct"),
                                Patch(color=LENGTH_COLORS[False], label="incorrect")], fontsize=7)
    _suptitle(fig, "Completion length by correctness (boxes: IQR and median; whiskers: "
                   "1.5×IQR)")
    return to_png(fig)


def quintile_figure(series: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]],
                    names: Sequence[str]) -> bytes:
    """Accuracy by length quintile: {benchmark: {run: [(x, accuracy), ...]}}."""
    benches = list(series)
    fig, axes = _grid(len(benches), ncols=3, w=4.0, h=3.0)
    for ax, bench in zip(axes, benches):
        for i, name in enumerate(names):
            pts = series[bench].get(name)
            if not pts:
                continue
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", ms=4, label=name, color=PALETTE[i % len(PALETTE)])
        ax.set_title(bench, fontsize=10)
        ax.set_xlabel("length quintile")
        _integer_axis(ax.xaxis)
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    _suptitle(fig, "Accuracy by completion-length quintile")
    return to_png(fig)


# ------------------------------------------------------------------------ margin


def margin_figure(frame, names: Sequence[str], benchmarks: Sequence[str], value_label: str) -> bytes:
    """Violins of per-problem margins (frame columns run, benchmark, margin), with median
    and quartile marks; few problems are also drawn as points."""
    import numpy as np

    _sns()
    fig, axes = _grid(len(benchmarks), ncols=3, w=max(3.4, 1.2 * len(names) + 1.6), h=3.2)
    groups = {key: g.to_numpy(dtype=float) for key, g in
              frame.groupby(["benchmark", "run"], sort=False)["margin"]}
    rng = np.random.default_rng(0)
    for ax, bench in zip(axes, benchmarks):
        for i, name in enumerate(names):
            v = groups.get((bench, name))
            if v is None or len(v) == 0:
                continue
            color = PALETTE[i % len(PALETTE)]
            if len(v) > 1 and np.ptp(v) > 0:
                parts = ax.violinplot([v], positions=[i], widths=0.8, showextrema=False,
                                      points=80)
                for body in parts["bodies"]:
                    body.set_facecolor(color)
                    body.set_edgecolor("#1d2330")
                    body.set_alpha(0.55)
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            ax.vlines(i, q1, q3, color="#1d2330", lw=3)
            ax.scatter([i], [med], color="white", edgecolor="#1d2330", s=18, zorder=3)
            if len(v) <= 300:  # few problems: show them, a violin alone misleads
                ax.scatter(i + rng.uniform(-0.12, 0.12, len(v)), v, s=5, color="#1d2330",
                           alpha=0.45, lw=0, zorder=2)
        ax.axhline(0.0, color="#5b6475", lw=0.8, ls="--")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=15)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(bench, fontsize=10)
        ax.set_ylabel(value_label)
    _suptitle(fig, "Log-prob margin per problem: mean ℓ(correct) − mean ℓ(incorrect) "
                   "(bar: IQR, dot: median)")
    return to_png(fig)


# ------------------------------------------------------------------------ training curves


# one curve: (log name, series label, steps, values, std or None)
Curve = tuple[str, str, Sequence[float], Sequence[float], "Sequence[float] | None"]


def training_figure(panels: Sequence[tuple[str, Sequence[Curve]]]) -> bytes:
    """panels: [(title, [(log name, series label, steps, values, std-or-None), ...]), ...]."""
    fig, axes = _grid(len(panels), ncols=3, w=4.2, h=2.9)
    log_names: list[str] = []
    for _, lines in panels:
        for ln in lines:
            if ln[0] not in log_names:
                log_names.append(ln[0])
    styles = ["-", "--", ":", "-."]
    steps_all = [x for _, lines in panels for ln in lines for x in ln[2]]
    lo, hi = (min(steps_all), max(steps_all)) if steps_all else (0.0, 1.0)
    # one step range for every panel (a key logged at one step alone still sits on the axis
    # the others use), never narrower than 1 so the integer ticks have room
    pad = max(0.5, 0.03 * (hi - lo))
    xlim = (lo - pad, hi + pad) if hi > lo else (lo - 1.0, lo + 1.0)
    for ax, (title, lines) in zip(axes, panels):
        labels = sorted({ln[1] for ln in lines})
        for log, label, steps, vals, std in lines:
            color = PALETTE[log_names.index(log) % len(PALETTE)]
            ls = styles[labels.index(label) % len(styles)]
            text = log if len(labels) == 1 else f"{log}: {label}"
            ax.plot(steps, vals, color=color, ls=ls, lw=1.3, label=text,
                    marker="o" if len(steps) < 3 else None, ms=4)  # one point draws no line
            if std is not None:
                import numpy as np

                v, s = np.asarray(vals, float), np.asarray(std, float)
                ax.fill_between(steps, v - s, v + s, color=color, alpha=0.15, lw=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.set_xlim(*xlim)
        _integer_axis(ax.xaxis)
        ax.legend(fontsize=7)
    _suptitle(fig, "Training curves")
    return to_png(fig)


# ------------------------------------------------------------------------ headline


# one forest row: (benchmark, "A → B", estimate, ci_low, ci_high), in points
ForestRow = tuple[str, str, float, "float | None", "float | None"]


def forest_figure(rows: Sequence[ForestRow], metric: str = "avg@n") -> bytes:
    """Paired differences with their 95 % CIs, one line per benchmark and pair; filled when the
    CI excludes 0."""
    plt = _plt()
    height = 1.3 + 0.32 * len(rows)
    fig, ax = plt.subplots(figsize=(7.2, height))
    fig.subplots_adjust(left=0.42, right=0.96, bottom=0.7 / height, top=1.0 - 0.5 / height)
    ys = list(range(len(rows)))[::-1]
    pairs = sorted({r[1] for r in rows}, key=[r[1] for r in rows].index)
    for y, (bench, pair, est, lo, hi) in zip(ys, rows):
        color = PALETTE[pairs.index(pair) % len(PALETTE)]
        sig = lo is not None and hi is not None and (lo > 0 or hi < 0)
        if lo is not None and hi is not None:
            ax.plot([lo, hi], [y, y], color=color, lw=1.6)
        ax.scatter([est], [y], s=28, color=color if sig else "white", edgecolor=color, zorder=3,
                   lw=1.4)
    ax.axvline(0.0, color="#5b6475", lw=0.8, ls="--")
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{b} · {p}" for b, p, *_ in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(f"Δ {metric} (percentage points, B − A) with 95% CI")
    ax.set_title("Paired differences (filled: the CI excludes 0)", fontsize=10)
    return to_png(fig)
