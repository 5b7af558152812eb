"""Median local step time of every registered env (target <= 2 ms; ScienceWorld's Java excepted).

For each id of `envs.env_ids()` that can be made here: test tasks 0, 1, ... are played by
the env's expert (its thinking time is not counted), or by a random one of
`info["valid_actions"]` where an env has no expert; only `env.step` is timed, and a new
task starts when an episode ends (resets are not counted). Envs that cannot be made (a
missing package, a counterpart agent they need) are listed with the reason. Prints a table
and writes it as JSON.

    python benchmarks/env_step_time.py [--steps 300] [--sciworld-steps 60] [--env Maze Wordle]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

import envs
from envs.errors import TaskOptionError

TARGET_MS = 2.0
EXEMPT = {"evol/SciWorld-v0": "ScienceWorld runs in a Java process"}


def choose_action(env: Any, info: dict[str, Any], rng: random.Random) -> tuple[str, str]:
    try:
        return env.expert_action(), "expert"
    except NotImplementedError:
        actions = info.get("valid_actions") or ["look"]
        return rng.choice(actions), "valid actions"


def time_steps(env_id: str, steps: int) -> dict[str, Any]:
    env = envs.make(env_id)
    rng = random.Random(0)
    options = {"split": "test"} if "test" in envs.env_class(env_id).splits else {}
    times, episodes, task, policy = [], 0, 0, ""
    try:
        _, info = env.reset(seed=0, options={**options, "task": task})
        while len(times) < steps:
            action, policy = choose_action(env, info, rng)
            start = time.perf_counter()
            _, _, terminated, truncated, info = env.step(action)
            times.append(time.perf_counter() - start)
            if terminated or truncated:
                episodes += 1
                task += 1
                try:
                    _, info = env.reset(seed=task, options={**options, "task": task})
                except TaskOptionError:  # fewer tasks than episodes: start over
                    task = 0
                    _, info = env.reset(seed=task, options={**options, "task": task})
    finally:
        env.close()
    ms = np.array(times) * 1000
    return {
        "env": env_id,
        "policy": policy,
        "steps": len(times),
        "episodes": episodes,
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "mean_ms": float(ms.mean()),
    }


def verdict(row: dict[str, Any]) -> str:
    if row["env"] in EXEMPT:
        return "exempt: " + EXEMPT[row["env"]]
    return "ok" if row["median_ms"] <= TARGET_MS else f"over {TARGET_MS:g} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300, help="timed steps per env")
    parser.add_argument("--sciworld-steps", type=int, default=60, help="timed steps for ScienceWorld")
    parser.add_argument("--env", nargs="*", default=None, help="only the ids containing one of these")
    parser.add_argument("--out", default="benchmarks/results/env_step_time.json")
    args = parser.parse_args()

    rows, skipped = [], []
    for env_id in envs.env_ids():
        if args.env and not any(part in env_id for part in args.env):
            continue
        steps = args.sciworld_steps if env_id in EXEMPT else args.steps
        try:
            rows.append(time_steps(env_id, steps))
        except Exception as exc:  # one env that cannot run here must not hide the others
            skipped.append({"env": env_id, "reason": f"{type(exc).__name__}: {exc}"[:160]})
            continue
        rows[-1]["verdict"] = verdict(rows[-1])

    width = max([len(r["env"]) for r in rows + skipped] + [3])
    print(f"{'env':<{width}}  {'steps':>5}  {'median ms':>9}  {'p90 ms':>8}  {'policy':<13}  verdict")
    for r in rows:
        print(
            f"{r['env']:<{width}}  {r['steps']:>5}  {r['median_ms']:>9.3f}  {r['p90_ms']:>8.3f}  "
            f"{r['policy']:<13}  {r['verdict']}"
        )
    for s in skipped:
        print(f"{s['env']:<{width}}  skipped: {s['reason']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps({"target_ms": TARGET_MS, "envs": rows, "skipped": skipped}, indent=2)
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
