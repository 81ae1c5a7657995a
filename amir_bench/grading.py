"""Grading: extract a final answer from a completion, verify it against the gold answer.

Two halves with a hard line between them:

* The parent process does only string work: `extract_answer` (linear time, no regex
  backtracking traps, safe on 200 KB text and 10k nested braces), choice letters, a size
  pre-screen, the string/integer fast path (`_string_verdict`: same normalized string, or two
  integers) and the cache. Model text never reaches eval/exec/sympify/parse_expr here.
* Worker processes do the math: our string normalizations (`normalize_pair`), then
  math-verify (`parse` + `verify`) with the gold wrapped in `$...$`, then our false-accept
  guards (`_guard`). Each item runs under a soft SIGALRM timer inside the worker; the parent
  kills and replaces a worker whose item outlives the hard per-item timeout. Either way the
  item gets status "timeout", counts incorrect, and the rest of the batch proceeds.

Processes: a Grader starts one "zygote", a fresh interpreter (`sys.executable -c`, never a
fork of the possibly torch-threaded parent) that imports math-verify, warms its parser up and
then forks the workers (and their replacements) on request. Unlike multiprocessing's spawn
and forkserver children, these never re-import the parent's `__main__` (which, for the CLI,
would pull torch into every worker). POSIX only (signal.alarm, fork, socket.send_fds).
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Sequence

from amir_bench.errors import UserError

# ------------------------------------------------------------------------- public types

DEFAULT_EXTRACT = ("boxed", "answer_tag", "gsm8k", "last_number")
CHOICE_EXTRACT = ("boxed", "answer_tag", "choice_letter")
STATUSES = ("ok", "no_answer", "timeout", "error")
KINDS = ("math", "choice")

# Answers longer than this, or nested deeper, are not sent to math-verify: they are graded
# by exact string match against the gold/alternatives only (status "ok"). Real answers are
# far shorter (the longest MATH/Minerva/OlympiadBench gold is a few hundred characters).
MAX_ANSWER_CHARS = 1500
MAX_BRACE_DEPTH = 40
# A completion this short, on one line, without prose, is itself the answer (bare preds).
BARE_MAX_CHARS = 300
# Virtual-memory cap per worker (a runaway sympy integer becomes MemoryError -> "error").
WORKER_MEM_BYTES = 4 << 30


@dataclass(frozen=True)
class GradeItem:
    completion: str  # full model completion OR a bare answer
    gold: str
    extract: tuple[str, ...] = DEFAULT_EXTRACT
    kind: str = "math"  # "math" | "choice"
    alternatives: tuple[str, ...] = ()  # other accepted golds (minerva alternatives; aqua option text)


@dataclass(frozen=True)
class GradeResult:
    extracted: str | None
    correct: bool
    status: str  # "ok" | "no_answer" | "timeout" | "error"


# ------------------------------------------------------------------------- extraction
# Pure string functions. Each regex below is linear (no nested quantifiers over the same
# characters); brace matching is one left-to-right pass over brace tokens only.

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BRACE_TOKEN_RE = re.compile(r"\\\\|\\[{}]|[{}]")
_BARE_BOX_ARG_RE = re.compile(r"[ \t]+([^\s{}$]+)")


def _match_braces_from(text: str, start: int) -> dict[int, int]:
    """Map each unescaped `{` at or after `start` to its matching `}` (unclosed: absent)."""
    matches: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_TOKEN_RE.finditer(text, start):
        tok = m.group()
        if tok == "{":
            stack.append(m.start())
        elif tok == "}":
            if stack:
                matches[stack.pop()] = m.start()
    return matches


def _extract_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` / `\\fbox{...}` / `\\boxed 5`; empty boxes skipped."""
    starts = [m.end() for m in _BOX_RE.finditer(text)]
    if not starts:
        return None
    braces: dict[int, int] | None = None
    for end in reversed(starts):
        j = end
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            if braces is None:  # one pass from the first box covers every box
                braces = _match_braces_from(text, starts[0])
            close = braces.get(j)
            if close is None:
                continue  # unclosed (truncated completion): try the previous box
            content = text[j + 1:close].strip()
        else:
            m = _BARE_BOX_ARG_RE.match(text, end)
            if not m:
                continue
            content = m.group(1).rstrip(".,;")
        if content:
            return content
    return None


def _extract_answer_tag(text: str) -> str | None:
    """Content of the last `<answer>...</answer>`; its boxed content if it holds a box."""
    low = text.lower()
    close = low.rfind("</answer>")
    if close < 0:
        return None
    open_ = low.rfind("<answer>", 0, close)
    if open_ < 0:
        return None
    content = text[open_ + len("<answer>"):close]
    boxed = _extract_boxed(content)
    if boxed is not None:
        return boxed
    content = _clean(content)
    return content or None


