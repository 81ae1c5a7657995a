"""Answer extraction: the final answer of a completion, by named modes tried in order.

Pure string functions that run in the parent process on untrusted model text: each regex is
linear (no nested quantifiers over the same characters), brace matching is one left-to-right
pass over brace tokens only, so 200 KB completions and 10k nested braces stay cheap.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

# A completion this short, on one line, without prose, is itself the answer (bare preds).
BARE_MAX_CHARS = 300

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


def looks_like_prose(s: str) -> bool:
    """Reads as a sentence (4+ words, or a word like "the", "is", "therefore")."""
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
    if not s or len(s) > BARE_MAX_CHARS or looks_like_prose(s):
        return None
    if "\\boxed" in s or "<answer>" in s.lower() or "####" in s:
        return None
    if not _MATHY_RE.search(s) and len(s.split()) > 1:
        return None
    return s


def extract_with_mode(text: str, modes: Sequence[str], *,
                      bare: bool = True) -> tuple[str | None, str | None]:
    """(answer, the mode that produced it) for `text`: modes tried in order, first hit wins.

    The bare-answer check (`bare_answer`, mode "bare") runs after the structural modes and
    before `last_number` (or at the end when the modes have no `last_number`), so a completion
    that *is* an answer (`(1, 2)`, `\\frac{1}{2}`) is graded whole instead of by its last
    digit. (None, None) when nothing is found. Unknown modes raise ValueError.
    """
    if not isinstance(text, str):
        return None, None
    for mode in modes:
        if mode not in EXTRACTORS:
            raise ValueError(f"unknown extraction mode {mode!r}; known: {', '.join(EXTRACTORS)}")
    bare_done = False
    for mode in modes:
        if mode == "last_number" and bare and not bare_done:
            bare_done = True
            b = bare_answer(text)
            if b is not None:
                return b, "bare"
        got = EXTRACTORS[mode](text)
        if got is not None:
            got = _clean(got)
            if got:
                return got, mode
    if bare and not bare_done:
        b = bare_answer(text)
        if b is not None:
            return b, "bare"
    return None, None


def extract_answer(text: str, modes: Sequence[str], *, bare: bool = True) -> str | None:
    """The final answer in `text` (see `extract_with_mode`), without the mode."""
    return extract_with_mode(text, modes, bare=bare)[0]
