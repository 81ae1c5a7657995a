"""The grading pool: `Grader` prepares items in the parent and runs the math in workers.

The parent does only string work: extraction, choice letters, a size pre-screen, the
normalized string/integer fast path (`string_verdict`) and the cache. Model text never
reaches eval/exec/sympify/parse_expr here. What is left goes to workers (`verify.py`); an item
that outlives the hard per-item timeout gets its worker killed and replaced, status "timeout",
counts incorrect, and the rest of the batch proceeds.

Processes: a Grader starts one "zygote", a fresh isolated interpreter (`sys.executable -P -c`,
never a fork of the possibly torch-threaded parent; nothing of the user's working directory is
importable there) that imports math-verify, warms its parser up and then forks the workers
(and their replacements) on request. Unlike multiprocessing's spawn and forkserver children,
these never re-import the parent's `__main__` (which, for the CLI, would pull torch into every
worker). POSIX only (signal.alarm, fork, socket.send_fds).
"""

from __future__ import annotations

import atexit
import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Sequence

from amir_bench.grading.extract import extract_with_mode
from amir_bench.grading.items import KINDS, GradeItem, GradeResult
from amir_bench.grading.normalize import as_letter, canon, lenient_text, string_verdict, too_big
from amir_bench.errors import UserError
from amir_bench.limits import GRADE_TIMEOUT_S

# Virtual-memory cap per worker (a runaway sympy integer becomes MemoryError -> "error").
WORKER_MEM_BYTES = 4 << 30


def worker_sys_path() -> list[str]:
    """The zygote's import path: the folder holding this amir_bench package first (so the
    workers run the parent's copy of the grader), then the parent's sys.path without the
    current directory (`""`, `.` or its absolute path)."""
    cwd = os.path.realpath(os.getcwd())
    pkg_root = str(Path(__file__).resolve().parents[2])
    keep = [p for p in sys.path if p and p != pkg_root and os.path.realpath(p) != cwd]
    return [pkg_root] + keep