_GSM8K_NUM_RE = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _extract_gsm8k(text: str) -> str | None:
    """The number right after the last `####` (GSM8K reference style), commas and $ removed."""
    pos = text.rfind("####")
    if pos < 0:
        return None
    # hand-rolled prefix scan: spaces, optional minus, optional (escaped) dollar sign
    i, n = pos + 4, len(text)
    while i < n and text[i] in " \t":
        i += 1
    sign = ""
    if i < n and text[i] == "-":
        sign = "-"
        i += 1
    if text.startswith("\\$", i):
        i += 1
    if i < n and text[i] == "$":
        i += 1
    while i < n and text[i] in " \t":
        i += 1
    m = _GSM8K_NUM_RE.match(text, i)
    if not m:
        return None
    return sign + m.group().replace(",", "")


_LAST_NUM_RE = re.compile(r"(?<![\w.])(-?)(\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?)(?![\d])")


def _extract_last_number(text: str) -> str | None:
    """The last number in the text (thousands commas removed; `-` kept unless it is a minus
    between two operands, e.g. `3-5`); a simple fraction `3/4` counts as one number."""
    for window in (text[-4000:], text):
        last = None
        for m in _LAST_NUM_RE.finditer(window):
            last = m
        cut = len(window) < len(text) and (last is None or last.start() == 0)
        if last is not None and not cut:
            return last.group(1) + last.group(2).replace(",", "")
        if len(window) == len(text):
            break
    return None


# Whitespace runs are collapsed to one space before these run, so each ` ?` matches at most
# one character and the patterns cannot backtrack polynomially.
_CHOICE_ANCHORED_RE = re.compile(
    r"\b(?i:answer|ans|option|choice)(?: (?i:is|would be|should be))? ?(?i:option|choice)?"
    r" ?[:=.]? ?(?:\*\*)? ?[\(\[]? ?([A-E])(?![A-Za-z0-9])")
_CHOICE_PAREN_RE = re.compile(r"\(([A-E])\)|(?:^|(?<=[\s*]))([A-E])\)", re.M)


_CHOICE_CORRECT_RE = re.compile(
    r"(?<![A-Za-z])\(?([A-E])\)? (?i:is|would be|should be) (?i:the )?(?i:correct|right|best|answer)")
_CHOICE_LINE_RE = re.compile(r"^[\s*(\[]*([A-E])[\s*)\].:]*$")


def _extract_choice_letter(text: str) -> str | None:
    """A standalone option letter, by strength of the cue: the last `answer is (C)` /
    `Answer: C` / `option C`; else `C is correct`; else a last line that is only a letter;
    else the last `(C)` / `C)` anywhere (weakest: `P(A/B)` has one)."""
    raw_tail = text[-4000:]
    tail = " ".join(raw_tail.split())
    for rx in (_CHOICE_ANCHORED_RE, _CHOICE_CORRECT_RE):
        last = None
        for m in rx.finditer(tail):
            last = m
        if last is not None:
            return last.group(1)
    lines = raw_tail.rstrip().rsplit("\n", 1)
    m = _CHOICE_LINE_RE.match(lines[-1][-50:]) if lines else None
    if m:
        return m.group(1)
    last = None
    for m in _CHOICE_PAREN_RE.finditer(tail):
        last = m
    if last is not None:
        return last.group(1) or last.group(2)
    return None


# Mode name -> extractor (first hit in the order given wins).
EXTRACTORS: dict[str, Callable[[str], str | None]] = {
    "boxed": _extract_boxed,
    "answer_tag": _extract_answer_tag,
    "gsm8k": _extract_gsm8k,
    "choice_letter": _extract_choice_letter,
    "last_number": _extract_last_number,
}

_WRAPPERS = ((r"\(", r"\)"), (r"\[", r"\]"), ("$$", "$$"), ("$", "$"))
_ANSWER_PREFIX_RE = re.compile(
    r"^(?i:(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*[:=]?|final\s*:)\s*")
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_PROSE_RE = re.compile(r"(?i)\b(?:the|is|are|so|therefore|thus|hence|we|answer|because)\b")
_MATHY_RE = re.compile(r"[\d\\^_=+\-*/()\[\]{}<>,|]")


def _clean(s: str) -> str:
    """Strip whitespace, math delimiters and a trailing full stop; newlines become spaces."""
    s = s.strip()
    for _ in range(4):
        before = s
        if s.startswith("**") and s.endswith("**") and len(s) > 4:
            s = s[2:-2].strip()
        for a, b in _WRAPPERS:
            if len(s) >= len(a) + len(b) and s.startswith(a) and s.endswith(b):
                s = s[len(a):len(s) - len(b)].strip()
        s = s.rstrip(".").rstrip() if s.endswith(".") and not s.endswith("..") else s
        if s == before:
            break
    return " ".join(s.split())


def _looks_like_prose(s: str) -> bool:
    return len(_WORD_RE.findall(s)) >= 4 or bool(_PROSE_RE.search(s))


