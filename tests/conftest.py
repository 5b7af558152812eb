"""Shared fixtures: real env servers started as subprocesses on loopback ports of their own."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from server.launch import LaunchedServer, free_port  # noqa: F401 (tests import free_port here)

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_PATH = str(ROOT / "tests" / "plugin")
# The third-party plugin package is importable in this process and in every server.
sys.path.insert(0, PLUGIN_PATH)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [PLUGIN_PATH, os.environ.get("PYTHONPATH")]))
# Games generated during the run (TextWorld) go to a cache of the run's own, shared with its servers.
os.environ.setdefault("EVOL_CACHE_DIR", tempfile.mkdtemp(prefix="evol-test-cache-"))


class ServerProcess(LaunchedServer):
    """`evol serve` in a subprocess (it takes `--counterpart` too), with the test plugin importable."""

    command = (sys.executable, "-m", "evol.cli", "serve")


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
