"""Leaf I/O: JSONL reading with `file:line` errors, atomic writes, fsynced appends.

Imports nothing from the project but `errors`, so `benchmarks` and every subsystem can use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from amir_bench.errors import UserError


def iter_jsonl(path: Path, *, tolerate_truncated_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, object). A malformed line raises UserError `file:line: why`.

    With tolerate_truncated_tail, a last line without its newline that fails to parse is
    skipped (it is what a killed writer leaves behind); `resume` drops it.
    """
    path = Path(path)
    with open(path, "r", encoding="utf-8") as fh:
        lines = fh.readlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if tolerate_truncated_tail and i == len(lines) and not line.endswith("\n"):
                return
            raise UserError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{i}: expected a JSON object, got {type(obj).__name__}")
        yield i, obj


def truncate_partial_tail(path: Path) -> int:
    """Drop a trailing partial line (no newline) left by a killed writer. Returns bytes cut."""
    path = Path(path)
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        fh.truncate(keep)
        return size - keep


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder and rename: readers never see half a file.
    The file gets the permissions open() would give (mkstemp alone makes it 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 text written atomically (see atomic_write_bytes)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """obj as indented JSON, written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays, tuples, sets and Paths converted, keys made
    strings, NaN/inf -> None, so json.dumps(..., allow_nan=False) accepts the result."""
    import math

    import numpy as np

    def conv(x: Any) -> Any:
        if isinstance(x, dict):
            return {str(k): conv(v) for k, v in x.items()}
        if isinstance(x, (list, tuple, set)):
            return [conv(v) for v in x]
        if isinstance(x, np.ndarray):
            return conv(x.tolist())
        if isinstance(x, np.generic):
            x = x.item()
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, Path):
            return str(x)
        return x

    return conv(obj)


def atomic_write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    lines = []
    for r in rows:
        lines.append(r.to_json() if hasattr(r, "to_json") else json.dumps(r, ensure_ascii=False))
    atomic_write_text(path, "".join(line + "\n" for line in lines))


class JsonlAppender:
    """Append records and flush+fsync per batch: the samples file is the resume point."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write_many(self, records: Iterable[Any]) -> None:
        chunk = "".join((r.to_json() if hasattr(r, "to_json") else json.dumps(r)) + "\n"
                        for r in records)
        if chunk:
            self._fh.write(chunk)
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def count_lines(path: Path) -> int:
    """Newline-terminated lines of a file (0 when absent), without parsing it."""
    try:
        with open(path, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except FileNotFoundError:
        return 0
