"""A tiny escaping HTML builder for the self-contained report.

Text only becomes HTML through `esc` (html.escape) or `tag`, which escapes every child and
attribute that is not already `Markup`. Model completions, gold answers, manifest values and
run names are therefore escaped by construction; nothing here builds HTML by string pasting.
"""

from __future__ import annotations

import base64
import html as _html
from typing import Mapping


class Markup(str):
    """A string that is already safe HTML (built by this module)."""


def esc(x: object) -> Markup:
    """Escape any value for HTML text or a quoted attribute; Markup passes through."""
    if isinstance(x, Markup):
        return x
    if x is None:
        return Markup("")
    return Markup(_html.escape(str(x), quote=True))


_VOID = {"br", "hr", "img", "meta", "col"}
_ALLOWED_ATTR_PREFIXES = ("data-", "aria-")
_ALLOWED_ATTRS = {"class", "id", "title", "alt", "src", "colspan", "rowspan", "open", "lang",
                  "charset", "name", "content", "http-equiv", "width", "height", "role", "href"}


def tag(element: str, /, *children: object, **attrs: object) -> Markup:
    """<element attrs>children</element>; `class_` → class, `http_equiv` → http-equiv.

    `src` is limited to data: URIs so nothing in the page can reach outside it.
    """
    if not element.isalnum():
        raise ValueError(f"bad element name {element!r}")
    out = [f"<{element}"]
    for key, val in attrs.items():
        if val is None or val is False:
            continue
        attr = key.rstrip("_").replace("_", "-")
        if attr not in _ALLOWED_ATTRS and not attr.startswith(_ALLOWED_ATTR_PREFIXES):
            raise ValueError(f"attribute {attr!r} not allowed")
        if attr == "src" and not str(val).startswith("data:"):
            raise ValueError("only data: URIs may be embedded")
        if attr == "href" and not str(val).startswith("#"):
            raise ValueError("only in-page links (#id) are allowed")
        out.append(f" {attr}" if val is True else f' {attr}="{esc(val)}"')
    out.append(">")
    if element in _VOID:
        if children:
            raise ValueError(f"<{element}> takes no children")
        return Markup("".join(out))
    out.extend(esc(c) for c in children)
    out.append(f"</{element}>")
    return Markup("".join(out))


def png(data: bytes, alt: str) -> Markup:
    """An <img> whose PNG bytes live in the page (base64 data URI)."""
    return tag("img", src="data:image/png;base64," + base64.b64encode(data).decode("ascii"),
               alt=alt, class_="plot")


CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dde5; --bg:#ffffff; --soft:#f4f6f9;
        --good:#1a7f37; --bad:#b42318; --accent:#3056d3; }
* { box-sizing: border-box; }
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0 auto; max-width: 1200px; padding: 24px 32px 64px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
p.note, .muted { color: var(--muted); }
p.note { margin: 6px 0; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 4px 16px; }
div.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
caption { text-align: left; color: var(--muted); padding: 2px 0 6px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.up { color: var(--good); font-weight: 600; }
.down { color: var(--bad); font-weight: 600; }
.ci { color: var(--muted); font-size: 12px; white-space: nowrap; }
.differs { background: #fff4e5; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
pre.excerpt { white-space: pre-wrap; word-break: break-word; margin: 2px 0 0; max-width: 420px;
              max-height: 160px; overflow: auto; background: var(--soft); padding: 4px 6px; }
img.plot { max-width: 100%; height: auto; display: block; margin: 8px 0 16px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 4px 0 12px; }
dt { color: var(--muted); }
dd { margin: 0; word-break: break-all; }
details { margin: 4px 0 12px; }
summary { cursor: pointer; color: var(--accent); }
.ok { color: var(--good); } .no { color: var(--bad); }
p.warn { background: #fff4e5; border-left: 4px solid #f08c00; padding: 6px 10px; margin: 6px 0; }
"""

# No script may run and nothing may load from outside the file (defense in depth: the
# escaping above is what keeps model text inert; this makes any miss visible as a console error).
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def document(title: str, *body: object) -> str:
    """A complete, self-contained HTML page."""
    head = tag("head",
               tag("meta", charset="utf-8"),
               tag("meta", http_equiv="Content-Security-Policy", content=CSP),
               tag("meta", name="viewport", content="width=device-width, initial-scale=1"),
               tag("title", title),
               tag("style", Markup(CSS)))
    return "<!DOCTYPE html>\n" + tag("html", head, tag("body", *body), lang="en") + "\n"


# ---------------------------------------------------------------- blocks -> page


def _cell(c) -> Markup:
    from reports.blocks import Cell

    if not isinstance(c, Cell):
        return tag("td", c)
    parts: list[Markup] = []
    if c.text:
        parts.append(tag("span", c.text, class_=c.tone if c.tone in ("up", "down", "ok", "no") else None))
    if c.sub:
        if parts:
            parts.append(tag("br"))
        parts.append(tag("span", c.sub, class_="ci"))
    if c.excerpt:
        parts.append(tag("pre", c.excerpt, class_="excerpt"))
    classes = " ".join(x for x in ("num" if c.numeric else "", "differs" if c.tone == "differs" else "") if x)
    return tag("td", *parts, class_=classes or None)


def _render(blocks, figures: Mapping[str, bytes]) -> list[Markup]:
    from reports.blocks import Details, Figure, Heading, Para, Table

    out: list[Markup] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(tag(f"h{max(1, min(4, b.level))}", b.text, id=b.anchor))
        elif isinstance(b, Para):
            out.append(tag("p", b.text, class_="warn" if b.warn else ("note" if b.note else None)))
        elif isinstance(b, Table):
            head = tag("thead", tag("tr", *[tag("th", h) for h in b.header]))
            body = tag("tbody", *[tag("tr", *[_cell(c) for c in row]) for row in b.rows])
            parts = [tag("caption", b.caption)] if b.caption else []
            out.append(tag("div", tag("table", *parts, head, body), class_="scroll"))
        elif isinstance(b, Figure):
            if b.key in figures:
                out.append(png(figures[b.key], b.alt))
        elif isinstance(b, Details):
            out.append(tag("details", tag("summary", b.summary), *_render(b.blocks, figures)))
        else:  # pragma: no cover - a new block type must be added here
            raise TypeError(f"unknown block {type(b).__name__}")
    return out


def render_page(title: str, blocks, figures: Mapping[str, bytes]) -> str:
    """The whole report page: a contents list of the level-2 headings, then the blocks."""
    from reports.blocks import Heading

    toc = [tag("li", tag("a", b.text, href=f"#{b.anchor}"))
           for b in blocks if isinstance(b, Heading) and b.level == 2 and b.anchor]
    body = _render(blocks, figures)
    if toc and body:
        body.insert(1, tag("nav", tag("ul", *toc), aria_label="contents"))
    return document(title, *body)
