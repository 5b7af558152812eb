"""Shared fixtures: real env servers started as subprocesses on loopback ports of their own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_PATH = str(ROOT / "tests" / "plugin")
# The third-party plugin package is importable in this process and in every server.
sys.path.insert(0, PLUGIN_PATH)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [PLUGIN_PATH, os.environ.get("PYTHONPATH")]))
# Games generated during the run (TextWorld) go to a cache of the run's own, shared with its servers.
os.environ.setdefault("EVOL_CACHE_DIR", tempfile.mkdtemp(prefix="evol-test-cache-"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`evol serve` in a subprocess; `url` once /health answers."""

    def __init__(self, env_ids: list[str], *flags: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "evol.cli", "serve", *env_ids, "--port", str(self.port), *flags]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stdout.read()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start within 60 s")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_server():
    """Start servers with `start_server(env_ids, *flags)`; all are stopped after the test."""
    started: list[ServerProcess] = []

    def start(env_ids: list[str], *flags: str, env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(env_ids, *flags, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def shared_server():
    """One server for the contract suite, serving every registered env."""
    import envs

    server = ServerProcess(envs.env_ids())
    yield server
    server.stop()
