"""`evol serve-agent`: serve a model as an OpenAI-compatible /v1/chat/completions endpoint.

The command line lives in `evol.agent_server_cli` (Flask-free, runnable on its own as
`python -m evol.agent_server_cli`); this module registers it like every other command.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    from evol.agent_server_cli import add_serve_agent_parser

    add_serve_agent_parser(subparsers)


def run(args: argparse.Namespace) -> int:
    from evol.agent_server_cli import cmd_serve_agent

    return cmd_serve_agent(args)
