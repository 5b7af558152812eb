"""Env server throughput: steps/s and step latency with 1, 8 and 32 clients, and the batch step,
for each number of env worker processes.

Starts `evol serve evol/BabyAI-v0 --workers N` on loopback, then clients (threads spread
over a few processes, each with its own keep-alive connection) loop reset + steps. The
batch step is measured twice: finished episodes reset by a request of their own, and
reset inside the next batch (`{"session", "reset"}` entries). Prints a table per worker
count and writes them as JSON.

    python benchmarks/server_throughput.py [--seconds 5] [--clients 1 8 32] [--batch 64] [--workers 1 2 0]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import requests

ENV = "evol/BabyAI-v0"
MOVES = ["turn left", "turn right", "move forward"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client_loop(url: str, workload: tuple, seconds: float, latencies: list[float], seed: int) -> None:
    """One client: its own session and keep-alive connection, looping reset and steps."""
    env_id, moves = workload
    http = requests.Session()
    rng = random.Random(seed)
    sid = http.post(f"{url}/sessions", json={"env": env_id}).json()["session"]
    deadline = time.perf_counter() + seconds
    done = True
    while time.perf_counter() < deadline:
        if done:
            http.post(f"{url}/sessions/{sid}/reset", json={"seed": rng.randrange(1 << 30)})
        started = time.perf_counter()
        answer = http.post(f"{url}/sessions/{sid}/step", json={"action": rng.choice(moves)}).json()
        latencies.append(time.perf_counter() - started)
        done = answer["terminated"] or answer["truncated"]
    http.delete(f"{url}/sessions/{sid}")


def client_process(url: str, workload: tuple, threads: int, seconds: float, seed: int, queue) -> None:
    latencies: list[float] = []
    workers = [
        threading.Thread(target=client_loop, args=(url, workload, seconds, latencies, seed * 100 + i))
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put(latencies)


def measure_clients(url: str, workload: tuple, clients: int, seconds: float, processes: int) -> dict:
    processes = min(processes, clients)
    queue: mp.Queue = mp.Queue()
    share = [clients // processes + (i < clients % processes) for i in range(processes)]
    started = time.perf_counter()
    workers = [
        mp.Process(target=client_process, args=(url, workload, n, seconds, i, queue))
        for i, n in enumerate(share)
    ]
    for worker in workers:
        worker.start()
    latencies = np.concatenate([np.array(queue.get()) for _ in workers])
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "steps_per_s": len(latencies) / seconds,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
        "steps": int(len(latencies)),
        "wall_s": elapsed,
    }


def measure_batch(url: str, workload: tuple, batch: int, seconds: float, inline_resets: bool = False) -> dict:
    env_id, moves = workload
    http = requests.Session()
    rng = random.Random(0)
    sids = [http.post(f"{url}/sessions", json={"env": env_id}).json()["session"] for _ in range(batch)]
    for sid in sids:
        http.post(f"{url}/sessions/{sid}/reset", json={"seed": rng.randrange(1 << 30)})
    steps = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    ended: set[str] = set()
    while time.perf_counter() < deadline:
        entries = [
            {"session": sid, "reset": {}} if sid in ended else {"session": sid, "action": rng.choice(moves)}
            for sid in sids
        ]
        ended = set()
        results = http.post(f"{url}/step", json={"steps": entries}).json()["results"]
        for entry, result in zip(entries, results):
            if "reset" in entry:
                continue
            steps += 1
            sid = entry["session"]
            if result["status"] != 200 or result["terminated"] or result["truncated"]:
                if inline_resets:
                    ended.add(sid)
                else:
                    http.post(f"{url}/sessions/{sid}/reset", json={})
    elapsed = time.perf_counter() - started
    for sid in sids:
        http.delete(f"{url}/sessions/{sid}")
    return {"batch": batch, "inline_resets": inline_resets, "env_steps_per_s": steps / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--processes", type=int, default=4, help="client processes the clients are spread over"
    )
    parser.add_argument("--batch", type=int, default=64, help="sessions stepped per POST /step")
    parser.add_argument("--threads", type=int, default=8, help="server request threads")
    parser.add_argument("--server-flags", default="", help="more `evol serve` flags, e.g. '--step-timeout 0'")
    parser.add_argument("--env", default=ENV, help="env to serve (its actions: --moves)")
    parser.add_argument("--moves", nargs="+", default=MOVES, help="actions the clients pick from at random")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2, 0],
        help="env worker counts to measure (0: one per core)",
    )
    parser.add_argument(
        "--no-inline-resets", action="store_true", help="for servers without resets in POST /step"
    )
    parser.add_argument("--out", default="benchmarks/results/server_throughput.json")
    args = parser.parse_args()
    workload = (args.env, tuple(args.moves))
    results = []
    for workers in args.workers:
        flags = args.server_flags.split() + (["--workers", str(workers)] if workers >= 0 else [])
        result = measure_server(args, workload, flags)
        result["workers"] = workers
        results.append(result)
        print(f"\n== {workers if workers > 0 else 'one per core'} worker(s) ==" if workers >= 0 else "")
        print(f"{'clients':>8} {'steps/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        for row in result["clients"]:
            print(
                f"{row['clients']:>8} {row['steps_per_s']:>9.0f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f}"
            )
        for batch in result["batch"]:
            how = "resets in the batch" if batch["inline_resets"] else "resets as requests"
            print(
                f"batch step ({batch['batch']} sessions, {how}): {batch['env_steps_per_s']:.0f} env steps/s"
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


def measure_server(args: argparse.Namespace, workload: tuple, flags: list[str]) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "evol.cli",
            "serve",
            args.env,
            "--port",
            str(port),
            "--threads",
            str(args.threads),
            "--capacity",
            "1024",
            *flags,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                requests.get(f"{url}/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        rows = [measure_clients(url, workload, n, args.seconds, args.processes) for n in args.clients]
        batches = [measure_batch(url, workload, args.batch, args.seconds)]
        if not args.no_inline_resets:
            batches.append(measure_batch(url, workload, args.batch, args.seconds, inline_resets=True))
    finally:
        server.terminate()
        server.wait()
    return {"clients": rows, "batch": batches}


if __name__ == "__main__":
    main()
