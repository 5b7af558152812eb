"""`evol rollout`: collect trajectories (JSONL; reruns resume)."""

from __future__ import annotations

import argparse
from typing import Any

from evol.commands.agent_runs import add_agent_flags, build_engine, report_faults
from evol.commands.common import parse_env_kwargs, refuse, unknown_env


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "rollout",
        help="collect trajectories (JSONL; reruns resume)",
        description="Collect trajectories. Exits 1 when some episodes could not be completed "
        "(they are written as failed attempts; rerunning the command retries them).",
    )
    p.add_argument("--env", nargs="+", required=True, metavar="ID", help="env ids")
    p.add_argument("--episodes", type=int, required=True, help="tasks per env")
    p.add_argument("--out", required=True, help="trajectory JSONL file")
    p.add_argument("--samples", type=int, default=1, help="episodes per task (default 1)")
    p.add_argument("--split", default="train", help="task split where the env has splits (default train)")
    p.add_argument("--start", type=int, default=0, help="first task index (default 0)")
    add_agent_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evol.rollout import task_specs
    from evol.runs import run_specs

    problem = unknown_env(args.env)
    if problem:
        return refuse(problem)
    try:
        env_kwargs = parse_env_kwargs(args.env_kwargs, args.env)
    except ValueError as error:
        return refuse(str(error))
    specs = task_specs(args.env, args.episodes, split=args.split, samples=args.samples, start=args.start)
    outcome = run_specs(build_engine(args, env_kwargs), specs, args.out, log=print)
    stats = outcome.stats
    print(
        f"evol: {stats.episodes} episodes, success {stats.success_rate:.1%}, {stats.steps} steps, "
        f"faults: {stats.fault_summary()}, {stats.wall_s:.1f}s "
        f"(agent {stats.agent_s:.1f}s, env {stats.env_s:.1f}s) -> {args.out}"
    )
    return report_faults(outcome)
