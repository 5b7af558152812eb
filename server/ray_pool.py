"""Env workers as Ray actors: the worker pool of `evol serve ENV... --ray [ADDRESS]`.

`RayWorkerPool` is `server.workers.WorkerPool` with its worker processes started as Ray
actors (`EnvWorker`), placed by Ray across the cluster (a placement group of one bundle per
worker, spread over the nodes) with the resources their envs declare
(`TextEnv.worker_resources`, the most any served env asks).
Each actor runs the worker loop of local workers (`server.workers.worker_main`, the same env
calls) on a socket the front connects to with a key of its own, so calls travel as they do
to a local worker (pipelined, one reply per call) without a Ray task per call, and every
rule of the local pool holds: the same API and error shapes, 504 `step_timeout` for a call
past its limit, 410 `session_lost` for the sessions of a dead worker. Ray does placement,
failure detection and restarts: an actor is restarted by Ray (`max_restarts=-1`) when it
dies, is killed for a call past its limit, or loses its node (Ray fails its `serve` task,
which the pool's monitor reads as a dead worker); one that ended for good is replaced.

Who uses it: `EnvService` when `create_app(..., ray_address=...)` is given; operators read
the actors per node in `/health` (`workers.nodes`).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, answer_challenge, deliver_challenge
from typing import Any

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from server.workers import Worker, WorkerPool, worker_main

log = logging.getLogger(__name__)

NAMESPACE = "evolgym"
PLACEMENT_WAIT = 10.0  # seconds for Ray to place the bundles of all workers at once
CONNECT_TIMEOUT = 5.0  # seconds to reach a Ray head's port before `ray.init` (which retries for long)
MAX_DEFAULT_WORKERS = 1024  # `--workers 0` on a cluster: as many workers as it holds, at most this
RESOURCE_KEYS = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}  # actor option -> node resource


@ray.remote
class EnvWorker:
    """One env worker on a Ray node: `listen`, then `serve` runs `worker_main` on the one
    connection the front makes (authenticated with the pool's key) until the front stops it
    or goes away; the actor then exits for good (a stopped worker is replaced, not restarted)."""

    def __init__(self) -> None:
        self._server: socket.socket | None = None
        self._authkey = b""

    def listen(self, authkey: bytes) -> dict[str, Any]:
        """Open the socket the front will connect to; where it is and who this actor is."""
        if self._server is not None:
            self._server.close()
        host = ray.util.get_node_ip_address()
        self._server = socket.create_server((host, 0))
        self._authkey = authkey
        node = ray.get_runtime_context().get_node_id()
        return {"host": host, "port": self._server.getsockname()[1], "pid": os.getpid(), "node": node}

    def serve(
        self, env_ids: list[str], env_overrides: dict[str, dict[str, Any]], accept_timeout: float
    ) -> None:
        server, self._server = self._server, None
        if server is None:
            raise RuntimeError("serve before listen")
        server.settimeout(accept_timeout)
        try:
            sock, _ = server.accept()
        finally:
            server.close()  # one connection per incarnation: nobody else gets in
        sock.settimeout(None)
        # Nagle's algorithm and delayed ACKs hold a message sent in two writes for 40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(sock.detach())
        deliver_challenge(conn, self._authkey)  # what multiprocessing's Listener.accept does
        answer_challenge(conn, self._authkey)
        worker_main(conn, env_ids, env_overrides)
        conn.close()
        ray.actor.exit_actor()


class ActorProcess:
    """What `WorkerPool` needs of a worker process (pid, is_alive, kill, join), for an actor."""

    def __init__(self, actor: Any, serving: Future, where: dict[str, Any], conn: Connection):
        self.actor = actor
        self.pid: int = where["pid"]
        self.node: str = where["node"]
        self.address: str = where["host"]
        self._serving = serving  # fails when the actor or its node dies; done when it was stopped
        self._socket = socket.socket(fileno=os.dup(conn.fileno()))
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as on the actor's side

    def is_alive(self) -> bool:
        return not self._serving.done()

    def kill(self) -> None:
        """Kill the actor (Ray starts it again, empty) and wake whoever reads its connection."""
        if not self._serving.done():
            ray.kill(self.actor, no_restart=False)
        try:
            self._socket.shutdown(socket.SHUT_RDWR)  # a dead node sends no FIN: end the reads here
        except OSError:
            pass
        self._socket.close()  # a duplicate: the pool closes its own end of the connection

    def join(self, timeout: float | None = None) -> None:
        try:
            self._serving.result(timeout)
        except Exception:  # ended: stopped, killed or lost; all the same to the pool
            pass
        if self._serving.done():
            self._socket.close()


def worker_resources(env_ids: list[str]) -> dict[str, Any]:
    """The Ray options of one worker serving `env_ids`: per resource, the most any of their
    env classes declares (`TextEnv.worker_resources`)."""
    import envs

    need: dict[str, Any] = {}
    for env_id in env_ids:
        for key, value in envs.env_class(env_id).worker_resources.items():
            if isinstance(value, dict):  # custom resources, merged the same way
                merged = need.setdefault(key, {})
                for name, amount in value.items():
                    merged[name] = max(merged.get(name, 0), amount)
            else:
                need[key] = max(need.get(key, 0), value)
    return need


def resource_bundle(need: dict[str, Any]) -> dict[str, float]:
    """A worker's actor options (`worker_resources`) as node resources: CPU, GPU, memory, custom."""
    bundle: dict[str, float] = {}
    for key, amount in need.items():
        pairs = amount.items() if isinstance(amount, dict) else [(RESOURCE_KEYS.get(key, key), amount)]
        bundle.update((name, value) for name, value in pairs if value > 0)
    return bundle


def _node_fits(node: dict[str, float], need: dict[str, Any]) -> int:
    """How many workers needing `need` the resources `node` has would hold."""
    bundle = resource_bundle(need)
    return min((int(node.get(name, 0) // value) for name, value in bundle.items()), default=1 << 30)


def cluster_fits(nodes: list[dict[str, Any]], need: dict[str, Any]) -> int:
    """How many workers needing `need` the live nodes of `ray.nodes()` hold, all told."""
    return sum(_node_fits(node["Resources"], need) for node in nodes if node["Alive"])


def connect(address: str, workers: int, need: dict[str, Any]) -> bool:
    """Join the Ray cluster at `address` ("local": start one in this process, sized to hold
    `workers` actors); True when this process started Ray. Errors say what to check."""
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {
        "namespace": NAMESPACE,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if address == "local":
        cpus = max(os.cpu_count() or 1, int(workers * need.get("num_cpus", 0) + 0.999))
        ray.init(num_cpus=cpus, include_dashboard=False, **options)
        return True
    if address != "auto":
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise RuntimeError(f"--ray {address!r}: give HOST:PORT of the cluster's head, 'auto' or 'local'")
        try:  # a plain TCP check first: ray.init retries an unreachable address for a long time
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
        except OSError as error:
            raise RuntimeError(f"cannot reach the Ray cluster at {address}: {error}") from None
    try:
        ray.init(address=address, **options)
    except Exception as error:
        hint = ""
        if "auth" in str(error).lower():
            hint = " (a cluster with token auth: set RAY_AUTH_MODE=token and its token, RAY_AUTH_TOKEN_PATH)"
        raise RuntimeError(f"cannot join the Ray cluster at {address}: {error}{hint}") from None
    return True


class RayWorkerPool(WorkerPool):
    """`size` env workers as Ray actors on the cluster at `address` ("auto", "local" or
    HOST:PORT) serving `env_ids`; the rest is `WorkerPool` (routing, time limits, recycling)."""

    def __init__(
        self,
        env_ids: list[str],
        size: int,
        env_overrides: dict[str, dict[str, Any]] | None = None,
        call_timeout: float | None = 30.0,
        max_worker_rss: int | None = 1 << 30,
        max_worker_sessions: int | None = 10_000,
        start_timeout: float = 120.0,
        on_lost: Callable[[set[str], str], None] | None = None,
        address: str = "auto",
    ):
        if size < 0:
            raise ValueError("a server needs at least one worker (0: as many as the cluster holds)")
        self.resources = worker_resources(list(env_ids))
        self._owns_ray = connect(address, size, self.resources)
        self._authkey = secrets.token_bytes(32)
        fits = cluster_fits(ray.nodes(), self.resources)
        if size == 0:
            size = min(fits, MAX_DEFAULT_WORKERS)
            log.info("%d env workers: as many as the Ray cluster's nodes hold", size)
        self._actors: list[Any] = [None] * size
        if fits == 0:
            self._leave()
            raise RuntimeError(
                f"no node of the Ray cluster has what one env worker of {list(env_ids)} needs: {self.resources}"
            )
        if fits < size:
            log.warning(
                "the Ray cluster holds %d of %d env workers now; the others wait for room", fits, size
            )
        self._expected = min(size, fits)
        self._group = self._placement_group(size) if fits >= size else None
        super().__init__(
            env_ids,
            size,
            env_overrides,
            call_timeout=call_timeout,
            max_worker_rss=max_worker_rss,
            max_worker_sessions=max_worker_sessions,
            start_timeout=start_timeout,
            on_lost=on_lost,
        )

    def wait_ready(self) -> None:
        """Block until the workers the cluster has room for have started (or every start has
        ended); the others go on waiting for room in the background."""
        deadline = time.monotonic() + 2 * self.start_timeout
        starters = [thread for thread in self._starters if thread is not None]
        while len(self.workers()) < self._expected and any(t.is_alive() for t in starters):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self._starters = []  # WorkerPool.wait_ready joins these: the placed ones are running
        super().wait_ready()

    def _placement_group(self, size: int) -> Any:
        """One bundle of the workers' resources per slot, spread over the nodes by Ray's
        placement group scheduler (it sees them all at once: per-actor SPREAD, decided actor
        by actor, may stack them); None (each actor placed alone) when Ray finds no room now."""
        bundle = resource_bundle(self.resources)
        if not bundle:
            return None
        group = placement_group([bundle] * size, strategy="SPREAD")
        if group.wait(timeout_seconds=PLACEMENT_WAIT):
            return group
        remove_placement_group(group)
        log.warning("no room on the Ray cluster for %d env workers at once: placing them one by one", size)
        return None

    def _new_actor(self, slot: int) -> Any:
        if self._group is None:
            strategy: Any = "SPREAD"
        else:  # the slot's bundle: where Ray put it, or where it moves it when its node is lost
            strategy = PlacementGroupSchedulingStrategy(self._group, placement_group_bundle_index=slot)
        return EnvWorker.options(
            max_restarts=-1,
            max_task_retries=0,  # never run `serve` again on its own: the front reconnects
            scheduling_strategy=strategy,
            # Ray starts workers at nice 15; an env worker competes with the front as a local one does.
            runtime_env={"env_vars": {"RAY_worker_niceness": "0"}},
            **self.resources,
        ).remote()

    def _listen(self, slot: int) -> dict[str, Any]:
        """The slot's actor listening: Ray restarts a dead one meanwhile (a call sent to it as
        it went down fails: sent again); a new actor replaces one that ended for good."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._actors[slot] is None:
                self._actors[slot] = self._new_actor(slot)
            try:
                left = max(0.1, deadline - time.monotonic())
                return ray.get(self._actors[slot].listen.remote(self._authkey), timeout=left)
            except GetTimeoutError:
                raise RuntimeError(f"Ray placed no actor within {self.start_timeout:.0f} s") from None
            except ActorDiedError as error:
                if error.actor_init_failed:
                    raise
                self._actors[slot] = None  # stopped or dead for good: start a new one
            except RayActorError:
                time.sleep(0.1)  # unavailable: restarting
            if time.monotonic() > deadline:
                raise RuntimeError(f"no actor answered within {self.start_timeout:.0f} s")

    def _spawn(self, slot: int) -> Worker:
        where = self._listen(slot)
        actor = self._actors[slot]
        serving = actor.serve.remote(self.env_ids, self.overrides, self.start_timeout).future()
        try:
            conn = Client((where["host"], where["port"]), authkey=self._authkey)
            if not conn.poll(self.start_timeout):
                raise RuntimeError(f"env actor {slot} did not start within {self.start_timeout:.0f} s")
            conn.recv()  # ("ready", pid): the env modules are loaded
        except (OSError, EOFError, RuntimeError, AuthenticationError) as error:
            ray.kill(actor, no_restart=False)
            raise RuntimeError(f"env actor {slot} on {where['host']} did not start: {error}") from None
        return Worker(slot=slot, process=ActorProcess(actor, serving, where, conn), conn=conn)

    def status(self) -> dict[str, Any]:
        """`WorkerPool.status`, each live worker with its node, plus `nodes`: actors per node."""
        status = super().status()
        with self._lock:
            slots = list(self._slots)
        nodes: dict[str, dict[str, Any]] = {}
        for row in status["detail"]:
            worker = slots[row["slot"]]
            if not row["alive"] or worker is None or worker.pid != row["pid"]:
                continue
            process = worker.process
            row["node"], row["address"] = process.node, process.address
            entry = nodes.setdefault(
                process.node, {"node": process.node, "address": process.address, "actors": 0}
            )
            entry["actors"] += 1
        status["nodes"] = sorted(nodes.values(), key=lambda node: (node["address"], node["node"]))
        return status

    def close(self) -> None:
        """Stop the workers (their sessions close: a JVM an env started ends with it), end the
        actors, and leave the cluster (ending it when this process started it)."""
        super().close()
        self._leave()

    def _leave(self) -> None:
        for actor in self._actors:
            if actor is not None:
                ray.kill(actor, no_restart=True)
        if getattr(self, "_group", None) is not None:
            remove_placement_group(self._group)
        if self._owns_ray:
            ray.shutdown()
