"""Env workers as Ray actors against local worker processes, at equal worker count, and what
a large cluster would serve.

Two measurements, each for local workers and Ray actors:
- through the HTTP API: `evol serve evol/BabyAI-v0 --workers N` (and `--ray ADDRESS`) with
  N = 1, 2, 4, driven by the rollout engine (`evol.rollout.RolloutEngine`, the client of
  `evol rollout --url`) playing BabyAI expert episodes, `--concurrency` in flight, resets
  and steps batched per server, the expert's actions asked for in parallel. The two
  servers of each N run side by side and are measured in turn, `--rounds` times, so that a
  drift of this machine's load hits both; the median round counts.
- one worker alone (`--direct`): its pool driven in-process, no HTTP, the engine's calls
  (reset, expert, step) batched: what one worker, its transport included, can serve.
From the second, and the memory of one actor, it prints an estimate of what a cluster of
`--nodes` nodes of `--cores` cores would serve, with its assumptions. The table and the
estimate go to `--out` as JSON.

    python benchmarks/ray_scaling.py [--workers 1 2 4] [--episodes 384] [--rounds 2]
        [--ray local|ADDRESS] [--nodes 100] [--cores 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

from agents.base import AgentInput, SamplingParams
from agents.scripted import ExpertAgent
from evol.rollout import RolloutEngine, task_specs
from server.launch import LaunchedServer

ENV = "evol/BabyAI-v0"
RAW_KEYS = ("steps", "seconds")  # per round only; the other figures get medians


class ParallelExpert(ExpertAgent):
    """The expert agent asking the served envs for their actions concurrently, as a batched
    model call would answer them at once (the plain expert asks one env after another)."""

    def __init__(self, threads: int = 16):
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="expert")

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        return list(self.pool.map(lambda item: [item.env.expert_action()] * sampling.n, inputs))


class CpuMeter:
    """CPU seconds (user + system) that a set of processes spend between `start` and `stop`:
    unlike wall time on a shared machine, it does not depend on what else runs."""

    def __init__(self, processes: Callable[[], list[psutil.Process]]):
        self.processes = processes
        self.before: dict[int, float] = {}

    @staticmethod
    def _cpu(process: psutil.Process) -> float | None:
        try:
            times = process.cpu_times()
            return times.user + times.system
        except psutil.Error:
            return None

    def start(self) -> None:
        self.before = {p.pid: cpu for p in self.processes() if (cpu := self._cpu(p)) is not None}

    def stop(self) -> float:
        spent = 0.0
        for process in self.processes():
            cpu = self._cpu(process)
            if cpu is not None:
                spent += cpu - self.before.get(process.pid, 0.0)  # a process born meanwhile: all of it
        return spent


def process_tree(pid: int) -> Callable[[], list[psutil.Process]]:
    """A process and its descendants (a server, its workers and, with --ray local, its Ray)."""

    def processes() -> list[psutil.Process]:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]

    return processes


def play(engine: RolloutEngine, episodes: int, start: int, meters: dict[str, CpuMeter]) -> dict:
    """Expert episodes on tasks start..start+episodes-1: steps/s, episodes/s and the CPU
    milliseconds per step of each of the server's `meters` and of all of them."""
    for meter in meters.values():
        meter.start()
    started = time.perf_counter()
    trajectories = engine.run(task_specs([ENV], episodes, start=start))
    seconds = time.perf_counter() - started
    cpu = {name: meter.stop() for name, meter in meters.items()}
    if not all(t.success for t in trajectories) or len(trajectories) != episodes:
        raise RuntimeError("an expert episode failed: the measurement is void")
    steps = sum(len(t.actions) for t in trajectories)
    return {
        "steps_s": steps / seconds,
        "episodes_s": episodes / seconds,
        "cpu_ms_per_step": 1000 * sum(cpu.values()) / steps,
        **{f"{name}_cpu_ms_per_step": 1000 * spent / steps for name, spent in cpu.items()},
        "steps": steps,
        "seconds": seconds,
    }


