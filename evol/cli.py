"""The `evol` command line: one module per command in `evol.commands`, each with
`register(subparsers)` and `run(args)`; this module only builds the parser from them.

    evol envs | check | serve | play | rollout | eval | serve-agent | data | train | analyze | quickstart
"""

from __future__ import annotations

import argparse
import importlib
import sys

from evol.commands import COMMANDS, CommandParser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evol", description="EvolGym: serve environments, run agents, evolve them."
    )
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=CommandParser
    )
    for name in COMMANDS:
        importlib.import_module(f"evol.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
