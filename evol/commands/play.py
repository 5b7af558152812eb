"""`evol play ENV`: play an episode yourself in the terminal, locally or on a server."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import envs
from evol.commands.common import parse_options


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("play", help="play an episode yourself in the terminal")
    p.add_argument("env", help="env id, e.g. evol/TextWorld-v0")
    p.add_argument("--url", default=None, help="play on a server instead of locally")
    p.add_argument("--token", default=None, help="bearer token for --url")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--task", type=int, default=None, help="task index (reproducible)")
    p.add_argument("--split", default=None, help="task split, e.g. train or test")
    p.add_argument(
        "--options", default=None, help='more reset options as JSON, e.g. \'{"difficulty": "easy"}\''
    )
    p.set_defaults(func=run)


def _text(observation: Any) -> str:
    return observation["text"] if isinstance(observation, dict) else observation


def run(args: argparse.Namespace, read: Callable[[str], str] = input) -> int:
    options = parse_options(args.options) or {}
    if args.task is not None:
        options["task"] = args.task
    if args.split is not None:
        options["split"] = args.split
    env = envs.make(args.env, url=args.url, token=args.token) if args.url else envs.make(args.env)
    try:
        observation, info = env.reset(seed=args.seed, options=options or None)
        print(f"# Instruction\n{info['instruction']}\n")
        total = 0.0
        while True:
            print(_text(observation))
            if info.get("valid_actions"):
                print(f"[valid: {', '.join(info['valid_actions'][:30])}]")
            try:
                action = read("> ")
            except EOFError:
                print("\n(stopped)")
                return 1
            if action.strip() in {":quit", ":q"}:
                return 1
            observation, reward, terminated, truncated, info = env.step(action)
            total += reward
            flag = "  (invalid action)" if info.get("invalid") else ""
            print(f"[turn {info['turn']}/{env.max_turns}  reward {reward:g}  total {total:g}]{flag}")
            if terminated or truncated:
                print(_text(observation))
                outcome = "SUCCESS" if info.get("success") else "FAILURE"
                print(
                    f"\n{outcome}: episode {'ended' if terminated else 'truncated'} after {info['turn']} turns, total reward {total:g}"
                )
                return 0 if info.get("success") else 1
    finally:
        env.close()
