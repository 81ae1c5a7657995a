"""The worker side: math-verify with our false-accept guards, under a soft timer, in processes
forked from a zygote interpreter.

Runs only in the grading processes (started by `pool._Zygote`): the pair is normalized
(`normalize_pair`), decided by string where possible, else parsed by math-verify (gold wrapped
in `$...$`) and verified, then checked by `_guard` against known false accepts. A SIGALRM soft
timer bounds each item; the parent kills a worker that outlives the hard timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from functools import lru_cache
from multiprocessing.connection import Connection
from typing import Any

from amir_bench.grading.extract import looks_like_prose
from amir_bench.grading.normalize import normalize_pair, pair_verdict


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

def _verify_one(pred: str, gold: str) -> bool:
    p, g = normalize_pair(pred, gold)
    v = pair_verdict(p, g)
    if v is not None:
        return v
    mv = _mv()
    gold_parsed = _parse_math(g, False)
    pred_parsed = _parse_math(p, looks_like_prose(p))
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