def server_meters(server: LaunchedServer) -> dict[str, CpuMeter]:
    """The server process itself (HTTP, routing, the pool's side of the calls), its env
    workers (local processes or actors), and the rest under it (with --ray local: Ray's own
    processes, GCS, raylet and agents; a local pool's forkserver)."""
    tree = process_tree(server.process.pid)
    workers = {
        w["pid"] for w in requests.get(f"{server.url}/health").json()["workers"]["detail"] if w["alive"]
    }
    return {
        "front": CpuMeter(lambda: tree()[:1]),
        "workers": CpuMeter(lambda: [p for p in tree()[1:] if p.pid in workers]),
        "system": CpuMeter(lambda: [p for p in tree()[1:] if p.pid not in workers]),
    }


def actor_memory(url: str) -> float:
    """Mean resident memory (MiB) of a server's workers, read by pid (a local cluster)."""
    pids = [w["pid"] for w in requests.get(f"{url}/health").json()["workers"]["detail"] if w["alive"]]
    return statistics.mean(psutil.Process(pid).memory_info().rss for pid in pids) / (1 << 20)


def summarize(rounds: dict[str, list[dict]]) -> dict:
    """Medians of the rounds per mode, and Ray's overhead: throughput lost, CPU added per step."""
    row: dict = {}
    for mode, measured in rounds.items():
        keys = [key for key in measured[0] if key not in RAW_KEYS]
        row[mode] = {key: statistics.median(m[key] for m in measured) for key in keys}
        row[mode]["rounds"] = measured
    row["overhead_pct"] = 100 * (1 - row["ray"]["steps_s"] / row["local"]["steps_s"])
    row["cpu_overhead_pct"] = 100 * (row["ray"]["cpu_ms_per_step"] / row["local"]["cpu_ms_per_step"] - 1)
    return row


def measure_http(args: argparse.Namespace, workers: int) -> dict:
    """Local and Ray servers of `workers` workers, measured in turn; medians of the rounds."""
    flags = ["--workers", str(workers), "--capacity", "1024"]
    servers = {"local": LaunchedServer([ENV], *flags), "ray": None}
    try:
        servers["ray"] = LaunchedServer([ENV], *flags, "--ray", args.ray, start_timeout=180)
        engines = {
            mode: RolloutEngine(ParallelExpert(), concurrency=args.concurrency, urls=[s.url], progress=False)
            for mode, s in servers.items()
        }
        meters = {mode: server_meters(server) for mode, server in servers.items()}
        for mode, engine in engines.items():  # sessions made, modules warm
            play(engine, args.concurrency * 2, 10_000, meters[mode])
        rounds: dict[str, list[dict]] = {"local": [], "ray": []}
        for index in range(args.rounds):
            for mode, engine in engines.items():
                rounds[mode].append(play(engine, args.episodes, index * args.episodes, meters[mode]))
        row: dict = {"workers": workers, **summarize(rounds)}
        for mode in rounds:
            row[mode]["worker_rss_mib"] = actor_memory(servers[mode].url)
        return row
    finally:
        for server in servers.values():
            if server is not None:
                server.stop()


