"""Exploration on a Ray cluster: episodes sharded to Ray actors, trajectories written on the driver.

`RayRolloutEngine` is what `evol rollout|eval --ray [ADDRESS]` and trainer configs with
`ray: ADDRESS` run instead of `evol.rollout.RolloutEngine`; it has the same `run(specs, writer)`,
`stats` and `close()`, so `evol.runs.run_specs`, `evol.evaluate.evaluate` and the loop take it
unchanged.

How a run goes: the episodes the writer does not hold as done are cut into chunks; every
actor (a `RolloutShard`, one Ray CPU each, placed by Ray) builds its own `RolloutEngine` from a
picklable recipe (the agent's spec string, e.g. `expert`, `hf:DIR`, `openai:URL#MODEL`, loaded
in the actor, and the engine's settings) and runs chunks, two queued at a time; each finished
trajectory streams back to the driver (a Ray streaming generator), which writes it to the
crash-safe JSONL and moves the progress bar. An actor that dies (killed, its node lost) is
replaced, and the episodes of its chunks that had not come back run again on an actor that
lives: every episode ends in the file once.

Placement: with env servers (`urls`) an actor uses the servers on its own node when there
are any (URL host = the node's IP), else all of them. A `vllm:` agent gets one actor per GPU
(`num_gpus=1`, the default actor count is the cluster's GPUs); other agents (expert, hf on
CPU, an OpenAI-compatible endpoint shared by all actors) one actor per free CPU, at most
`MAX_ACTORS`. Every node needs EvolGym installed (`pip install 'evolgym[ray]'`) and the
agent's model at the same path (a shared file system, or the same copy on each node).
"""

from __future__ import annotations

import copy
import math
import pickle
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from tqdm import tqdm

from evol.rollout import EpisodeSpec, RolloutStats
from evol.trajectory import Trajectory, TrajectoryWriter

MAX_ACTORS = 32  # the default actor count's cap: beyond it a driver's writing becomes the bound
QUEUED_CHUNKS = 2  # chunks handed to an actor at once: the next one is ready when one ends
LOSSES_PER_ACTOR = 2  # actors replaced per actor of the run before the run gives up


class RayUnavailable(RuntimeError):
    """Ray is not installed, or no cluster answers at the address given."""


class ShardsFailed(RuntimeError):
    """The actors cannot run episodes: they cannot build the agent or engine, or too many died."""


@dataclass(frozen=True)
class AgentRecipe:
    """What an actor builds its agent from: an agent spec string and `load_agent`'s kwargs."""

    spec: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def gpus(self) -> int:
        """GPUs one actor holds: one for a vLLM agent (its replica), none otherwise."""
        return int(any(part == "vllm" for part in self.spec.split(":")[:-1]))

    def load(self) -> Any:
        from agents import load_agent

        return load_agent(self.spec, **self.kwargs)


def agent_recipe(agent: Any) -> AgentRecipe:
    """The recipe of `agent`: a spec string, an `AgentRecipe`, an `agents.LazyAgent` (or a wrapper
    that passes `spec` through), the expert; a ValueError for an agent object that has no spec
    (a model loaded in this process cannot be shipped to the actors)."""
    from agents.scripted import ExpertAgent

    if isinstance(agent, AgentRecipe):
        return agent
    if isinstance(agent, str):
        return AgentRecipe(agent)
    if isinstance(agent, ExpertAgent):
        return AgentRecipe("expert")
    spec = getattr(agent, "spec", None)  # LazyAgent keeps it unloaded: no other attribute is asked
    if isinstance(spec, str):
        return AgentRecipe(spec, dict(getattr(agent, "kwargs", None) or {}))
    raise ValueError(
        f"the agent {type(agent).__name__} cannot be shipped to Ray actors: give it as an agent "
        "spec (expert, hf:DIR, vllm:DIR, openai:URL#MODEL) or agents.LazyAgent(spec)"
    )