def bare_answer(text: str) -> str | None:
    """`text` itself if it looks like a bare answer, else None.

    Bare means: after stripping `$..$`/`\\(..\\)`/`\\[..\\]` and a leading "Answer:", at most
    BARE_MAX_CHARS characters on one line, no prose (fewer than 4 words outside LaTeX
    commands and none of "the/is/so/therefore/answer/..."), and either some math (a digit,
    a backslash, an operator or bracket) or a single word. So `\\frac{1}{2}`, `(1, 2)`,
    `x = 3`, `5 apples`, `\\text{Evelyn}`, `Evelyn`, `C` are answers; "I think it is 5" and
    "no idea" are not ("I think it is 5" goes on to last_number where the benchmark allows it).
    """
    s = text.strip()
    if not s or len(s) > 4 * BARE_MAX_CHARS or "\n" in s:
        return None
    s = s.replace("**", "")
    s = _clean(_ANSWER_PREFIX_RE.sub("", s, count=1))
    if not s or len(s) > BARE_MAX_CHARS or _looks_like_prose(s):
        return None
    if "\\boxed" in s or "<answer>" in s.lower() or "####" in s:
        return None
    if not _MATHY_RE.search(s) and len(s.split()) > 1:
        return None
    return s


def extract_answer(text: str, modes: Sequence[str], *, bare: bool = True) -> str | None:
    """The final answer in `text`: modes tried in order, first hit wins.

    The bare-answer check (`bare_answer`) runs after the structural modes and before
    `last_number` (or at the end when the modes have no `last_number`), so a completion
    that *is* an answer (`(1, 2)`, `\\frac{1}{2}`) is graded whole instead of by its last
    digit. Unknown modes raise ValueError.
    """
    if not isinstance(text, str):
        return None
    for mode in modes:
        if mode not in EXTRACTORS:
            raise ValueError(f"unknown extraction mode {mode!r}; known: {', '.join(EXTRACTORS)}")
    bare_done = False
    for mode in modes:
        if mode == "last_number" and bare and not bare_done:
            bare_done = True
            b = bare_answer(text)
            if b is not None:
                return b
        got = EXTRACTORS[mode](text)
        if got is not None:
            got = _clean(got)
            if got:
                return got
    if bare and not bare_done:
        return bare_answer(text)
    return None


# ------------------------------------------------------------------------- choice letters

_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|textrm|rm|bf)\s*\{([^{}]*)\}")
_LETTER_RES = (
    re.compile(r"^[\(\[]?\s*([A-Ea-e])\s*[\)\]]?$"),  # C, (C), [c]
    re.compile(r"^(?i:option|choice)\s*[\(\[]?\s*([A-Ea-e])\s*[\)\]]?$"),  # Option C
    re.compile(r"^[\(\[]\s*([A-Ea-e])\s*[\)\]]\s*\S.*$", re.S),  # (C) 36
    re.compile(r"^([A-Ea-e])\)\s*\S.*$", re.S),  # C) 36
    re.compile(r"^([A-E])[.:]\s+\S.*$", re.S),  # C. 36 / C: 36 (capital only)
)


def _as_letter(s: str | None) -> str | None:
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


def _lenient_text(s: str) -> str:
    """Option text compared leniently: lower case, no spaces/$/braces/\\text, no trailing dot."""
    t = _TEXT_WRAP_RE.sub(r"\1", s)
    t = t.replace("\\$", "").replace("$", "").replace("\\", "").replace("{", "").replace("}", "")
    return re.sub(r"\s+", "", t).lower().rstrip(".")


# ------------------------------------------------------------------------- normalization
# Applied in the worker to the extracted answer and the gold before math-verify. Pure string
# transformations; each one is a row family in tests/test_grading_cases.py.

_UNICODE = {
    "\u2212": "-", "\u2013": "-", "\u00d7": r"\times ", "\u00b7": r"\cdot ", "\u22c5": r"\cdot ",
    "\u00f7": r"\div ", "\u03c0": r"\pi ", "\u221e": r"\infty ", "\u2264": r"\le ",
    "\u2265": r"\ge ", "\u00b1": r"\pm ", "\u2213": r"\mp ", "\u2009": " ", "\u202f": " ",
    "\u00a0": " ",
}
_SQRT_UNICODE_RE = re.compile(r"\u221a\s*(\d+(?:\.\d+)?|[A-Za-z])")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\u00b0|\\degree\b|\^\s*\{\s*\\text\{\s*o\s*\}\s*\}")
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
_UNIT_WORD_RE = re.compile(r"[A-Za-z]{2,}\.?(?:\^\d)?")
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
    """One answer string -> a form math-verify parses right (see the module's case table)."""
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


def _canon(s: str) -> str:
    return re.sub(r"\s+|\\left|\\right|\\!|\\,|\\;|\\ ", "", s)


def _too_big(s: str) -> bool:
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


# ------------------------------------------------------------------------- worker side
# Everything below up to the pool runs only inside worker processes.


class _SoftTimeout(BaseException):
    """Raised by SIGALRM inside a worker; BaseException so `except Exception` can't eat it."""


_MV: Any = None  # math_verify module, imported in the worker only


