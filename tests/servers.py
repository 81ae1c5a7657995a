"""A real `transformers serve` on 127.0.0.1 for the endpoint-backend tests and perf script."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 300.0  # generous: the machine may be busy with other work


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_available() -> bool:
    from transformers.utils.import_utils import is_serve_available
    return is_serve_available()


class Server:
    """`transformers serve MODEL` in a subprocess; start() waits until /v1/models answers."""

    def __init__(self, model: Path, log: Path, port: int | None = None,
                 extra: tuple[str, ...] = (), cpus: set[int] | None = None):
        self.model, self.log, self.extra, self.cpus = str(model), Path(log), extra, cpus
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        exe = Path(sys.executable).parent / "transformers"
        cmd = [str(exe), "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port),
               "--device", "cpu", "--log-level", "warning", *self.extra]
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1",
                   OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        fh = open(self.log, "ab")
        pin = (lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None
        self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, preexec_fn=pin)
        fh.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited {self.proc.returncode}: "
                                   f"{self.log.read_text()[-2000:]}")
            if self.models() is not None:
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer in {START_TIMEOUT_S:.0f} s")

    def models(self) -> list[str] | None:
        try:
            with urllib.request.urlopen(self.url + "/v1/models", timeout=5) as r:
                return [m["id"] for m in json.load(r)["data"]]
        except (OSError, ValueError, KeyError):
            return None

    def kill(self) -> None:
        """SIGKILL, as a crashed node would go."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