def connect(address: str | None) -> Any:
    """The `ray` module, connected to the cluster at `address` ("auto": the one this machine
    belongs to; "local": a new in-process cluster; `HOST:PORT` or `ray://HOST:PORT`). Already
    connected: kept as it is. RayUnavailable says why not."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--ray needs Ray: pip install 'evolgym[ray]'") from None
    address = address or "auto"
    if address not in ("auto", "local"):
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), timeout=5).close()
        except OSError as error:
            raise RayUnavailable(f"--ray {address}: no Ray cluster answers there ({error})") from None
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except ConnectionError as error:
        if address == "auto":
            raise RayUnavailable(
                "--ray auto: no Ray cluster runs on this machine (start one with `ray start --head`, "
                "or give --ray local, or --ray HOST:PORT of a cluster's head)"
            ) from None
        raise RayUnavailable(f"--ray {address}: {error}") from None
    except (ValueError, RuntimeError) as error:
        raise RayUnavailable(f"--ray {address}: {error}") from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    parsed = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or port is None:
        raise RayUnavailable(
            f"--ray {address}: not a Ray address (auto, local, HOST:PORT or ray://HOST:PORT)"
        )
    return parsed.hostname, port


def _last_line(text: str) -> str:
    """The last non-blank line of an error's text (where Python puts the exception itself)."""
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), text)


def urls_near(urls: list[str], node_ip: str) -> list[str]:
    """The env servers of `urls` on the node with IP `node_ip`, or all of them when none is."""

    def ip(url: str) -> str | None:
        try:
            return socket.gethostbyname(urlsplit(url).hostname or "")
        except OSError:
            return None

    near = [url for url in urls if ip(url) == node_ip]
    return near or list(urls)


def stats_delta(after: RolloutStats, before: RolloutStats) -> RolloutStats:
    """What a run added to an engine's stats."""
    delta = RolloutStats()
    for item in fields(RolloutStats):
        if item.name == "faults":
            delta.faults = {k: after.faults[k] - before.faults.get(k, 0) for k in after.faults}
        else:
            setattr(delta, item.name, getattr(after, item.name) - getattr(before, item.name))
    return delta


class _Relay:
    """A stand-in for the TrajectoryWriter inside an actor: hands each trajectory to a queue."""

    def __init__(self, out: queue.Queue):
        self.done: set[str] = set()
        self.out = out

    def write(self, trajectory: Trajectory) -> None:
        self.out.put(("trajectory", trajectory))


class RolloutShard:
    """A Ray actor's rollout engine (made a Ray actor class by `_shard_class`)."""

    def __init__(self, recipe: AgentRecipe, engine_kwargs: dict[str, Any], urls: list[str] | None):
        import ray

        from evol.rollout import RolloutEngine

        self.node_ip = ray.util.get_node_ip_address()
        self.urls = urls_near(urls, self.node_ip) if urls else None
        self.engine = RolloutEngine(recipe.load(), urls=self.urls, progress=False, **engine_kwargs)

    def where(self) -> dict[str, Any]:
        """This actor's node IP and the env servers it uses."""
        return {"node_ip": self.node_ip, "urls": self.urls}

    def run(self, specs: list[EpisodeSpec]) -> Iterator[tuple[str, Any]]:
        """Run `specs`, yielding `("trajectory", t)` as each ends, then `("stats", delta)`."""
        out: queue.Queue = queue.Queue()
        before = copy.deepcopy(self.engine.stats)

        def work() -> None:
            try:
                self.engine.run(specs, _Relay(out))
                out.put(("end", None))
            except BaseException as error:  # handed to the generator, which raises it to the driver
                out.put(("error", error))

        threading.Thread(target=work, daemon=True).start()
        while True:
            kind, item = out.get()
            if kind == "error":
                raise item
            if kind == "end":
                break
            yield kind, item
        yield "stats", stats_delta(self.engine.stats, before)

    def close(self) -> None:
        self.engine.close()


def _shard_class(ray: Any, recipe: AgentRecipe) -> Any:
    return ray.remote(num_cpus=1, num_gpus=recipe.gpus, max_restarts=0)(RolloutShard)


