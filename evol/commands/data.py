"""`evol data KIND`: write training data sets: math critiques, or chart images with their QA."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("data", help="write training data sets: critiques (math) or charts")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    q = kinds.add_parser(
        "critiques",
        help="AutoMathCritique-style SFT examples (question, flawed solution, critique, refinement)",
    )
    q.add_argument("--n", type=int, required=True, help="examples to write")
    q.add_argument("--out", required=True, help="JSONL file")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--split", default="train")
    q.set_defaults(func=run)
    q = kinds.add_parser("charts", help="chart images, plotting code and QA JSONL (ReachQA fields)")
    q.add_argument("--n", type=int, required=True, help="charts to write")
    q.add_argument("--out", required=True, help="output directory")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--split", default="train")
    q.add_argument("--processes", type=int, default=2, help="rendering processes (default 2)")
    q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.kind == "critiques":
        from envs.math.data import write_critique_data

        written = write_critique_data(args.n, args.out, seed=args.seed, split=args.split)
    else:
        from envs.charts.data import write_chart_data

        written = write_chart_data(
            args.n, args.out, seed=args.seed, split=args.split, processes=args.processes
        )
    print(f"evol: wrote {written} {args.kind} examples to {args.out}")
    return 0
