"""`python -m server ENV... [flags]`: serve registered envs over HTTP (`--help` lists the flags).

Counterpart agents (a critic, a defender) need `agents`, which this package does not import:
`evol serve --counterpart NAME=SPEC` adds them."""

from __future__ import annotations

import argparse
import sys

from server.serve import add_serve_arguments, serve_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="Serve EvolGym envs over HTTP.")
    add_serve_arguments(parser)
    return serve_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