def default_actors(ray: Any, recipe: AgentRecipe) -> int:
    """One actor per GPU for a vLLM agent, else per free CPU (at most MAX_ACTORS), at least one."""
    if recipe.gpus:
        return max(1, int(ray.cluster_resources().get("GPU", 0)))
    return max(1, min(MAX_ACTORS, int(ray.available_resources().get("CPU", 1))))


@dataclass
class _Slot:
    """One actor of the run and the chunks it has in flight."""

    actor: Any
    running: int = 0


class RayRolloutEngine:
    """`RolloutEngine`'s interface, with the episodes run by `actors` Ray actors of the cluster
    at `address` (None/"auto": this machine's cluster; "local": start one in this process).

    `agent` is shipped as its recipe (see `agent_recipe`); `actors` defaults to
    `default_actors`; `chunk` is how many episodes an actor is handed at once (default: the
    episodes split evenly over the actors, at most 4 x `concurrency`, the engine's episodes in
    flight per actor). The remaining keyword arguments are `RolloutEngine`'s (`sampling`,
    `token`, `env_kwargs`, `max_turns`, `retries`, ...), used by every actor's engine.
    """

    def __init__(
        self,
        agent: Any,
        agent_name: str = "",
        address: str | None = "auto",
        actors: int | None = None,
        chunk: int | None = None,
        urls: list[str] | None = None,
        concurrency: int = 32,
        progress: bool = True,
        **engine_kwargs: Any,
    ):
        if actors is not None and actors < 1:
            raise ValueError("actors must be >= 1")
        if chunk is not None and chunk < 1:
            raise ValueError("chunk must be >= 1")
        self.recipe = agent_recipe(agent)
        self.engine_kwargs = {
            "agent_name": agent_name or self.recipe.spec,
            "concurrency": concurrency,
            **engine_kwargs,
        }
        try:
            pickle.dumps((self.recipe, self.engine_kwargs))
        except Exception as error:
            raise ValueError(f"the rollout settings cannot be shipped to Ray actors: {error}") from None
        self.urls = list(urls) if urls else None
        self.concurrency = concurrency
        self.chunk = chunk
        self.progress = progress
        self.ray = connect(address)
        self.size = actors or default_actors(self.ray, self.recipe)
        self.slots: list[_Slot] = []
        self.lost = 0  # actors lost so far
        self._interrupted = False  # whether the last run ended by an exception
        self.stats = RolloutStats()

    @property
    def actors(self) -> list[Any]:
        """The live actors' handles."""
        return [slot.actor for slot in self.slots]

    def _new_actor(self) -> Any:
        return _shard_class(self.ray, self.recipe).remote(self.recipe, self.engine_kwargs, self.urls)

    # ---- the run ------------------------------------------------------------------------
    def run(self, specs: Iterable[EpisodeSpec], writer: TrajectoryWriter | None = None) -> list[Trajectory]:
        """Run the `specs` the writer does not hold as done; the trajectories written, in the
        order they came back."""
        done = writer.done if writer else set()
        todo = list({spec.key: spec for spec in specs if spec.key not in done}.values())
        finished: list[Trajectory] = []
        if not todo:
            return finished
        started = time.perf_counter()
        size = min(self.size, len(todo))
        while len(self.slots) < size:
            self.slots.append(_Slot(self._new_actor()))
        chunk = self.chunk or max(1, min(4 * self.concurrency, math.ceil(len(todo) / size)))
        chunks = deque(todo[i : i + chunk] for i in range(0, len(todo), chunk))
        events: queue.Queue = queue.Queue()
        lock = threading.Lock()
        ended: set[str] = set()  # keys whose trajectory this run wrote
        bar = tqdm(
            total=len(todo), desc="rollout (ray)", unit="ep", disable=not self.progress, mininterval=0.5
        )

        def feed(slot: _Slot) -> None:
            while slot.running < QUEUED_CHUNKS and chunks:
                slot.running += 1
                threading.Thread(target=self._drive, args=(slot, chunks, lock, events), daemon=True).start()

        self._interrupted = True  # until the run ends well: close() then waits for no actor
        try:
            with lock:
                for slot in self.slots:
                    feed(slot)
            while any(slot.running for slot in self.slots):
                kind, slot, item = events.get()
                if kind == "trajectory":
                    if item.key in ended:
                        continue  # an episode that came back twice is written once
                    ended.add(item.key)
                    self._count(item)
                    if writer:
                        writer.write(item)
                    finished.append(item)
                    bar.update(1)
                    bar.set_postfix(
                        success=f"{self.stats.success_rate:.0%}", faults=self.stats.errors, refresh=False
                    )
                elif kind == "stats":
                    self._add(item)
                elif kind == "idle":
                    slot.running -= 1
                    with lock:
                        feed(slot)
                elif kind == "lost":
                    slot.running -= 1
                    remaining, dead, error = item
                    with lock:
                        again = [spec for spec in remaining if spec.key not in ended]
                        if again:
                            chunks.appendleft(again)
                            self.stats.restarts += len(again)  # an actor lost is an infra fault
                        self._replace(slot, dead, error)
                        for other in self.slots:
                            feed(other)
                elif kind == "error":
                    raise item
            self._interrupted = False
        finally:
            self.stats.wall_s += time.perf_counter() - started
            bar.close()
        return finished

    def _drive(self, slot: _Slot, chunks: deque, lock: threading.Lock, events: queue.Queue) -> None:
        """In a driver thread: run chunks on `slot`'s actor until none is left or it is lost."""
        ray = self.ray
        while True:
            with lock:
                if not chunks or slot.actor is None:
                    break
                work = chunks.popleft()
                actor = slot.actor
            received: set[str] = set()
            try:
                for ref in actor.run.options(num_returns="streaming").remote(work):
                    kind, item = ray.get(ref)
                    if kind == "trajectory":
                        received.add(item.key)
                    events.put((kind, slot, item))
            # A dead actor, or its node gone with the trajectories it held.
            except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as error:
                if getattr(error, "actor_init_failed", False):  # the recipe fails on any actor: no retry
                    why = _last_line(str(error))
                    failed = ShardsFailed(f"the Ray actors cannot build the agent {self.recipe.spec}: {why}")
                    events.put(("error", slot, failed))
                    return
                lost = [spec for spec in work if spec.key not in received]
                events.put(("lost", slot, (lost, actor, error)))
                return
            except Exception as error:
                events.put(("error", slot, error))
                return
        events.put(("idle", slot, None))

    def _replace(self, slot: _Slot, dead: Any, error: BaseException) -> None:
        """A new actor in place of `slot`'s `dead` one (once: its other chunks' losses find it
        replaced), or ShardsFailed when the run has lost more actors than it may."""
        if slot.actor is not dead:
            return
        try:
            self.ray.kill(dead)  # an actor that is only unreachable must not run on unseen
        except Exception:
            pass
        self.lost += 1
        if self.lost > LOSSES_PER_ACTOR * max(1, self.size):
            slot.actor = None
            raise ShardsFailed(
                f"lost {self.lost} Ray actors running episodes; the last: {_last_line(str(error))}"
            )
        slot.actor = self._new_actor()

    def _count(self, trajectory: Trajectory) -> None:
        self.stats.episodes += 1
        self.stats.successes += int(trajectory.success)
        if trajectory.fault is not None:
            self.stats.faults[trajectory.fault] += 1

    def _add(self, delta: RolloutStats) -> None:
        """An actor's stats for one chunk (episodes are counted as they are written)."""
        self.stats.steps += delta.steps
        self.stats.restarts += delta.restarts
        self.stats.agent_s += delta.agent_s
        self.stats.env_s += delta.env_s

    def close(self) -> None:
        """End the actors: each closes its agent and env sessions first, unless the run was
        interrupted (their chunks may still be running: they are killed at once)."""
        for slot in self.slots:
            if slot.actor is None:
                continue
            if not self._interrupted:
                try:
                    self.ray.get(slot.actor.close.remote(), timeout=30)
                except Exception:
                    pass  # a dead actor has nothing left to close
            self.ray.kill(slot.actor)
        self.slots.clear()
