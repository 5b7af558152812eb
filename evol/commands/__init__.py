"""The `evol` commands, one module each, as in TRL's CLI: `register(subparsers)` adds the
command's parser (its flags and help), `run(args)` carries it out and returns the exit code.

`evol/cli.py` builds the parser from `COMMANDS`; a new command is a new module listed there.
Building the parser imports no command's heavy dependencies: a command whose flags come from
such a module (`serve`: the Flask server) defers them (`CommandParser(add_arguments=...)`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

COMMANDS = (
    "envs",
    "check",
    "serve",
    "play",
    "rollout",
    "eval",
    "serve_agent",
    "data",
    "train",
    "analyze",
    "quickstart",
    "rm_bench",
    "robust",
    "view",
)


class CommandParser(argparse.ArgumentParser):
    """A command's parser. `add_arguments=f` defers `f(parser)` until the parser is used (it
    parses, or prints its help), so the modules `f` imports load only for that command."""

    def __init__(
        self,
        *args: Any,
        add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._deferred = add_arguments

    def _add_deferred_arguments(self) -> None:
        if self._deferred is not None:
            add, self._deferred = self._deferred, None
            add(self)

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ):
        self._add_deferred_arguments()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._add_deferred_arguments()
        return super().format_usage()

    def format_help(self) -> str:
        self._add_deferred_arguments()
        return super().format_help()
