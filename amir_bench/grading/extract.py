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


# A final-answer cue: `Answer:`, `Final Answer:`, `**Answer:**`, `**Final Answer**:`,
# `The final answer is`, `the answer is`, `Ответ:` (simple-evals' Russian prompts), or a
# `## Final Answer` / `**Final Answer**` heading line. Each alternative is a run of distinct
# literal tokens (linear time).
_CUE_RE = re.compile(
    r"(?i)(?<![A-Za-z])(?:"
    r"(?:the[ \t]+)?(?:final[ \t]+)?answer[ \t]+is\b(?:[ \t]*:)?"
    r"|(?:final[ \t]+)?answer[ \t]*(?:\*\*|__)?[ \t]*[:\uff1a]"
    r"|\u043e\u0442\u0432\u0435\u0442[ \t]*(?:\*\*)?[ \t]*:"
    r"|^[ \t]*(?:#{1,6}|\*\*)[ \t]*final[ \t]+answer[ \t]*(?:\*\*)?[ \t]*:?[ \t]*$"
    r")", re.M)
_HOPE_RE = re.compile(r"(?i)[ \t]*I[ \t]+hope[ \t]+it[ \t]+is[ \t]+correct[ \t]*\.?[ \t]*$")
# A remark in parentheses after the answer: `$225$ (without quotes)`, `$-\pi/6$ (in radians)`.
_REMARK_RE = re.compile(r"(?<=\S)[ \t]+\([^\W\d_]{2,}(?:[ \t][^\W\d_]{2,}){0,3}\)[ \t]*\.?$")
_IS_RE = re.compile(r"[ \t]is[ \t]")
_ASSIGN_RE = re.compile(r"[$\\( \t]*[A-Za-z](?:_\{?\w+\}?)?[ \t]*=[^=]*$")
ANSWER_LINE_MAX_CHARS = 600
ANSWER_CUES_TRIED = 3  # the last cue first, then up to two earlier ones
_ANSWER_NUM_RE = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?(?![\d])")


def _cue_sentences(text: str) -> list[tuple[str, int]]:
    """(what follows a final-answer cue, where the cue starts) for the last few cues, last
    first. What follows is the rest of the cue's line, or, when that is empty, the next
    paragraph (display math after `Answer:`), without markdown bold, a `}` closing a
    `\\text{Answer: }`, a trailing "I hope it is correct." (lm-eval's Minerva format) or a
    parenthesized remark."""
    cues = list(_CUE_RE.finditer(text, max(0, len(text) - 20_000)))
    out = []
    for m in reversed(cues[-ANSWER_CUES_TRIED:]):
        rest = text[m.end():m.end() + ANSWER_LINE_MAX_CHARS]
        line, _, after = rest.partition("\n")
        line = line.strip().lstrip("}").strip().strip("*_").strip()
        if not line:  # the answer follows on the next lines, up to a blank line
            para = after.lstrip("\n").split("\n\n", 1)[0]
            line = " ".join(para.split()).strip("*_").strip()
        line = _REMARK_RE.sub("", _HOPE_RE.sub("", line))
        if line:
            out.append((line, m.start()))
    return out


def _balanced(s: str) -> bool:
    """Braces balance (a truncated `\\frac{11}{2` does not)."""
    depth = 0
    for c in s:
        depth += (c == "{") - (c == "}")
        if depth < 0:
            return False
    return depth == 0


def _extract_answer_line(text: str) -> str | None:
    """The bare answer after the last final-answer cue (`Answer: $(2,4)$` -> `(2,4)`).

    What follows the cue must pass `bare_answer`: a sentence after the cue is not an answer
    here, but what follows its last " is " may be ("The value of $a$ is $-256$." -> -256);
    `answer_number` reads numbers from sentences where the benchmark allows. When the last
    cue is followed by neither or by a truncated answer, up to two earlier cues are tried."""
    for line, _ in _cue_sentences(text):
        got = bare_answer(line)
        if got is None and _IS_RE.search(line):  # "The value of $a$ is $-256$."
            tail = _IS_RE.split(line)[-1]
            if "=" not in tail or _ASSIGN_RE.match(tail):  # not "is 55 + 45 = 100 goats"
                got = bare_answer(tail)
        if got is not None and _balanced(got):
            return got
    return None


def _extract_answer_number(text: str) -> str | None:
    """A number from the sentence after the last final-answer cue ("Answer: Ryan has 25
    flowers after 15 days." -> 25), for benchmarks whose golds are numbers: the number right
    after the sentence's last `=`; else the sentence's number that restates the last number
    computed before the cue; else the sentence's first number."""
    found = _cue_sentences(text)
    if not found:
        return None
    line, start = found[0]
    if "=" in line:
        after = _ANSWER_NUM_RE.search(line.rsplit("=", 1)[1])
        if after:
            return after.group().replace(",", "")
    nums = [m.group().replace(",", "") for m in _ANSWER_NUM_RE.finditer(line)]
    if not nums:
        return None
    before = _extract_last_number(text[max(0, start - 4000):start])
    if before is not None and before in nums:
        return before
    return nums[0]


# Mode name -> extractor (first hit in the order given wins).
EXTRACTORS: dict[str, Callable[[str], str | None]] = {
    "boxed": _extract_boxed,
    "answer_tag": _extract_answer_tag,
    "answer_line": _extract_answer_line,
    "answer_number": _extract_answer_number,
    "gsm8k": _extract_gsm8k,
    "choice_letter": _extract_choice_letter,
    "last_number": _extract_last_number,
}

_WRAPPERS = ((r"\(", r"\)"), (r"\[", r"\]"), ("$$", "$$"), ("$", "$"))
_ANSWER_PREFIX_RE = re.compile(
    r"^(?i:(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*[:=]?|final\s*:)\s*")
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_PROSE_RE = re.compile(r"(?i)\b(?:the|is|are|so|therefore|thus|hence|we|answer|because)\b")
_SENTENCE_START_RE = re.compile(r"(?:[^\W\d_]{2,}[ \t]+){2}")
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
    if _SENTENCE_START_RE.match(s):  # "Adam loses $16": a sentence, not an answer
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
