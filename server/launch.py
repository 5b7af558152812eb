"""Start env servers (`python -m server`) from Python (trainers, benchmarks and tests use this)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LaunchedServer:
    """A `python -m server ENV... FLAGS` subprocess on a loopback port of its own (or `port`:
    e.g. the port of a server that was stopped, to restart it); `url` once /health answers.
    A subclass may start another command taking the same arguments (`command`, e.g. `evol serve`).

    The server ends with this process, also when this process is killed (`EVOL_PARENT_PID`)."""

    command: tuple[str, ...] = (sys.executable, "-m", "server")

    def __init__(
        self,
        env_ids: list[str],
        *flags: str,
        env: dict[str, str] | None = None,
        log_path: str | Path | None = None,
        start_timeout: float = 60.0,
        port: int | None = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [*self.command, *env_ids, "--port", str(self.port), *flags]
        self._log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            command,
            env={**os.environ, "EVOL_PARENT_PID": str(os.getpid()), **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"env server exited with code {self.process.returncode}"
                    + (f"; see {log_path}" if log_path else "")
                )
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"env server did not answer within {start_timeout:.0f} s")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not subprocess.DEVNULL:
            self._log.close()

    def __enter__(self) -> LaunchedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
