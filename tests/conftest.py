"""Shared fixtures: real env servers started as subprocesses on loopback ports of their own."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

# The session's local Ray cluster (tests/ray_cluster.py), defined here once: a fixture imported
# into two test modules would be two fixtures, and start two clusters.
from ray_cluster import ray_cluster_fixture  # noqa: E402,F401

from server.launch import LaunchedServer, free_port  # noqa: F401 (tests import free_port here)

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_PATH = str(ROOT / "tests" / "plugin")
# The third-party plugin package is importable in this process and in every server.
sys.path.insert(0, PLUGIN_PATH)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [PLUGIN_PATH, os.environ.get("PYTHONPATH")]))
# Games generated during the run (TextWorld) go to a cache of the run's own, shared with its servers.
os.environ.setdefault("EVOL_CACHE_DIR", tempfile.mkdtemp(prefix="evol-test-cache-"))
# Under pytest-xdist each worker process (and the servers it starts) uses one math thread: two
# workers of two threads each on two cores spend their time spinning against each other.
if "PYTEST_XDIST_WORKER" in os.environ:
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")


class ServerProcess(LaunchedServer):
    """`evol serve` in a subprocess (it takes `--counterpart` too), with the test plugin importable."""

    command = (sys.executable, "-m", "evol.cli", "serve")


@pytest.fixture
def start_server():
    """Start servers with `start_server(env_ids, *flags)`; all are stopped after the test."""
    started: list[ServerProcess] = []

    def start(
        env_ids: list[str], *flags: str, env: dict[str, str] | None = None, port: int | None = None
    ) -> ServerProcess:
        server = ServerProcess(env_ids, *flags, env=env, port=port)
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


class AgentServerProcess:
    """`serve-agent` in a subprocess, its output in a file (a full pipe would stall it)."""

    def __init__(self, model_dir: str, *flags: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+")
        command = [sys.executable, "-m", "evol.agent_server_cli", "serve-agent", "--model", model_dir]
        command += ["--name", "tiny", "--device", "cpu", "--port", str(self.port), *flags]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, seconds: float = 90) -> AgentServerProcess:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"serve-agent exited: {self.log.read()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"serve-agent did not start within {seconds} s")

    def health(self) -> dict:
        return requests.get(self.url + "/health", timeout=5).json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (`-n 2 --dist loadgroup`), tests that share a costly session fixture
    run in one worker process, so it is started once: the local Ray cluster, the browser."""
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("ray"))
        elif "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("browser"))