def measure_direct(args: argparse.Namespace) -> dict:
    """One worker of each kind driven in-process with batched calls, in turn `--rounds` times:
    the steps/s it serves and the CPU per step of the worker, its transport and (for Ray) the
    cluster's own processes, with this driving process's CPU left out."""
    from server.ray_pool import RayWorkerPool
    from server.workers import WorkerPool

    pools = {"local": WorkerPool([ENV], size=1)}
    try:
        pools["ray"] = RayWorkerPool([ENV], size=1, address=args.ray)
        for pool in pools.values():
            pool.wait_ready()
        local_pids = {w.pid for w in pools["local"].workers()}
        children = process_tree(os.getpid())

        def ray_processes() -> list[psutil.Process]:  # the cluster started here, its actor included
            return [p for p in children()[1:] if p.pid not in local_pids and "forkserver" not in _cmdline(p)]

        meters = {
            "local": CpuMeter(lambda: [psutil.Process(pid) for pid in local_pids]),
            "ray": CpuMeter(ray_processes),
        }
        workers = {mode: pool.assign(mode) for mode, pool in pools.items()}
        for mode, pool in pools.items():
            drive_pool(pool, workers[mode], args.concurrency, seconds=1.0)  # warm
        rounds: dict[str, list[dict]] = {"local": [], "ray": []}
        for _ in range(args.rounds):
            for mode, pool in pools.items():
                measured = drive_pool(
                    pool, workers[mode], args.concurrency, args.direct_seconds, meters[mode]
                )
                rounds[mode].append(measured)
        return summarize(rounds)
    finally:
        for pool in pools.values():
            pool.close()


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def drive_pool(pool, worker, sessions: int, seconds: float, meter: CpuMeter | None = None) -> dict:
    """`sessions` BabyAI episodes in turn-lockstep on one worker: a batch of resets, one of
    expert calls, then one of steps, until `seconds` pass."""
    sids = [f"s{i}-{time.perf_counter_ns()}" for i in range(sessions)]
    pool.run(worker, [("create", sid, {"env_id": ENV, "kwargs": {}}) for sid in sids])
    task, steps, episodes, done = 0, 0, 0, set(sids)
    if meter:
        meter.start()
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        resets = []
        for sid in done:
            resets.append(("reset", sid, {"seed": task, "options": {"task": task}}))
            task += 1
        pool.run(worker, resets)
        experts = pool.run(worker, [("expert", sid, {}) for sid in sids])
        actions = [json.loads(reply[1])["action"] for reply in experts]
        replies = pool.run(worker, [("step", sid, {"action": a}) for sid, a in zip(sids, actions)])
        steps += len(sids)
        done = set()
        for sid, reply in zip(sids, replies):
            result = json.loads(reply[1])
            if result["terminated"] or result["truncated"]:
                done.add(sid)
        episodes += len(done)
    elapsed = time.perf_counter() - started
    cpu = meter.stop() if meter else 0.0
    pool.run(worker, [("close", sid, {}) for sid in sids])
    return {
        "steps_s": steps / elapsed,
        "episodes_s": episodes / elapsed,
        "cpu_ms_per_step": 1000 * cpu / steps,
        "seconds": elapsed,
    }


def estimate(args: argparse.Namespace, table: list[dict]) -> dict:
    """What `nodes` x `cores` would serve, from the CPU one step cost here with Ray: in the
    HTTP front, and in the actors and Ray's own processes."""
    front_ms = statistics.median(row["ray"]["front_cpu_ms_per_step"] for row in table)
    actor_ms = statistics.median(row["ray"]["workers_cpu_ms_per_step"] for row in table)
    system_ms = statistics.median(row["ray"]["system_cpu_ms_per_step"] for row in table)
    backend_ms = actor_ms + system_ms
    steps_per_episode = statistics.median(row["ray"]["steps_s"] / row["ray"]["episodes_s"] for row in table)
    rss = statistics.mean(row["ray"]["worker_rss_mib"] for row in table)
    usable = args.cores - args.reserved_cores
    node_steps = usable * 1000 / (front_ms + backend_ms)
    fronts = max(1, round(usable * front_ms / (front_ms + backend_ms)))
    actors = usable - fronts
    return {
        "nodes": args.nodes,
        "cores_per_node": args.cores,
        "front_cpu_ms_per_step": front_ms,
        "actor_cpu_ms_per_step": actor_ms,
        "ray_system_cpu_ms_per_step": system_ms,
        "actor_rss_mib": rss,
        "fronts_per_node": fronts,
        "actors_per_node": actors,
        "node_steps_s": node_steps,
        "cluster_steps_s": node_steps * args.nodes,
        "cluster_episodes_s": node_steps * args.nodes / steps_per_episode,
        "cluster_actors": actors * args.nodes,
        "cluster_actor_memory_gib": rss * actors * args.nodes / 1024,
        "assumptions": [
            f"a step costs what it cost here with Ray: {front_ms:.2f} CPU ms in the HTTP front, "
            f"{actor_ms:.2f} in the actors and {system_ms:.2f} in Ray's own processes (medians over "
            "the worker counts; BabyAI expert episodes, their resets and expert calls included; "
            "Ray's share is mostly a per-node constant, counted per step here: conservative)",
            "a core of a node is as fast as a core of this machine and the CPU per step stays the "
            "same at scale (the cost is per step, measured in CPU time, so the 2 shared cores "
            "here bound the throughput measured, not the cost)",
            f"{args.reserved_cores} cores per node for the OS and Ray's node processes (raylet, agents; "
            "the GCS on the head)",
            f"each node runs {fronts} `evol serve --ray` fronts (one process, about one core each) and "
            f"{actors} env actors (worker_resources num_cpus=1), split as the CPU per step is split; "
            "the clients spread their sessions over the fronts",
            "each front's actors on its own node (Ray's placement across nodes works, but a call "
            "then crosses the network: add its latency per call, not CPU)",
            "calls go from a front straight to its actors' sockets: the Ray control plane (GCS, "
            "raylets) is off the data path, so capacity grows linearly with nodes",
            "BabyAI's cost per step: envs with heavier steps (SciWorld's JVM, WebShop's search) "
            "need more backend CPU per step, and serve proportionally fewer steps",
            "no failures meanwhile: a lost node costs its sessions and Ray's restart time",
        ],
    }


