"""`evol serve ENV...`: serve envs over HTTP, with counterpart agents for the envs that take one.

The server's flags and the serving are `server.serve`'s (`python -m server` has the same, among
them `--agentgym`: AgentGym's env-server protocol instead of EvolGym's API, `server.agentgym`,
and `--mcp`: the envs also as MCP tools for agent harnesses, `server.mcp_app`);
this command adds what needs `agents`: `--counterpart NAME=AGENT` (a critic, a defender, a
judge) handed to the envs that declare a `NAME` kwarg, and `--env-kwargs`.
"""

from __future__ import annotations

import argparse
from typing import Any

import envs
from evol.commands.common import parse_env_kwargs, refuse, unknown_env


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="serve envs over HTTP (waitress)", add_arguments=add_arguments)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from server.serve import add_serve_arguments  # Flask: loaded only when this command runs

    add_serve_arguments(p)
    p.add_argument(
        "--env-kwargs",
        default=None,
        metavar="JSON",
        help='kwargs for the served envs, e.g. \'{"ENV_ID": {"data": "test.jsonl"}}\' (server-only ones too)',
    )
    p.add_argument(
        "--counterpart",
        action="append",
        metavar="NAME=AGENT",
        help="a counterpart agent for the envs that take one, e.g. critic=oracle or "
        "critic=openai:http://127.0.0.1:8100/v1#model",
    )
    p.add_argument(
        "--ui-agent",
        default=None,
        metavar="AGENT",
        help="the agent that takes turns on the page at /ui when asked, e.g. hf:runs/bc/model or "
        "openai:http://127.0.0.1:8100/v1#model (default: none; the expert is always there)",
    )


def run(args: argparse.Namespace) -> int:
    from server.serve import serve_from_args

    problem = unknown_env(args.envs)
    if problem:
        return refuse(problem)
    try:
        overrides = counterparts(args.envs, args.counterpart or [])
        for env_id, kwargs in parse_env_kwargs(args.env_kwargs, args.envs).items():
            overrides.setdefault(env_id, {}).update(kwargs)
        ui_agent = None
        if args.ui_agent is not None:
            if args.no_ui:
                raise ValueError("--ui-agent needs the page: drop --no-ui")
            from evol.ui_agent import ui_agent_from_spec

            ui_agent = ui_agent_from_spec(args.ui_agent)
    except ValueError as error:
        return refuse(str(error))
    return serve_from_args(args, overrides, ui_agent)


def counterparts(env_ids: list[str], items: list[str]) -> dict[str, dict[str, Any]]:
    """`NAME=SPEC` counterpart agents (critic, defender, ...) for the served envs that declare a
    `NAME` kwarg; a ValueError says what is wrong."""
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        name, _, spec = item.partition("=")
        if not name or not spec:
            raise ValueError(f"--counterpart wants NAME=AGENT_SPEC, got {item!r}")
        takers = [env_id for env_id in env_ids if name in envs.env_class(env_id).kwarg_params]
        if not takers:
            raise ValueError(f"no served env takes a {name!r} counterpart")
        if spec == "oracle":
            agent: Any = spec  # envs with a built-in oracle accept the name
        else:
            from agents import LazyAgent

            # Each env worker process builds its own copy from the spec, on first use.
            agent = LazyAgent(spec)
        for env_id in takers:
            overrides.setdefault(env_id, {})[name] = agent
    return overrides
