"""`evol check ENV [--url URL]`: check that an env keeps the text-env contract, for plugin authors.

Runs `envs.checker.check_text_env` on the env, built locally or served at `--url`, and prints
one line per rule; exits 0 when every rule holds, 1 when one is broken (or the env cannot be
built or reached), 2 for an unknown env id.
"""

from __future__ import annotations

import argparse
from typing import Any

import envs
from evol.commands.common import refuse, unknown_env


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check",
        help="check that an env keeps the text-env contract (local or served)",
        description="Check that an env keeps the text-env contract: Gymnasium's check_env, the "
        "instruction at reset, success at the end, rewards in range, invalid actions answered and "
        "counted, replay under the same seed and options, the expert reaching success, out-of-order "
        "calls refused, the card's sections. Exits 0 when all hold, 1 when one is broken.",
    )
    p.add_argument("env", help="env id, e.g. acme/Counter-v0")
    p.add_argument("--url", default=None, help="check the env served there instead of a local one")
    p.add_argument("--token", default=None, help="bearer token for --url")
    p.add_argument(
        "--expert-tasks", type=int, default=5, metavar="N", help="tasks the expert must solve (default 5)"
    )
    p.add_argument(
        "--env-kwargs",
        default=None,
        metavar="JSON",
        help="constructor kwargs of the env, e.g. '{\"max_turns\": 10}'",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from envs.checker import check_text_env

    if args.url is None:
        problem = unknown_env([args.env])
        if problem:
            return refuse(problem)
    try:
        kwargs = json.loads(args.env_kwargs) if args.env_kwargs else {}
    except json.JSONDecodeError as error:
        return refuse(f"--env-kwargs is not JSON: {error}")
    if not isinstance(kwargs, dict):
        return refuse('--env-kwargs wants {"kwarg": value}')
    where = f"served at {args.url}" if args.url else "local"
    try:
        env = (
            envs.make(args.env, url=args.url, token=args.token, **kwargs)
            if args.url
            else envs.make(args.env, **kwargs)
        )
    except Exception as error:  # the env cannot be built or the server cannot be reached: a failed check
        print(f"evol: cannot make {args.env} ({where}): {error}")
        return 1
    try:
        report = check_text_env(env, expert_tasks=args.expert_tasks, raise_on_failure=False)
    finally:
        env.close()
    report.env = f"{args.env} ({where})"
    print(report.format())
    return 0 if report.passed else 1
