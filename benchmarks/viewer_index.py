"""How fast `evol view` opens a big trajectory file: index time and page latencies for 100k episodes.

Writes N synthetic BabyAI-like episodes (a few turns each, a few hundred bytes a message) to a
temporary JSONL file, then measures
- the index, in this process: one cold `TrajectoryIndex.refresh()` over the whole file, and
  the incremental refresh after 1,000 more episodes are appended;
- a real `evol view FILE` server (subprocess on loopback): the time until its first answer
  (start-up + index), then the median and 95th-percentile latency of the pages the browser asks
  for: the episode list (a page of 50), the list filtered by success and sorted by reward
  (first call builds the sort order, later ones reuse it), and one episode read by seeking;
- the memory the index takes (the server's resident set after indexing).

    python benchmarks/viewer_index.py [--episodes 100000] [--requests 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from evol.viewer.index import TrajectoryIndex
from server.launch import LaunchedServer

ENVS = ("evol/BabyAI-v0", "evol/Maze-v0", "evol/Wordle-v0", "evol/TextCraft-v0")
ACTIONS = ("turn left", "turn right", "go forward", "pick up the key", "open the door", "toggle")


class ViewerProcess(LaunchedServer):
    command = (sys.executable, "-m", "evol.cli", "view")


def synthetic_episode(i: int, rng: random.Random) -> dict[str, Any]:
    turns = rng.randint(2, 8)
    env = ENVS[i % len(ENVS)]
    messages = [{"role": "system", "content": "You are in a grid world. " * 8 + f"Task {i}: reach the goal."}]
    actions = [rng.choice(ACTIONS) for _ in range(turns)]
    for turn, action in enumerate(actions):
        seen = ", ".join(
            f"a {rng.choice(('wall', 'key', 'door', 'ball'))} {rng.randint(1, 5)} steps ahead"
            for _ in range(4)
        )
        messages.append({"role": "user", "content": f"Turn {turn}. You see {seen}."})
        messages.append({"role": "assistant", "content": action})
    success = rng.random() < 0.6
    return {
        "env": env,
        "task": {"seed": i, "options": {"task": i % 5000, "split": "test"}},
        "messages": messages,
        "actions": actions,
        "rewards": [0.0] * (turns - 1) + [1.0 if success else 0.0],
        "reward": round(rng.random(), 4) if success else 0.0,
        "success": success,
        "turns": turns,
        "truncated": False,
        "agent": f"hf:runs/iter_{i % 3}/model",
        "sample": 0,
        "key": f"{env}|{i}",
        "tokens": 40 * turns,
        "timing": {"agent_s": 0.01 * turns, "env_s": 0.001 * turns, "wall_s": 0.012 * turns},
        "error": "agent failed: timeout" if i % 997 == 0 else None,
        "fault": "agent" if i % 997 == 0 else None,
        "outcome": {},
    }


def write_file(path: Path, start: int, count: int, seed: int = 0) -> None:
    rng = random.Random(seed + start)
    with open(path, "a", encoding="utf-8") as handle:
        for i in range(start, start + count):
            handle.write(json.dumps(synthetic_episode(i, rng)) + "\n")


def latencies(url: str, params_list: list[dict[str, Any]]) -> dict[str, float]:
    times = []
    with requests.Session() as session:
        for params in params_list:
            started = time.perf_counter()
            answer = session.get(url, params=params, timeout=60)
            times.append(time.perf_counter() - started)
            answer.raise_for_status()
    first = times[0]
    times.sort()
    return {
        "first_ms": round(1000 * first, 1),
        "median_ms": round(1000 * statistics.median(times), 1),
        "p95_ms": round(1000 * times[min(len(times) - 1, int(0.95 * len(times)))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50, help="requests per measured page")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    figures: dict[str, Any] = {"episodes": args.episodes}
    with tempfile.TemporaryDirectory(prefix="evol-view-bench-") as folder:
        path = Path(folder) / "trajectories.jsonl"
        started = time.perf_counter()
        write_file(path, 0, args.episodes)
        figures["write_s"] = round(time.perf_counter() - started, 2)
        figures["file_mb"] = round(path.stat().st_size / 1e6, 1)

        index = TrajectoryIndex(path)
        started = time.perf_counter()
        index.refresh()
        figures["index_s"] = round(time.perf_counter() - started, 2)
        assert len(index) == args.episodes, len(index)

        started = time.perf_counter()
        with ViewerProcess([str(path)], start_timeout=120) as server:
            first = requests.get(server.url + "/api/episodes", params={"limit": 50}, timeout=120)
            first.raise_for_status()
            figures["server_first_page_s"] = round(time.perf_counter() - started, 2)
            figures["server_rss_mb"] = round(psutil.Process(server.process.pid).memory_info().rss / 1e6)
            url = server.url + "/api/episodes"
            rng = random.Random(1)
            pages = [
                {"limit": 50, "offset": 50 * rng.randrange(args.episodes // 50)} for _ in range(args.requests)
            ]
            figures["list_page"] = latencies(url, pages)
            sorted_query = {"success": "true", "sort": "reward", "order": "desc", "limit": 50}
            figures["filtered_sorted_first"] = latencies(url, [sorted_query])
            figures["filtered_sorted"] = latencies(url, [sorted_query] * args.requests)
            figures["error_text_filter"] = latencies(url, [{"error": "timeout", "limit": 50}] * args.requests)
            ids = [{"id": rng.randrange(args.episodes)} for _ in range(args.requests)]
            figures["episode"] = latencies(server.url + "/api/episode", ids)

            write_file(path, args.episodes, 1000)
            started = time.perf_counter()
            grown = requests.get(url, params={"limit": 1}, timeout=60).json()
            figures["grown_by_1000_page_ms"] = round(1000 * (time.perf_counter() - started), 1)
            assert grown["episodes"] == args.episodes + 1000, grown["episodes"]
        started = time.perf_counter()
        index.refresh()
        figures["incremental_1000_ms"] = round(1000 * (time.perf_counter() - started), 1)

    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
