"""One writer per output directory, and output folders checked before any heavy work.

A writer (`run`, `score`, `import`, `merge`, `train`) holds an exclusive `flock` on
`DIR/.amir-bench.lock` for its whole life. The kernel drops the lock when the process dies, so
a lock file left by a dead writer is stale and is simply taken over (with a note).
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from pathlib import Path
from typing import Callable, Optional

from amir_bench.errors import UserError

LOCK_NAME = ".amir-bench.lock"


def os_error_message(path: Path | str, err: OSError) -> str:
    """`cannot write PATH (reason)`: the one wording for file-system failures."""
    reason = err.strerror or errno.errorcode.get(err.errno or 0, "") or str(err)
    return f"cannot write {path} ({reason})"


def ensure_writable(folder: Path | str) -> Path:
    """Create `folder` (and parents) and prove a file can be written there; UserError if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".amir-bench-write-test.{os.getpid()}"
        with open(probe, "w", encoding="utf-8") as fh:
            fh.write("ok\n")
        probe.unlink()
    except OSError as e:
        raise UserError(os_error_message(folder, e)) from None
    return folder


def has_content(folder: Path | str) -> bool:
    """True when `folder` exists and holds anything besides a writer's lock file."""
    folder = Path(folder)
    if not folder.exists():
        return False
    if not folder.is_dir():
        return True
    return any(p.name != LOCK_NAME for p in folder.iterdir())


class RunLock:
    """Exclusive lock on an output directory; a second writer gets `DIR is in use by pid N`."""

    def __init__(self, folder: Path | str, note: Optional[Callable[[str], None]] = None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._note = note or (lambda s: print(s, file=sys.stderr))
        self._fd: Optional[int] = None
        self._created = False

    def acquire(self) -> "RunLock":
        self._created = not self.folder.exists()
        ensure_writable(self.folder)
        while True:  # a lock file unlinked by a finishing writer is retried on the new file
            fd = self._open_and_lock()
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_pid(fd)
        if previous and previous != os.getpid():
            self._note(f"note: took over a stale lock on {self.folder} left by pid {previous}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def _open_and_lock(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(os_error_message(self.path, e)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise UserError(f"{self.folder} is in use by {who}") from None
        return fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        if self._created and not has_content(self.folder):  # a failed start leaves no folder
            try:
                self.folder.rmdir()
            except OSError:
                pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> Optional[int]:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
