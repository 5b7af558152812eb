"""`evol envs [ID...]`: list the registered envs; show the cards of the given ids."""

from __future__ import annotations

import argparse
from typing import Any

import envs
from evol.commands.common import refuse


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("envs", help="list registered envs and show their cards")
    p.add_argument("ids", nargs="*", help="show the full card of these env ids")
    p.add_argument("--cards", action="store_true", help="print every env's card after the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ids = args.ids or envs.env_ids()
    specs, rows = [], [("id", "reward", "max turns", "multimodal", "description")]
    for env_id in ids:
        try:
            specs.append(envs.env_spec(env_id))
        except KeyError as error:
            return refuse(error.args[0])
        except ImportError as error:  # an optional dependency of that env is missing
            rows.append((env_id, "-", "-", "-", f"(unavailable: {error})"))
    for spec in specs:
        low, high = spec["reward_range"]
        rows.append(
            (
                spec["id"],
                f"[{low:g}, {high:g}]",
                str(spec["max_turns"]),
                "yes" if spec["multimodal"] else "no",
                spec["description"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    if args.cards or args.ids:
        for spec in specs:
            print(f"\n{'=' * 80}\n{spec['id']}\n{'=' * 80}\n{spec['card']}")
    return 0