def print_report(table: list[dict], direct: dict, guess: dict) -> None:
    print(f"\n{ENV}, expert episodes through HTTP (rollout engine), {os.cpu_count()} cores")
    header = "steps/s  eps/s  CPU ms/step"
    print(f"{'workers':>7} | local {header} | Ray {header} | Ray: throughput  CPU/step")
    for row in table:
        cells = [f"{row['workers']:>7}"]
        for mode in ("local", "ray"):
            m = row[mode]
            cells.append(f"{m['steps_s']:>13.0f} {m['episodes_s']:>6.0f} {m['cpu_ms_per_step']:>12.2f}")
        cells.append(f"{-row['overhead_pct']:>+15.1f}% {row['cpu_overhead_pct']:>+8.1f}%")
        print(" | ".join(cells))
    print("\none worker driven in-process (batched calls, no HTTP):")
    for mode in ("local", "ray"):
        m = direct[mode]
        print(f"  {mode:>5}: {m['steps_s']:.0f} steps/s, {m['cpu_ms_per_step']:.2f} CPU ms per step")
    print(
        f"  Ray: throughput {-direct['overhead_pct']:+.1f}%, CPU per step {direct['cpu_overhead_pct']:+.1f}%"
    )
    print(
        f"\nestimate for {guess['nodes']} nodes x {guess['cores_per_node']} cores: "
        f"{guess['cluster_steps_s']:,.0f} steps/s, {guess['cluster_episodes_s']:,.0f} episodes/s "
        f"({guess['actors_per_node']} actors and {guess['fronts_per_node']} HTTP fronts per node, "
        f"{guess['cluster_actors']:,} actors holding {guess['cluster_actor_memory_gib']:,.0f} GiB)"
    )
    print("assumptions:")
    for line in guess["assumptions"]:
        print(f"  - {line}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--episodes", type=int, default=384, help="episodes per measured round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32, help="episodes in flight")
    parser.add_argument("--direct-seconds", type=float, default=4.0)
    parser.add_argument("--ray", default="local", help="the Ray cluster (default: one per server)")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--cores", type=int, default=32)
    parser.add_argument("--reserved-cores", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/ray_scaling.json")
    args = parser.parse_args()
    started = time.perf_counter()
    table = []
    for workers in args.workers:
        table.append(measure_http(args, workers))
        print(f"{workers} workers measured ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    direct = measure_direct(args)
    guess = estimate(args, table)
    print_report(table, direct, guess)
    result = {
        "env": ENV,
        "cpu_count": os.cpu_count(),
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "http": table,
        "direct": direct,
        "estimate": guess,
        "wall_s": time.perf_counter() - started,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.out} in {result['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
