"""Answer normalization and the string-only verdicts, shared by the parent and the workers.

`normalize_answer` / `normalize_pair` turn an extracted answer and a gold into forms
math-verify parses right. They run in the parent inside the fast path (`string_verdict`:
same normalized string, two integers, equal decimals, set-vs-tuple mismatch) and again in the
worker before math-verify. Choice letters and option text are compared here too. All of it is
linear-time string work; nothing here evaluates model text.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Sequence

# Answers longer than this, or nested deeper, are not sent to math-verify: they are graded
# by exact string match against the gold/alternatives only (status "ok"). Real answers are
# far shorter (the longest MATH/Minerva/OlympiadBench gold is a few hundred characters).
MAX_ANSWER_CHARS = 1500
MAX_BRACE_DEPTH = 40

_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|textrm|rm|bf)\s*\{([^{}]*)\}")
_LETTER_RES = (
    re.compile(r"^[\(\[]?\s*([A-Ea-e])\s*[\)\]]?$"),  # C, (C), [c]
    re.compile(r"^(?i:option|choice)\s*[\(\[]?\s*([A-Ea-e])\s*[\)\]]?$"),  # Option C
    re.compile(r"^[\(\[]\s*([A-Ea-e])\s*[\)\]]\s*\S.*$", re.S),  # (C) 36
    re.compile(r"^([A-Ea-e])\)\s*\S.*$", re.S),  # C) 36
    re.compile(r"^([A-E])[.:]\s+\S.*$", re.S),  # C. 36 / C: 36 (capital only)
)


def as_letter(s: str | None) -> str | None:
    """`C`, `(C)`, `\\text{(C)}`, `C) 36`, `Option C` -> "C"; anything else -> None."""
    if s is None:
        return None
    t = s.strip()
    if len(t) > 200:
        return None
    for _ in range(3):
        t2 = _TEXT_WRAP_RE.sub(r"\1", t)
        if t2 == t:
            break
        t = t2
    t = t.replace("*", "").replace("$", "").strip()
    if len(t) > 200:
        return None
    for rx in _LETTER_RES:
        m = rx.match(t)
        if m:
            return m.group(1).upper()
    return None


def lenient_text(s: str) -> str:
    """Option text compared leniently: lower case, no spaces/$/braces/\\text, no trailing dot."""
    t = _TEXT_WRAP_RE.sub(r"\1", s)
    t = t.replace("\\$", "").replace("$", "").replace("\\", "").replace("{", "").replace("}", "")
    return re.sub(r"\s+", "", t).lower().rstrip(".")


# Pure string transformations of one answer, then the pair rules that look at both sides.
# Regression rows for each live in tests/test_grading_cases.py.

_UNICODE = {
    "\u2212": "-", "\u2013": "-", "\u00d7": r"\times ", "\u00b7": r"\cdot ", "\u22c5": r"\cdot ",
    "\u00f7": r"\div ", "\u03c0": r"\pi ", "\u221e": r"\infty ", "\u2264": r"\le ",
    "\u2265": r"\ge ", "\u00b1": r"\pm ", "\u2213": r"\mp ", "\u2009": " ", "\u202f": " ",
    "\u00a0": " ",
}
_SQRT_UNICODE_RE = re.compile(r"\u221a\s*(\d+(?:\.\d+)?|[A-Za-z])")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\u00b0(?:\s?[CF](?![A-Za-z]))?|\\degree\b|"
                        r"\^\s*\{\s*\\text\{\s*o\s*\}\s*\}")  # `30^\circ`, `49°C`
_SCI_RE = re.compile(r"(?<![\w\\.{])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")
_CODE_FN_RE = re.compile(r"\b(?:np|numpy|math|sympy|sp)\.(arcsin|arccos|arctan|sin|cos|tan|"
                         r"sqrt|log|exp|pi|e)\b")
_POW_RE = re.compile(r"(?<=[\w)}])\s*\*\*\s*(?=[\w({-])")
_PERCENT_WORD_RE = re.compile(r"(\d)\s*(?:percent|pct)\b", re.I)
_TEXT_NUM_RE = re.compile(
    r"\\(?:text|textbf|mathrm|mbox|textrm|rm)\s*\{\s*\(?(-?\d+(?:[.,]\d+)*)\)?\s*(?:[A-Za-z][A-Za-z .]*)?\}")
_UNIT_AFTER_NUM_RE = re.compile(
    r"(?<=[\d}])\s*(?:\\[,;:! ]|~)*\s*\\(?:text|mbox|mathrm|textrm|rm)\s*\{\s*~?\s*"
    r"[A-Za-z][A-Za-z .]*(?:/[A-Za-z .]+)?\}(?:\s*\^\s*\{?\d\}?)?\s*$")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_UNIT_WORD_RE = re.compile(r"[^\W\d_]{2,}\.?(?:\^\d)?")  # any script: `40 долларов`
# Words after a number that change its value: never stripped as units.
_MATH_WORDS = frozenset("pi sqrt root log ln sin cos tan exp inf infinity and or plus minus "
                        "times over divided choose factorial squared cubed percent".split())
_SEP = r"(?:,? ?\\! ?|\{,\}|\\,|\\ |, ?| )"
_THOUSANDS_RE = re.compile(rf"^[-+]?\d{{1,3}}(?:{_SEP}\d{{3}})+(?:\.\d+)?$")
_THOUSANDS_SEP_RE = re.compile(_SEP)


def _strip_plain_unit(s: str) -> str:
    """`5 apples` / `12 sq ft` -> the number; `3 pi`, `5 squared` are left alone."""
    parts = s.split(" ")
    if 2 <= len(parts) <= 4 and _NUMBER_RE.fullmatch(parts[0]):
        words = parts[1:]
        if all(_UNIT_WORD_RE.fullmatch(w) and w.rstrip(".").split("^")[0].lower() not in _MATH_WORDS
               for w in words):
            return parts[0]
    return s


def normalize_answer(s: str) -> str:
    """One answer string -> a form math-verify parses right (unicode, \\dfrac, `$`, `**`, code
    function names, degrees, percent words, units after numbers, scientific notation)."""
    s = " ".join(s.split())  # one space per whitespace run: keeps the regexes below linear
    for a, b in _UNICODE.items():
        if a in s:
            s = s.replace(a, b)
    s = _SQRT_UNICODE_RE.sub(r"\\sqrt{\1}", s)
    s = s.replace("\u221a", r"\sqrt")
    s = s.replace(r"\dfrac", r"\frac").replace(r"\tfrac", r"\frac")
    s = s.replace("\\$", "").replace("$", "")
    s = _POW_RE.sub("^", s).replace("**", "")
    s = _CODE_FN_RE.sub(lambda m: "e" if m.group(1) == "e" else "\\" + m.group(1), s)
    s = _DEGREE_RE.sub("", s)
    s = _PERCENT_WORD_RE.sub(r"\1\\%", s)
    s = _TEXT_NUM_RE.sub(r"\1", s)
    for _ in range(2):
        s2 = _UNIT_AFTER_NUM_RE.sub("", s).strip()
        if s2 == s:
            break
        s = s2
    s = _strip_plain_unit(s)
    s = _SCI_RE.sub(r"\1\\times 10^{\2}", s)
    s = " ".join(s.split())
    if s.endswith(".") and not s.endswith(".."):
        s = s.rstrip(".").rstrip()
    return s


def _strip_thousands(s: str) -> str:
    return _THOUSANDS_SEP_RE.sub("", s) if _THOUSANDS_RE.match(s) else s


def _top_level_commas(s: str) -> int:
    depth, n = 0, 0
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            n += 1
        i += 1
    return n


def _one_group(s: str, opens: str = "([", closes: str = ")]") -> bool:
    """True when s is one bracketed group: `(1, 2)` yes, `(1, 2), (3, 4)` no."""
    if len(s) < 2 or s[0] not in opens or s[-1] not in closes:
        return False
    depth = 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return False
    return True


def _is_paren_tuple(s: str) -> bool:
    s = s.replace(r"\left", "").replace(r"\right", "").strip()
    return _one_group(s, "(", ")") and _top_level_commas(s[1:-1]) >= 1


def normalize_pair(pred: str, gold: str) -> tuple[str, str]:
    """Normalize both sides; then the pair rules that need to see the other side:

    * thousands separators (`1,000`, `1{,}000`, `1\\,000`, `1 000`) are dropped from the
      prediction when the gold has no top-level comma (gold `1,000` is itself one number);
    * a bare list `3, 1` becomes the tuple `(3, 1)` when the gold is a parenthesized tuple
      with as many entries (math-verify would compare the set {1, 3}, order-blind).
    """
    p, g = normalize_answer(pred), normalize_answer(gold)
    g = _strip_thousands(g)
    if _top_level_commas(g) == 0:
        p = _strip_thousands(p)
    if _is_paren_tuple(g) and not _is_paren_tuple(p) and not p.lstrip().startswith(("[", "\\{")):
        inner = g.replace(r"\left", "").replace(r"\right", "").strip()[1:-1]
        if _top_level_commas(p) == _top_level_commas(inner) >= 1:
            p = f"({p})"
    return p, g


def _structure_mismatch(pred: str, gold: str) -> bool:
    """Set vs tuple/interval written explicitly on one side only: math-verify accepts
    `\\{1,2\\}` for `(1,2)` and `(1,2)` for `\\{1,2\\}`; those are different objects."""
    pred = pred.replace(r"\left", "").replace(r"\right", "").strip()
    gold = gold.replace(r"\left", "").replace(r"\right", "").strip()
    p_set = pred.startswith("\\{")
    g_set = gold.startswith("\\{")
    p_tup = _one_group(pred) and _top_level_commas(pred[1:-1]) >= 1
    g_tup = _one_group(gold) and _top_level_commas(gold[1:-1]) >= 1
    return (p_set and g_tup) or (g_set and p_tup)


def canon(s: str) -> str:
    return re.sub(r"\s+|\\left|\\right|\\!|\\,|\\;|\\ ", "", s)


def too_big(s: str) -> bool:
    """Pre-screen (string only): too long or too deeply nested to hand to sympy."""
    if len(s) > MAX_ANSWER_CHARS:
        return True
    depth = 0
    for c in s:
        if c in "{([":
            depth += 1
            if depth > MAX_BRACE_DEPTH:
                return True
        elif c in "})]":
            depth -= 1
    return False


_INT_RE = re.compile(r"[-+]?\d{1,1000}")
_DEC_RE = re.compile(r"[-+]?(?:\d{1,1000}(?:\.\d{0,1000})?|\.\d{1,1000})")


def pair_verdict(p: str, g: str) -> bool | None:
    """The verdict on a normalized pair that needs no math: same string, two integers, or a
    set-vs-tuple mismatch; None when math-verify must decide. Pure string work."""
    if not p:
        return False
    if canon(p) == canon(g):
        return True
    if _INT_RE.fullmatch(p) and _INT_RE.fullmatch(g):
        return int(p) == int(g)
    if _DEC_RE.fullmatch(p) and _DEC_RE.fullmatch(g) and Fraction(p) == Fraction(g):
        return True  # 4.0 == 4; unequal decimals go to math-verify (its rounding + our guard)
    if _structure_mismatch(p, g):
        return False
    return None


def string_verdict(pred: str, golds: Sequence[str]) -> bool | None:
    """Parent-side fast path: True if some gold matches by string, False if every gold is
    decided False by string, None if any needs the worker (then nothing is decided here)."""
    undecided = False
    for gold in golds:
        v = pair_verdict(*normalize_pair(pred, gold))
        if v:
            return True
        undecided |= v is None
    return None if undecided else False

