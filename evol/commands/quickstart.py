"""`evol quickstart`: the main job, evolving a tiny agent from scratch (`evol.quickstart`)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "quickstart", help="the main job: evolve a tiny agent from scratch (BC, then AgentEvol)"
    )
    p.add_argument("--out", default="runs/quickstart", help="run directory (default runs/quickstart)")
    p.add_argument(
        "--fast", action="store_true", help="a much smaller run that checks the pipeline in ~2 minutes"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evol.quickstart import run_quickstart

    return run_quickstart(args.out, fast=args.fast)