def _mv():
    global _MV
    if _MV is None:
        import logging

        import math_verify

        for name in ("math_verify", "latex2sympy2_extended"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        _MV = math_verify
    return _MV


@lru_cache(maxsize=8192)
def _parse_math(s: str, prose: bool) -> tuple:
    """math-verify parse of one (normalized) answer; `prose` lets math-verify find it."""
    mv = _mv()
    # A clean answer is parsed as LaTeX only: with ExprExtractionConfig as well, an answer
    # whose LaTeX parse fails falls back to its first number ("1 + garbage" -> 1).
    # Prose (an <answer> sentence) is searched by math-verify itself, numbers only behind an
    # "answer is" anchor, never "the first number anywhere".
    if prose:
        cfg = [mv.LatexExtractionConfig(), mv.ExprExtractionConfig(try_extract_without_anchor=False)]
    else:
        cfg = [mv.LatexExtractionConfig()]
    text = s if prose else f"${s}$"
    return tuple(mv.parse(text, extraction_config=cfg, parsing_timeout=None))


def _num_candidates(e):
    """Numeric values an expression stands for: itself, and for `X%` both X and X/100."""
    import sympy

    if isinstance(e, sympy.Mul) and len(e.args) == 2 and e.args[1] == sympy.UnevaluatedExpr(
            sympy.Rational(1, 100)):
        return [e.args[0], e.args[0] / 100]
    return [e]


def _close(g, p) -> bool | None:
    """True/False for two numeric sympy expressions, None when not both plain numbers.

    Exact values (no floats on either side) must agree to 1e-12 relative; with a float on
    either side, to 1e-5 relative. math-verify rounds to 6 decimal places, which accepts
    1/2004! for 1/2006! and 10^{-20} for 10^{-21}; this guard rejects those.
    """
    import sympy

    if not (isinstance(g, sympy.Expr) and isinstance(p, sympy.Expr)):
        return None
    if g.free_symbols or p.free_symbols or not g.is_number or not p.is_number:
        return None
    has_float = g.has(sympy.Float) or p.has(sympy.Float)
    tol = sympy.Float("1e-5") if has_float else sympy.Float("1e-12")
    try:
        gv = sympy.N(g.doit(), 40)
        pv = sympy.N(p.doit(), 40)
        if not (gv.is_number and pv.is_number) or gv.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            return None
        scale = max(abs(gv), abs(pv))
        diff = abs(gv - pv)
        if scale == 0:
            return True
        return bool(diff <= tol * scale)
    except (TypeError, ValueError, ArithmeticError):
        return None


def _guard(g, p) -> bool:
    """False when math-verify's accept of (g, p) is a known false accept."""
    import sympy

    gs, ps = _num_candidates(g), _num_candidates(p)
    verdicts = [_close(a, b) for a in gs for b in ps]
    if any(v is True for v in verdicts):
        return True
    if verdicts and all(v is False for v in verdicts):
        return False
    if isinstance(g, sympy.Tuple) and isinstance(p, sympy.Tuple) and len(g) == len(p):
        return all(_guard(a, b) for a, b in zip(g, p))
    if isinstance(g, sympy.Interval) and isinstance(p, sympy.Interval):
        return _guard(g.start, p.start) and _guard(g.end, p.end)
    return True


_INT_RE = re.compile(r"[-+]?\d{1,1000}")
_DEC_RE = re.compile(r"[-+]?(?:\d{1,1000}(?:\.\d{0,1000})?|\.\d{1,1000})")


def _pair_verdict(p: str, g: str) -> bool | None:
    """The verdict on a normalized pair that needs no math: same string, two integers, or a
    set-vs-tuple mismatch; None when math-verify must decide. Pure string work."""
    if not p:
        return False
    if _canon(p) == _canon(g):
        return True
    if _INT_RE.fullmatch(p) and _INT_RE.fullmatch(g):
        return int(p) == int(g)
    if _DEC_RE.fullmatch(p) and _DEC_RE.fullmatch(g) and Fraction(p) == Fraction(g):
        return True  # 4.0 == 4; unequal decimals go to math-verify (its rounding + our guard)
    if _structure_mismatch(p, g):
        return False
    return None


def _string_verdict(pred: str, golds: Sequence[str]) -> bool | None:
    """Parent-side fast path: True if some gold matches by string, False if every gold is
    decided False by string, None if any needs the worker (then nothing is decided here)."""
    undecided = False
    for gold in golds:
        v = _pair_verdict(*normalize_pair(pred, gold))
        if v:
            return True
        undecided |= v is None
    return None if undecided else False


def _verify_one(pred: str, gold: str) -> bool:
    p, g = normalize_pair(pred, gold)
    v = _pair_verdict(p, g)
    if v is not None:
        return v
    mv = _mv()
    gold_parsed = _parse_math(g, False)
    pred_parsed = _parse_math(p, _looks_like_prose(p))
    if not gold_parsed or not pred_parsed:
        return False
    for gi in gold_parsed:
        for pi in pred_parsed:
            if mv.verify(gi, pi, timeout_seconds=None) and _guard(gi, pi):
                return True
    return False


def _grade_payload(payload: tuple) -> bool:
    """payload = (pred, golds, hook); True when pred matches any gold."""
    pred, golds, hook = payload
    if hook is not None:
        _run_test_hook(hook)
    return any(_verify_one(pred, g) for g in golds)


def _run_test_hook(hook: tuple) -> None:
    """Test-only: ("sleep", s) sleeps with SIGALRM blocked (a stuck C call the soft timer
    can't interrupt); ("raise",) raises. Only reachable with Grader(_test_hooks=True)."""
    if hook[0] == "sleep":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        try:
            time.sleep(float(hook[1]))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
    elif hook[0] == "raise":
        raise RuntimeError("test hook")


def _on_alarm(signum, frame):
    raise _SoftTimeout()


# A few answers parsed once in the zygote, so forked workers start with warm imports and a
# partly warm ANTLR DFA cache. Kept short: it runs before the first worker exists.
_WARMUP = (r"\frac{1}{2}", "0.5", r"2\sqrt{3}", "(1, 2)", r"[0, \infty)", r"\{1, 2\}", "x = 3",
           r"50\%", r"\text{Monday}", "x^2 + 1")


def _warm_up() -> None:
    _mv()
    for a, b in zip(_WARMUP, _WARMUP[1:] + _WARMUP[:1]):
        try:
            _verify_one(a, b)
        except Exception:  # noqa: BLE001
            pass


def _zygote_main(ctrl_fd: int, soft_timeout: float, mem_bytes: int) -> None:
    """A fresh interpreter (never the parent's fork) that imports math-verify, warms up, then
    forks one worker per socket it receives. It is single-threaded and holds nothing but its
    control socket, so forking it is safe and cheap, and a killed worker is replaced in ms."""
    ctrl = socket.socket(fileno=ctrl_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    _warm_up()
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(ctrl, 16, 8)
        except (OSError, ValueError):
            return
        if not msg:  # the parent closed the control socket
            for fd in fds:
                os.close(fd)
            return
        for fd in fds:
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    ctrl.close()
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    _worker_loop(fd, soft_timeout, mem_bytes)
                except BaseException:  # noqa: BLE001
                    code = 1
                finally:
                    os._exit(code)
            os.close(fd)


def _worker_loop(fd: int, soft_timeout: float, mem_bytes: int) -> None:
    """Worker: answer (ticket, payload) messages with (ticket, status, correct)."""
    conn = Connection(fd)
    try:
        import resource

        if mem_bytes > 0:
            resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
    except (ImportError, ValueError, OSError):
        pass
    signal.signal(signal.SIGALRM, _on_alarm)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        ticket, payload = msg
        status, correct = "error", False
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, soft_timeout)
                correct = bool(_grade_payload(payload))
                status = "ok"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _SoftTimeout:
            status, correct = "timeout", False
        except (RecursionError, MemoryError):
            status, correct = "error", False
        except Exception:  # noqa: BLE001 - any failure inside math-verify is status "error"
            status, correct = "error", False
        try:
            conn.send((ticket, status, correct))
        except (EOFError, OSError):
            return


# ------------------------------------------------------------------------- the pool


class _Zygote:
    """Parent-side handle of the zygote process: `spawn()` returns a new worker's connection."""

    def __init__(self, soft_timeout: float):
        parent_sock, child_sock = socket.socketpair()
        fd = child_sock.fileno()
        pkg_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, "1")
        code = ("import sys; from amir_bench.grading import _zygote_main; "
                "_zygote_main(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(fd), repr(soft_timeout), str(WORKER_MEM_BYTES)],
            pass_fds=(fd,), env=env, stdin=subprocess.DEVNULL, close_fds=True)
        child_sock.close()
        self.sock = parent_sock

    def spawn(self) -> Connection:
        mine, theirs = socket.socketpair()
        try:
            socket.send_fds(self.sock, [b"w"], [theirs.fileno()])
        finally:
            theirs.close()
        return Connection(mine.detach())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


