"""Run the env server on waitress, a production WSGI server (never Flask's dev server), and its
command line: `add_serve_arguments` builds the flags from `ServerLimits`, `serve_from_args`
serves what they say (`python -m server` and `evol serve` both use them)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
import time
from typing import Any

import envs
from server import TOKEN_ENV
from server.app import ServerLimits, create_app
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
) -> None:
    limits = limits or ServerLimits()
    limits.host = host
    limits.token = token_from_env(limits.token, TOKEN_ENV)
    app = create_app(env_ids, limits, env_overrides)
    if os.environ.get(PARENT_ENV, "").isdigit():
        exit_with_parent(int(os.environ[PARENT_ENV]))
    workers = app.extensions["evol"].pool.size
    banner = (
        f"evol: serving {', '.join(env_ids)} on http://{host}:{port} "
        f"({workers} env worker processes, {threads} request threads)"
    )
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


def serve_from_args(args: argparse.Namespace, env_overrides: dict[str, dict[str, Any]] | None = None) -> int:
    """Serve what `add_serve_arguments`' flags say (exit code 2 for unknown env ids);
    `env_overrides[env_id]` are kwargs given to every session's env of that id."""
    unknown = unknown_env_ids(args.envs)
    if unknown:
        print(f"evol: unknown env(s) {unknown}; known: {', '.join(envs.env_ids())}", file=sys.stderr)
        return 2
    limits = limits_from_args(args)
    serve(args.envs, limits.host, args.port, args.threads, limits=limits, env_overrides=env_overrides)
    return 0
