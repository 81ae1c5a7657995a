"""The report as a list of blocks, rendered once to Markdown and once to HTML.

Sections build blocks from the report data; `reports.html` and `to_markdown` turn the same
blocks into the two documents, so they always show the same numbers. Block text is plain
text (never markup): each renderer escapes it for its format.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Sequence, Union


@dataclass
class Heading:
    level: int  # 1..3
    text: str
    anchor: str | None = None  # id for the HTML table of contents (level 2)


@dataclass
class Para:
    text: str
    note: bool = False  # rendered muted / as a quote
    warn: bool = False  # rendered as a warning banner


@dataclass
class Cell:
    """A table cell: main text, an optional muted second part, a tone, or a text excerpt."""

    text: str
    sub: str | None = None       # e.g. a confidence interval
    tone: str | None = None      # "up" | "down" | "ok" | "no" | "differs"
    numeric: bool = False        # right-aligned
    excerpt: str | None = None   # model text shown in a scrollable <pre> (HTML) / inline (md)


CellLike = Union[str, Cell]


@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[CellLike]]
    caption: str | None = None


@dataclass
class Figure:
    key: str   # figures/<key>.png and the embedded PNG
    alt: str


@dataclass
class Details:
    """Collapsible in HTML; plain in Markdown."""

    summary: str
    blocks: list = field(default_factory=list)


Block = Union[Heading, Para, Table, Figure, Details]


# ---------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#!~])")


def md_text(x: object) -> str:
    """Text for Markdown: HTML-escaped (so a renderer that allows raw HTML shows it as text),
    Markdown punctuation backslash-escaped, collapsed onto one line (safe inside tables)."""
    s = html.escape("" if x is None else str(x), quote=False)
    s = re.sub(r"\s+", " ", s).strip()
    return _MD_SPECIAL.sub(r"\\\1", s)


def _md_cell(c: CellLike, excerpt_chars: int = 160) -> str:
    if not isinstance(c, Cell):
        return md_text(c)
    parts = [md_text(c.text)] if c.text else []
    if c.sub:
        parts.append(md_text(c.sub))
    if c.excerpt:
        ex = c.excerpt if len(c.excerpt) <= excerpt_chars else "…" + c.excerpt[-excerpt_chars:]
        parts.append("— " + md_text(ex))
    return " ".join(parts) if parts else " "


def to_markdown(blocks: Sequence[Block], figures: dict[str, str]) -> str:
    """Markdown document; figures maps a figure key to its relative PNG path."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + md_text(b.text) + "\n")
        elif isinstance(b, Para):
            lead = "> **Warning:** " if b.warn else ("> " if b.note else "")
            out.append(lead + md_text(b.text) + "\n")
        elif isinstance(b, Table):
            if b.caption:
                out.append(md_text(b.caption) + "\n")
            lines = ["| " + " | ".join(md_text(h) for h in b.header) + " |",
                     "|" + "|".join("---" for _ in b.header) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines) + "\n")
        elif isinstance(b, Figure):
            if b.key in figures:
                out.append(f"![{md_text(b.alt)}]({figures[b.key]})\n")
        elif isinstance(b, Details):
            out.append(f"**{md_text(b.summary)}**\n")
            out.append(to_markdown(b.blocks, figures))
    return "\n".join(out)
