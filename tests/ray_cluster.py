"""A local Ray cluster on loopback for the tests that serve or explore through Ray.

Use it from a test module with `from ray_cluster import ray_cluster_fixture` (tests/ is on
sys.path through tests/conftest.py); the session-scoped `ray_cluster` fixture yields the head's
address ("127.0.0.1:PORT"), for `ray.init(address=...)` or `evol serve ... --ray ADDRESS`.

The cluster is two nodes of `CPUS_PER_NODE` CPUs each (a head and a second node, both
`ray start --block` processes of this run), with a temp dir and an auth token of its own:
stopping it ends only the processes this run started, never another Ray cluster on the
machine (`ray stop` would end them all). While it runs, its variables (RAY_AUTH_MODE,
RAY_AUTH_TOKEN_PATH, ...) are set in this process's environment, so that `ray.init(address)`
here and in the servers it starts present the cluster's token. A test may lose a node
(`running_cluster().kill_node(i)`, as when a machine goes down) and add one back (`add_node()`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from server.launch import free_port

CPUS_PER_NODE = 2
NODES = 2
START_TIMEOUT = 90.0  # seconds for a node to say it started (cold imports on 2 busy cores)
OBJECT_STORE_BYTES = 80 << 20  # the tests pass small objects only; Ray's minimum is 75 MiB
RAY_CLI = str(Path(sys.executable).with_name("ray"))


@dataclass
class LocalRayCluster:
    """A head and worker nodes started by this process; `address` is the head's GCS address."""

    address: str
    temp_dir: str
    env: dict[str, str]  # the variables a process needs to connect (auth mode and token path)
    start_seconds: float = 0.0
    processes: list[subprocess.Popen] = field(default_factory=list)

    def node_of(self, pid: int) -> int:
        """The index of the node (0: the head) whose processes include `pid` (an actor's)."""
        ancestors = {parent.pid for parent in psutil.Process(pid).parents()}
        for index, process in enumerate(self.processes):
            if process.pid in ancestors:
                return index
        raise LookupError(f"process {pid} belongs to no node of this cluster")

    def kill_node(self, index: int) -> None:
        """Lose node `index` as when its machine goes down: SIGKILL to all its processes
        (its workers too, which run in sessions of their own). The head cannot be lost."""
        if index == 0:
            raise ValueError("losing the head ends the cluster")
        process = self.processes[index]
        members = psutil.Process(process.pid).children(recursive=True)
        _signal_group(process, signal.SIGKILL)
        for member in members:
            try:
                member.kill()
            except psutil.Error:
                pass
        process.wait(10)

    def add_node(self) -> None:
        """Join one more node of `CPUS_PER_NODE` CPUs to the head."""
        _start_node([f"--address={self.address}"], self, f"node{len(self.processes)}")

    def stop(self) -> None:
        """End this cluster's nodes: SIGTERM to each `ray start --block` (it stops its own
        processes in about 2 s), then SIGKILL to whatever is left in their process groups."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()  # not the whole group: the node's own shutdown is quicker
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)  # workers the node left behind
            if process.poll() is None:
                process.wait(5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)  # each node was started in a session of its own
    except (ProcessLookupError, PermissionError):
        pass


def _ray_command() -> list[str]:
    # The `ray` script beside this interpreter, else the CLI module of the installed package.
    if os.path.exists(RAY_CLI):
        return [RAY_CLI]
    return [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]


def _start_node(args: list[str], cluster: LocalRayCluster, name: str) -> subprocess.Popen:
    """`ray start --block ARGS` in a session of its own; returns once it says it started."""
    log_path = Path(cluster.temp_dir) / f"{name}.log"
    command = [*_ray_command(), "start", "--block", "--disable-usage-stats", *args]
    command += ["--node-ip-address=127.0.0.1", f"--num-cpus={CPUS_PER_NODE}"]
    command += [f"--object-store-memory={OBJECT_STORE_BYTES}", f"--temp-dir={cluster.temp_dir}"]
    # Fixed ports would clash with the other node or another cluster on the machine.
    command += [f"--dashboard-agent-listen-port={free_port()}"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **cluster.env},
            start_new_session=True,
        )
    cluster.processes.append(process)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if b"Ray runtime started" in log_path.read_bytes():
            return process
        if process.poll() is not None:
            break
        time.sleep(0.1)
    tail = log_path.read_bytes()[-3000:].decode(errors="replace")
    raise RuntimeError(f"Ray {name} node did not start (exit code {process.poll()}):\n{tail}")


def start_local_cluster(nodes: int = NODES) -> LocalRayCluster:
    """Start a head on 127.0.0.1 and `nodes - 1` more nodes joined to it; stop it with `.stop()`."""
    # A short path: Ray's unix sockets live under it and socket paths are limited to 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="evray-", dir="/tmp")
    token_path = Path(temp_dir) / "auth_token"
    token_path.write_text(secrets.token_hex(32))
    token_path.chmod(0o600)
    env = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token_path),
        "RAY_USAGE_STATS_ENABLED": "0",
        # A lost node is declared dead after 5 failed health checks: 1 s apart here, not 3 s.
        "RAY_health_check_period_ms": "1000",
    }
    port = free_port()
    cluster = LocalRayCluster(address=f"127.0.0.1:{port}", temp_dir=temp_dir, env=env)
    started = time.monotonic()
    try:
        head_args = ["--head", f"--port={port}", "--include-dashboard=false"]
        _start_node([*head_args, f"--ray-client-server-port={free_port()}"], cluster, "head")
        for index in range(1, nodes):
            _start_node([f"--address={cluster.address}"], cluster, f"node{index}")
    except BaseException:
        cluster.stop()
        raise
    cluster.start_seconds = time.monotonic() - started
    return cluster


def reload_ray_auth() -> None:
    """Make this process's Ray read the auth variables again: Ray reads them when it is first
    imported, which may be before the fixture set them (`ray.init(address)` then fails with
    InvalidAuthToken); these are the calls Ray's own test utilities make."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


_running: list[LocalRayCluster] = []  # the session's cluster, while the fixture holds it


def running_cluster() -> LocalRayCluster:
    """The cluster the `ray_cluster` fixture started (its temp dir, env, start time)."""
    if not _running:
        raise RuntimeError("no local Ray cluster is running: use the ray_cluster fixture")
    return _running[0]


@pytest.fixture(scope="session", name="ray_cluster")
def ray_cluster_fixture():
    """The address ("127.0.0.1:PORT") of a two-node local Ray cluster, up for the whole session;
    `running_cluster()` gives the rest (temp dir, env, start time)."""
    pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install 'evolgym[ray]'")
    cluster = start_local_cluster()
    print(
        f"\nlocal Ray cluster of {NODES} nodes at {cluster.address} started in {cluster.start_seconds:.1f} s"
    )
    saved = {name: os.environ.get(name) for name in cluster.env}
    os.environ.update(cluster.env)  # servers started by the tests inherit the token
    reload_ray_auth()
    _running.append(cluster)
    try:
        yield cluster.address
    finally:
        _running.clear()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        cluster.stop()


# Either name imports the fixture; `ray_cluster_fixture` keeps a test's `ray_cluster` argument
# from shadowing the import (ruff F811).
ray_cluster = ray_cluster_fixture
