"""Run the env server on waitress, a production WSGI server (never Flask's dev server), and its
command line: `add_serve_arguments` builds the flags from `ServerLimits`, `serve_from_args`
serves what they say (`python -m server` and `evol serve` both use them)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys
import threading
import time
from typing import Any

import envs
from server import TOKEN_ENV
from server.agentgym import AgentGymOptions, create_agentgym_app, options_from_args
from server.app import ServerLimits, UiAgent, create_app
from server.http import run_waitress, token_from_env

PARENT_ENV = "EVOL_PARENT_PID"  # set by `LaunchedServer`: the server ends when that process is gone
DEFAULT_PORT = 8000
DEFAULT_THREADS = 8

__all__ = ["PARENT_ENV", "TOKEN_ENV", "add_serve_arguments", "exit_with_parent", "serve", "serve_from_args"]


def exit_with_parent(parent_pid: int, interval: float = 0.5) -> None:
    """End this process once `parent_pid` is no longer its parent (it died, even by SIGKILL)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        print(f"evol: parent process {parent_pid} is gone; stopping", flush=True)
        os._exit(0)

    threading.Thread(target=watch, name="evol-parent-watch", daemon=True).start()


def serve(
    env_ids: list[str],
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    threads: int = DEFAULT_THREADS,
    limits: ServerLimits | None = None,
    env_overrides: dict | None = None,
    mcp_port: int | None = None,
    agentgym: AgentGymOptions | None = None,
    ui: bool = True,
    ui_agent: UiAgent | None = None,
    ray_address: str | None = None,
) -> None:
    """Serve `env_ids` over HTTP on `host:port` until interrupted; with `mcp_port`, also as MCP
    tools on that port, over the same sessions (`server.mcp_app`); with `agentgym`, AgentGym's
    protocol instead of EvolGym's API (`server.agentgym`). `ui`, `ui_agent` and `ray_address`:
    see `server.app.create_app`."""
    limits = limits or ServerLimits()
    limits.host = host
    limits.token = token_from_env(limits.token, TOKEN_ENV)
    if agentgym is not None:
        app = create_agentgym_app(env_ids[0], limits, env_overrides, agentgym.prefix, agentgym.split)
    else:
        app = create_app(env_ids, limits, env_overrides, ui=ui, ui_agent=ui_agent, ray_address=ray_address)
    if os.environ.get(PARENT_ENV, "").isdigit():
        exit_with_parent(int(os.environ[PARENT_ENV]))
    workers = app.extensions["evol"].pool.size
    banner = (
        f"evol: serving {', '.join(env_ids)} on http://{host}:{port} "
        f"({workers} env worker processes, {threads} request threads)"
    )
    if agentgym is not None:
        banner += f"; AgentGym's protocol at {agentgym.prefix or '/'}"
    elif ui:
        banner += f"; the page at http://{host}:{port}/ui"
    if mcp_port is not None:
        from server.mcp_app import MCP_PATH, start_mcp  # the mcp extra: imported only with --mcp

        try:
            start_mcp(app.extensions["evol"], host, mcp_port, threads)
        except OSError as error:  # e.g. the port is taken: say so, and end the env workers
            app.extensions["evol"].close()
            raise SystemExit(f"evol: {error}") from None
        banner += f"; MCP tools on http://{host}:{mcp_port}{MCP_PATH}"
    run_waitress(app, host, port, threads, ident="evolgym", channel_timeout=120, banner=banner)


# ---- the command line -------------------------------------------------------------------
def _flag(limit: dataclasses.Field) -> str:
    return limit.metadata.get("flag") or "--" + limit.name.replace("_", "-")