class _Zygote:
    """Parent-side handle of the zygote process: `spawn()` returns a new worker's connection."""

    def __init__(self, soft_timeout: float):
        parent_sock, child_sock = socket.socketpair()
        fd = child_sock.fileno()
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, "1")
        # -I: no PYTHON* variables, no user site, and neither the current directory nor the
        # script's folder first on sys.path, so an `inspect.py` or `math.py` in the user's
        # directory cannot shadow the standard library. The parent's own import path (less
        # the current directory) is handed over explicitly, this package's root first.
        code = ("import sys; sys.path[:] = sys.argv[4:]; "
                "from amir_bench.grading.verify import _zygote_main; "
                "_zygote_main(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", code, str(fd), repr(soft_timeout), str(WORKER_MEM_BYTES),
             *worker_sys_path()],
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

    STARTUP_TIMEOUT = 180.0  # importing math-verify on a loaded 2-core machine took > 60 s
    DEPTH = 4  # items queued per worker, so a worker never waits on the parent

    def __init__(self, timeout: float = GRADE_TIMEOUT_S, workers: int | None = None, *,
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
    def _prepare(self, item: GradeItem
                 ) -> tuple[str | None, str | None, tuple | None, GradeResult | None]:
        """-> (extracted, extract mode, job key, immediate result). Pure string work."""
        if item.kind not in KINDS:
            raise ValueError(f"unknown answer kind {item.kind!r}; expected one of {KINDS}")
        modes = tuple(item.extract)
        gold = str(item.gold).strip()
        alts = tuple(str(a).strip() for a in item.alternatives if str(a).strip())
        completion = item.completion if isinstance(item.completion, str) else ""
        if item.kind == "choice":
            modes = tuple(m for m in modes if m != "last_number")
        extracted, mode = extract_with_mode(completion, modes)
        if extracted is None:
            return None, None, None, GradeResult(None, False, "no_answer")
        golds = (gold,) + tuple(a for a in alts if a != gold)
        if too_big(extracted):
            same = any(canon(extracted) == canon(g) for g in golds)
            return extracted, mode, None, GradeResult(extracted, same, "ok", mode)
        if item.kind == "choice":
            letter = as_letter(extracted)
            gold_letter = as_letter(gold) or gold.upper()
            if letter is not None:
                verdict = letter == gold_letter
                return extracted, mode, None, GradeResult(extracted, verdict, "ok", mode)
            if not alts:
                return extracted, mode, None, GradeResult(extracted, False, "ok", mode)
            if any(lenient_text(extracted) == lenient_text(a) for a in alts):
                return extracted, mode, None, GradeResult(extracted, True, "ok", mode)
            golds = alts
        hook = None
        if self._hooks and extracted.startswith("__test_hook__:"):
            hook = tuple(extracted.split(":")[1:])
        else:
            verdict = string_verdict(extracted, golds)
            if verdict is not None:
                return extracted, mode, None, GradeResult(extracted, verdict, "ok", mode)
        key = (extracted, golds, hook)
        return extracted, mode, key, None

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
        extracted_of: list[tuple[str | None, str | None]] = [(None, None)] * len(items)
        done_now = 0
        for i, item in enumerate(items):
            ext, mode, key, res = self._prepare(item)
            extracted_of[i] = (ext, mode)
            if res is not None:
                results[i] = res
                self.stats["no_answer" if res.status == "no_answer" else "decided_in_parent"] += 1
                done_now += 1
            elif key in self._cache:
                correct, status = self._cache[key]
                results[i] = GradeResult(ext, correct, status, mode)
                self.stats["cache_hits"] += 1
                done_now += 1
            else:
                if key not in waiting:
                    self.stats["sent_to_workers"] += 1
                waiting.setdefault(key, []).append(i)
        if progress and done_now:
            progress(done_now)
        if waiting:
            self._run_jobs(_Batch(waiting, results, extracted_of, progress, len(self._workers)))
        return results  # type: ignore[return-value]

    def _finish(self, b: _Batch, ticket: int, correct: bool, status: str) -> None:
        """Record one job's verdict for every item waiting on it, and in the cache."""
        key = b.keys[ticket]
        self._cache[key] = (correct, status)
        idxs = b.waiting.pop(key)
        for i in idxs:
            ext, mode = b.extracted_of[i]
            b.results[i] = GradeResult(ext, correct, status, mode)
        if b.progress:
            b.progress(len(idxs))

    @property
    def _workers(self) -> list[_Worker]:
        return self._pool.workers

    def _replace(self, w: _Worker, b: _Batch) -> None:
        """Kill and replace a worker; the tickets it still held go back to its queue."""
        b.queues[self._workers.index(w)].extendleft(reversed(w.inflight))
        w.inflight.clear()
        self._pool.replace(w)
        self.stats["restarts"] += 1

    def _run_jobs(self, b: _Batch) -> None:
        """Dispatch, collect and time out jobs until every waiting key has a verdict."""
        while b.waiting:
            self._dispatch(b, time.monotonic())
            self._check_startup()
            self._receive(b)
            self._reap_overdue(b, time.monotonic())

    def _dispatch(self, b: _Batch, now: float) -> None:
        """Keep every ready worker DEPTH tickets deep: its own queue first, else steal."""
        for slot, w in enumerate(self._workers):
            if not w.ready:
                continue
            while len(w.inflight) < self.DEPTH:
                own = b.queues[slot]
                if own:
                    t = own.popleft()
                else:
                    victim = max(b.queues, key=len)
                    if not victim:
                        break
                    t = victim.pop()
                key = b.keys[t]
                try:
                    w.conn.send((t, (key[0], key[1], key[2])))
                except (OSError, ValueError):
                    b.queues[slot].appendleft(t)
                    break
                if not w.inflight:
                    w.head_started = now
                w.inflight.append(t)

    def _check_startup(self) -> None:
        """No worker ready long after the newest one was spawned: stop with an error."""
        # a ready signal may sit unread when the first batch comes long after startup
        if not any(w.ready or _pending(w) for w in self._workers) and \
                time.monotonic() - max(w.spawned for w in self._workers) > self.STARTUP_TIMEOUT:
            raise UserError("grading workers did not start within "
                            f"{self.STARTUP_TIMEOUT:.0f} s (see stderr); records written so far "
                            "are kept")

    def _receive(self, b: _Batch) -> None:
        """Wait for a result, a ready signal or the nearest deadline; take what arrived."""
        now = time.monotonic()
        deadlines = [w.head_started + self.timeout for w in self._workers if w.inflight]
        wait_for = min(deadlines) - now if deadlines else 0.5
        conns = {w.conn: w for w in self._workers if w.inflight or not w.ready}
        ready = wait(list(conns), timeout=max(0.0, min(wait_for, 0.5))) if conns else []
        now = time.monotonic()
        for conn in ready:
            w = conns[conn]
            try:
                while w.conn.poll():
                    self._on_message(b, w, w.conn.recv(), now)
            except (EOFError, OSError):
                self._on_death(b, w)

    def _on_message(self, b: _Batch, w: _Worker, msg: tuple, now: float) -> None:
        """A worker's "ready" signal or its (ticket, status, correct) for the head ticket."""
        if msg[0] == "ready":
            w.mark_ready(int(msg[1]))
            return
        t, status, correct = msg
        if not w.inflight or w.inflight[0] != t:
            return  # stale (should not happen)
        w.inflight.popleft()
        self.max_latency = max(self.max_latency, now - w.head_started)
        w.head_started = now
        if status == "timeout":
            self.stats["timeouts"] += 1
        self._finish(b, t, bool(correct), status)

    def _on_death(self, b: _Batch, w: _Worker) -> None:
        """A worker died (crash, OOM kill): its head item is an error; it is replaced."""
        if not w.ready:
            b.startup_fails += 1
            if b.startup_fails > 2 * self.n_workers:
                raise UserError("grading workers keep dying at startup (see stderr); records "
                                "written so far are kept")
        elif w.inflight:
            t = w.inflight.popleft()
            self.stats["errors"] += 1
            self._finish(b, t, False, "error")
        self._replace(w, b)

    def _reap_overdue(self, b: _Batch, now: float) -> None:
        """Hard deadline: kill and replace; the head item timed out, the rest go back."""
        for w in list(self._workers):
            if w.inflight and now - w.head_started >= self.timeout:
                t = w.inflight.popleft()
                self.stats["timeouts"] += 1
                self.stats["kills"] += 1
                self.max_latency = max(self.max_latency, now - w.head_started)
                self._finish(b, t, False, "timeout")
                self._replace(w, b)


class _Batch:
    """One grade() call's jobs: tickets index `keys`; `waiting` maps each key to the items
    that wait on it. Tickets are queued per worker slot by gold, so a gold's parse is cached
    in one worker; an idle worker steals from the back of the longest queue."""

    def __init__(self, waiting: dict[tuple, list[int]], results: list, extracted_of: list,
                 progress: Callable[[int], None] | None, n_slots: int):
        self.waiting, self.results, self.extracted_of = waiting, results, extracted_of
        self.progress = progress
        self.keys = list(waiting)
        self.queues: list[collections.deque[int]] = [collections.deque() for _ in range(n_slots)]
        for t, key in enumerate(self.keys):
            self.queues[hash(key[1]) % n_slots].append(t)
        self.startup_fails = 0


_SHARED: dict[float, Grader] = {}


def _close_shared() -> None:
    for g in _SHARED.values():
        g.close()
    _SHARED.clear()


atexit.register(_close_shared)


def grade_one(completion: str, gold: str, *, timeout: float = GRADE_TIMEOUT_S,
              **kw) -> GradeResult:
    """Grade one completion with a cached module-level 1-worker Grader.
    kw: extract, kind, alternatives (as in GradeItem)."""
    g = _SHARED.get(timeout)
    if g is None or g._closed:
        g = _SHARED[timeout] = Grader(timeout=timeout, workers=1)
    return g.grade([GradeItem(completion=completion, gold=gold, **kw)])[0]


def _pending(w) -> bool:
    """Whether a worker has sent something not read yet (its ready signal, say)."""
    try:
        return bool(w.conn.poll())
    except (OSError, ValueError, EOFError):
        return False