class _Worker:
    """One forked worker and its connection; `inflight` are tickets sent, oldest first."""

    def __init__(self, zygote: _Zygote):
        self.conn = zygote.spawn()
        self.pid: int | None = None  # known once the worker says "ready"
        self.pidfd: int | None = None  # race-free kill handle where the OS has one
        self.ready = False
        self.spawned = time.monotonic()
        self.inflight: collections.deque[int] = collections.deque()
        self.head_started = 0.0

    def mark_ready(self, pid: int) -> None:
        self.ready, self.pid = True, pid
        if hasattr(os, "pidfd_open"):
            try:
                self.pidfd = os.pidfd_open(pid)
            except OSError:
                self.pidfd = None

    def kill(self) -> None:
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            elif self.pid is not None:
                os.kill(self.pid, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        self._close_handles()

    def stop(self) -> None:
        """Ask an idle worker to exit; closing its socket is enough for it to see EOF."""
        if self.inflight:
            self.kill()
            return
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self._close_handles()

    def _close_handles(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        if self.pidfd is not None:
            try:
                os.close(self.pidfd)
            except OSError:
                pass
            self.pidfd = None


class _Pool:
    """The zygote and the current workers (a list the finalizer can reach without the Grader)."""

    def __init__(self, soft_timeout: float, n: int):
        self.soft = soft_timeout
        self.zygote = _Zygote(soft_timeout)
        self.workers = [self.new_worker() for _ in range(n)]

    def new_worker(self) -> _Worker:
        try:
            return _Worker(self.zygote)
        except OSError:  # the zygote died: start another one
            self.zygote.close()
            self.zygote = _Zygote(self.soft)
            return _Worker(self.zygote)

    def replace(self, w: _Worker) -> None:
        w.kill()
        self.workers[self.workers.index(w)] = self.new_worker()

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.workers = []
        self.zygote.close()


class Grader:
    """A pool of grading workers with a per-item timeout and a result cache. Use as a
    context manager (or call close()); one Grader can grade many batches."""

    STARTUP_TIMEOUT = 60.0
    DEPTH = 4  # items queued per worker, so a worker never waits on the parent

    def __init__(self, timeout: float = 5.0, workers: int | None = None, *,
                 _test_hooks: bool = False):
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = float(timeout)
        # The worker's own SIGALRM fires a little before the parent's hard kill, so the usual
        # timeout costs no restart; the kill is for code that ignores signals.
        self._soft = max(0.05, self.timeout - min(0.5, 0.2 * self.timeout))
        self.n_workers = max(1, int(workers or os.cpu_count() or 1))
        self._hooks = _test_hooks
        self._cache: dict[tuple, tuple[bool, str]] = {}
        self._closed = False
        self._lock = threading.Lock()
        # decided_in_parent / no_answer / cache_hits / sent_to_workers / timeouts / kills / restarts
        self.stats: collections.Counter = collections.Counter()
        self.max_latency = 0.0  # longest time one worker item took, seen by the parent
        self._pool = _Pool(self._soft, self.n_workers)  # starts now; grade() waits for ready
        self._finalizer = weakref.finalize(self, self._pool.close)

    # -- context manager
    def __enter__(self) -> "Grader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._finalizer()  # runs _pool.close once

    # -- parent-side preparation
    def _prepare(self, item: GradeItem) -> tuple[str | None, tuple | None, GradeResult | None]:
        """-> (extracted, job key, immediate result). Pure string work."""
        if item.kind not in KINDS:
            raise ValueError(f"unknown answer kind {item.kind!r}; expected one of {KINDS}")
        modes = tuple(item.extract)
        gold = str(item.gold).strip()
        alts = tuple(str(a).strip() for a in item.alternatives if str(a).strip())
        completion = item.completion if isinstance(item.completion, str) else ""
        if item.kind == "choice":
            modes = tuple(m for m in modes if m != "last_number")
        extracted = extract_answer(completion, modes)
        if extracted is None:
            return None, None, GradeResult(None, False, "no_answer")
        golds = (gold,) + tuple(a for a in alts if a != gold)
        if _too_big(extracted):
            same = any(_canon(extracted) == _canon(g) for g in golds)
            return extracted, None, GradeResult(extracted, same, "ok")
        if item.kind == "choice":
            letter = _as_letter(extracted)
            gold_letter = _as_letter(gold) or gold.upper()
            if letter is not None:
                return extracted, None, GradeResult(extracted, letter == gold_letter, "ok")
            if not alts:
                return extracted, None, GradeResult(extracted, False, "ok")
            if any(_lenient_text(extracted) == _lenient_text(a) for a in alts):
                return extracted, None, GradeResult(extracted, True, "ok")
            golds = alts
        hook = None
        if self._hooks and extracted.startswith("__test_hook__:"):
            hook = tuple(extracted.split(":")[1:])
        else:
            verdict = _string_verdict(extracted, golds)
            if verdict is not None:
                return extracted, None, GradeResult(extracted, verdict, "ok")
        key = (extracted, golds, hook)
        return extracted, key, None

    # -- grading
    def grade(self, items: Sequence[GradeItem],
              progress: Callable[[int], None] | None = None) -> list[GradeResult]:
        """Grade items (order preserved). progress(k) is called as k more items finish."""
        if self._closed:
            raise RuntimeError("Grader is closed")
        with self._lock:
            return self._grade(list(items), progress)

    def _grade(self, items: list[GradeItem], progress) -> list[GradeResult]:
        results: list[GradeResult | None] = [None] * len(items)
        waiting: dict[tuple, list[int]] = {}
        extracted_of: list[str | None] = [None] * len(items)
        done_now = 0
        for i, item in enumerate(items):
            ext, key, res = self._prepare(item)
            extracted_of[i] = ext
            if res is not None:
                results[i] = res
                self.stats["no_answer" if res.status == "no_answer" else "decided_in_parent"] += 1
                done_now += 1
            elif key in self._cache:
                correct, status = self._cache[key]
                results[i] = GradeResult(ext, correct, status)
                self.stats["cache_hits"] += 1
                done_now += 1
            else:
                if key not in waiting:
                    self.stats["sent_to_workers"] += 1
                waiting.setdefault(key, []).append(i)
        if progress and done_now:
            progress(done_now)
        if waiting:
            self._run_jobs(waiting, results, extracted_of, progress)
        return results  # type: ignore[return-value]

    def _finish(self, key, correct, status, waiting, results, extracted_of, progress) -> None:
        self._cache[key] = (correct, status)
        idxs = waiting.pop(key)
        for i in idxs:
            results[i] = GradeResult(extracted_of[i], correct, status)
        if progress:
            progress(len(idxs))

    @property
    def _workers(self) -> list[_Worker]:
        return self._pool.workers

    def _replace(self, w: _Worker) -> None:
        self._pool.replace(w)
        self.stats["restarts"] += 1

    def _run_jobs(self, waiting: dict[tuple, list[int]], results, extracted_of, progress) -> None:
        keys = list(waiting)
        # Tickets (indexes into keys) are queued per worker slot by gold, so a gold's parse is
        # cached in one worker; an idle worker steals from the back of the longest queue.
        queues: list[collections.deque[int]] = [collections.deque() for _ in self._workers]
        for t, key in enumerate(keys):
            queues[hash(key[1]) % len(queues)].append(t)
        fails: collections.Counter = collections.Counter()
        while waiting:
            now = time.monotonic()
            # dispatch
            for slot, w in enumerate(self._workers):
                if not w.ready:
                    continue
                while len(w.inflight) < self.DEPTH:
                    own = queues[slot]
                    if own:
                        t = own.popleft()
                    else:
                        victim = max(queues, key=len)
                        if not victim:
                            break
                        t = victim.pop()
                    key = keys[t]
                    try:
                        w.conn.send((t, (key[0], key[1], key[2])))
                    except (OSError, ValueError):
                        queues[slot].appendleft(t)
                        break
                    if not w.inflight:
                        w.head_started = now
                    w.inflight.append(t)
            # wait for a result, a ready signal or the nearest deadline
            busy = [w for w in self._workers if w.inflight]
            deadlines = [w.head_started + self.timeout for w in busy]
            # a ready signal may sit unread when the first batch comes long after startup
            if not any(w.ready or w.conn.poll() for w in self._workers) and \
                    now - max(w.spawned for w in self._workers) > self.STARTUP_TIMEOUT:
                raise RuntimeError("grading workers did not start within "
                                   f"{self.STARTUP_TIMEOUT:.0f} s (see stderr)")
            wait_for = min(deadlines) - now if deadlines else 0.5
            conns = {w.conn: w for w in self._workers if w.inflight or not w.ready}
            ready = wait(list(conns), timeout=max(0.0, min(wait_for, 0.5))) if conns else []
            now = time.monotonic()
            for conn in ready:
                w = conns[conn]
                try:
                    while w.conn.poll():
                        msg = w.conn.recv()
                        if msg[0] == "ready":
                            w.mark_ready(int(msg[1]))
                            continue
                        t, status, correct = msg
                        if not w.inflight or w.inflight[0] != t:
                            continue  # stale (should not happen)
                        w.inflight.popleft()
                        self.max_latency = max(self.max_latency, now - w.head_started)
                        w.head_started = now
                        if status == "timeout":
                            self.stats["timeouts"] += 1
                        self._finish(keys[t], bool(correct), status, waiting, results,
                                     extracted_of, progress)
                except (EOFError, OSError):
                    # the worker died (crash, OOM kill): its head item is an error
                    if not w.ready:
                        fails["startup"] += 1
                        if fails["startup"] > 2 * self.n_workers:
                            raise RuntimeError("grading workers keep dying at startup (see stderr)")
                    elif w.inflight:
                        t = w.inflight.popleft()
                        self.stats["errors"] += 1
                        self._finish(keys[t], False, "error", waiting, results, extracted_of,
                                     progress)
                    queues[self._workers.index(w)].extendleft(reversed(w.inflight))
                    w.inflight.clear()
                    self._replace(w)
            # hard deadline: kill and replace; the head item timed out, the rest go back
            for w in list(self._workers):
                if w.inflight and now - w.head_started >= self.timeout:
                    t = w.inflight.popleft()
                    self.stats["timeouts"] += 1
                    self.stats["kills"] += 1
                    self.max_latency = max(self.max_latency, now - w.head_started)
                    self._finish(keys[t], False, "timeout", waiting, results, extracted_of,
                                 progress)
                    queues[self._workers.index(w)].extendleft(reversed(w.inflight))
                    w.inflight.clear()
                    self._replace(w)


# ------------------------------------------------------------------------- conveniences


def item_for(problem, spec, completion: str) -> GradeItem:
    """The GradeItem for one completion of a benchmarks.specs Problem under its BenchmarkSpec."""
    meta = getattr(problem, "meta", None) or {}
    alts: tuple[str, ...] = ()
    if spec.answer_kind == "choice":
        text = meta.get("answer_text")
        if text and not meta.get("answer_text_needs_options"):
            alts = (str(text),)
    else:
        raw = meta.get("answer_alternatives") or ()
        if isinstance(raw, str):
            raw = (raw,)
        alts = tuple(a for a in (str(x).strip() for x in raw)
                     if a and a != problem.answer and _plausible_alternative(problem.answer, a))
    return GradeItem(completion=completion, gold=str(problem.answer), extract=tuple(spec.extract),
                     kind=spec.answer_kind, alternatives=alts)


_SIMPLE_SCI_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:(?:[eE]|\\times\s*10\^)\s*\{?\s*([+-]?\d+)\s*\}?)?\s*$")


def _simple_float(s: str) -> float | None:
    m = _SIMPLE_SCI_RE.match(s)
    if not m:
        return None
    return float(m.group(1)) * (10.0 ** int(m.group(2)) if m.group(2) else 1.0)


def _plausible_alternative(gold: str, alt: str) -> bool:
    """Drop an alternative that is a plain number more than 10% away from a plain-number gold
    (a few Minerva rows carry another problem's answer as their "alternative")."""
    g, a = _simple_float(gold), _simple_float(alt)
    if g is None or a is None:
        return True
    return abs(g - a) <= 0.1 * max(abs(g), abs(a))


_SHARED: dict[float, Grader] = {}


def _close_shared() -> None:
    for g in _SHARED.values():
        g.close()
    _SHARED.clear()


atexit.register(_close_shared)


def grade_one(completion: str, gold: str, *, timeout: float = 5.0, **kw) -> GradeResult:
    """Grade one completion with a cached module-level 1-worker Grader.
    kw: extract, kind, alternatives (as in GradeItem)."""
    g = _SHARED.get(timeout)
    if g is None or g._closed:
        g = _SHARED[timeout] = Grader(timeout=timeout, workers=1)
    return g.grade([GradeItem(completion=completion, gold=gold, **kw)])[0]


def _item_from_row(obj: dict, path: Path, line: int) -> GradeItem:
    def bad(what: str) -> UserError:
        return UserError(f"{path}:{line}: {what}")

    if "pred" not in obj:
        raise bad("missing field 'pred'")
    if "gold" not in obj:
        raise bad("missing field 'gold'")
    pred, gold = obj["pred"], obj["gold"]
    if pred is None:
        pred = ""
    if not isinstance(pred, str):
        raise bad(f"field 'pred' must be a string, got {type(pred).__name__}")
    if isinstance(gold, bool) or not isinstance(gold, (str, int, float)):
        raise bad(f"field 'gold' must be a string or a number, got {type(gold).__name__}")
    gold = str(gold)
    if not gold.strip():
        raise bad("field 'gold' is empty")
    kind = obj.get("kind", "math")
    if kind not in KINDS:
        raise bad(f"field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    extract = obj.get("extract")
    if extract is None:
        modes = CHOICE_EXTRACT if kind == "choice" else DEFAULT_EXTRACT
    else:
        if isinstance(extract, str):
            extract = [m.strip() for m in extract.split(",") if m.strip()]
        if not isinstance(extract, list) or not extract or not all(isinstance(m, str) for m in extract):
            raise bad("field 'extract' must be a non-empty list of mode names")
        unknown = [m for m in extract if m not in EXTRACTORS]
        if unknown:
            raise bad(f"unknown extraction mode {unknown[0]!r} (known: {', '.join(EXTRACTORS)})")
        modes = tuple(extract)
    alts = obj.get("alternatives", [])
    if isinstance(alts, str):
        alts = [alts]
    if not isinstance(alts, list) or not all(isinstance(a, (str, int, float)) for a in alts):
        raise bad("field 'alternatives' must be a list of strings")
    return GradeItem(completion=pred, gold=gold, extract=modes, kind=kind,
                     alternatives=tuple(str(a) for a in alts))


def grade_file(in_path, out_path, timeout: float = 5.0, workers: int | None = None,
               progress: Callable[[int], None] | None = None) -> dict:
    """`amir-bench grade FILE.jsonl`: read {"pred", "gold", optional "extract"/"kind"/
    "alternatives"} lines, write each line back with extracted/correct/grade_status.
    The output is written atomically (temp file + rename); returns counts."""
    from amir_bench.records import atomic_write_text, iter_jsonl

    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.exists():
        raise UserError(f"{in_path}: no such file")
    rows: list[dict] = []
    items: list[GradeItem] = []
    for line, obj in iter_jsonl(in_path):
        items.append(_item_from_row(obj, in_path, line))
        rows.append(obj)
    results: list[GradeResult] = []
    if items:
        with Grader(timeout=timeout, workers=min(workers or os.cpu_count() or 1, len(items))) as g:
            results = g.grade(items, progress=progress)
    out_lines = []
    counts: collections.Counter = collections.Counter({s: 0 for s in STATUSES})
    n_correct = 0
    for obj, res in zip(rows, results):
        obj = dict(obj)
        obj["extracted"] = res.extracted
        obj["correct"] = res.correct
        obj["grade_status"] = res.status
        counts[res.status] += 1
        n_correct += int(res.correct)
        out_lines.append(json.dumps(obj, ensure_ascii=False) + "\n")
    atomic_write_text(out_path, "".join(out_lines))
    return {"total": len(rows), "correct": n_correct,
            "accuracy": (n_correct / len(rows)) if rows else 0.0, **dict(counts)}


__all__ = [
    "GradeItem", "GradeResult", "Grader", "extract_answer", "bare_answer", "item_for",
    "grade_one", "grade_file", "normalize_answer", "normalize_pair", "EXTRACTORS",
    "DEFAULT_EXTRACT", "CHOICE_EXTRACT", "STATUSES",
]