def _add_limit_flag(parser: argparse.ArgumentParser, limit: dataclasses.Field) -> None:
    """One `ServerLimits` field as a flag: its help and default from the field."""
    meta, default = limit.metadata, limit.default
    help_text = meta["help"]
    if isinstance(default, tuple):
        parser.add_argument(
            _flag(limit), nargs="+", default=None, metavar=meta.get("metavar"), help=help_text
        )
        return
    scale = meta.get("scale", 1)
    if default is not None:
        default = default / scale if scale != 1 else default
        zero = f"; 0 = {meta['zero']}" if "zero" in meta else ""
        help_text += f" (default %(default)s{zero})"
    kind = str if default is None else float if scale != 1 else type(default)
    parser.add_argument(_flag(limit), type=kind, default=default, metavar=meta.get("metavar"), help=help_text)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The env server's arguments on `parser`: the env ids, --port, --threads, and one flag per
    `ServerLimits` field (its help and default from the field's metadata)."""
    parser.add_argument("envs", nargs="+", metavar="ENV", help="env ids to serve, e.g. evol/BabyAI-v0")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to listen on (default %(default)s)"
    )
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS, help="request threads (default %(default)s)"
    )
    parser.add_argument(
        "--mcp",
        action="store_true",
        help="also serve the envs as MCP tools (streamable HTTP at /mcp on --mcp-port), same sessions "
        "and token; needs the mcp extra: pip install 'evolgym[mcp]'",
    )
    parser.add_argument(
        "--mcp-port", type=int, default=None, help="port of the MCP endpoint (default: --port + 1)"
    )
    parser.add_argument(
        "--agentgym",
        action="store_true",
        help="serve AgentGym's env-server protocol (POST /create, /reset, /step, /close; GET /observation, "
        "/available_actions) instead of EvolGym's API, for one env: evol/BabyAI-v0, evol/WebShop-v0, "
        "evol/Maze-v0, evol/Wordle-v0, evol/TextCraft-v0 or evol/SciWorld-v0",
    )
    parser.add_argument(
        "--agentgym-prefix",
        default="",
        metavar="PATH",
        help="serve the AgentGym routes under this path, e.g. /maze (default: at the root)",
    )
    parser.add_argument(
        "--agentgym-split",
        default=None,
        metavar="SPLIT",
        help="the split AgentGym's task indices (data_idx, game, seed, session_id) address "
        "(default: the env's own, train)",
    )
    parser.add_argument(
        "--no-ui",
        action="store_true",
        help="do not serve the page at /ui (play and watch the envs in a browser; on by default)",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        default=None,
        metavar="ADDRESS",
        help="run the env workers as Ray actors on a Ray cluster (ADDRESS: host:port of its head, "
        "'auto' for the one this machine belongs to (default), 'local' for a new one-machine "
        "cluster); needs the ray extra: pip install 'evolgym[ray]'",
    )
    for limit in dataclasses.fields(ServerLimits):
        _add_limit_flag(parser, limit)


def limits_from_args(args: argparse.Namespace) -> ServerLimits:
    """The `ServerLimits` the flags of `add_serve_arguments` give."""
    values: dict[str, Any] = {}
    for limit in dataclasses.fields(ServerLimits):
        value = getattr(args, _flag(limit)[2:].replace("-", "_"))
        scale = limit.metadata.get("scale", 1)
        if isinstance(limit.default, tuple):
            value = tuple(value or ())
        elif "zero" in limit.metadata and value is not None and value <= 0:
            value = None
        elif scale != 1:
            value = int(value * scale)
        values[limit.name] = value
    return ServerLimits(**values)


def unknown_env_ids(env_ids: list[str]) -> list[str]:
    return [env_id for env_id in env_ids if env_id not in envs.env_ids()]


def serve_from_args(
    args: argparse.Namespace,
    env_overrides: dict[str, dict[str, Any]] | None = None,
    ui_agent: UiAgent | None = None,
) -> int:
    """Serve what `add_serve_arguments`' flags say (exit code 2 for unknown env ids);
    `env_overrides[env_id]` are kwargs given to every session's env of that id; `ui_agent`
    takes the turns the page at /ui asks an agent for."""
    unknown = unknown_env_ids(args.envs)
    if unknown:
        print(f"evol: unknown env(s) {unknown}; known: {', '.join(envs.env_ids())}", file=sys.stderr)
        return 2
    try:
        mcp_port = mcp_port_from_args(args)
        agentgym = options_from_args(args)
        if args.ray is not None and importlib.util.find_spec("ray") is None:
            raise ValueError("--ray needs the ray package: pip install 'evolgym[ray]'")
    except ValueError as error:
        print(f"evol: {error}", file=sys.stderr)
        return 2
    limits = limits_from_args(args)
    try:
        serve(
            args.envs,
            limits.host,
            args.port,
            args.threads,
            limits=limits,
            env_overrides=env_overrides,
            mcp_port=mcp_port,
            agentgym=agentgym,
            ui=not args.no_ui,
            ui_agent=ui_agent,
            ray_address=args.ray,
        )
    except RuntimeError as error:  # a Ray cluster out of reach, or no env worker could start
        print(f"evol: {error}", file=sys.stderr)
        return 1
    return 0


def mcp_port_from_args(args: argparse.Namespace) -> int | None:
    """The MCP port `--mcp` and `--mcp-port` ask for (None: no MCP); a ValueError says what is wrong."""
    if not args.mcp:
        if args.mcp_port is not None:
            raise ValueError("--mcp-port needs --mcp")
        return None
    if importlib.util.find_spec("mcp") is None:
        raise ValueError("--mcp needs the mcp package: pip install 'evolgym[mcp]'")
    port = args.mcp_port if args.mcp_port is not None else args.port + 1
    if port == args.port:
        raise ValueError("--mcp-port must differ from --port")
    return port
