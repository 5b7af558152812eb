"""`evol view PATH`: browse a trajectory file or follow a training run in the browser.

PATH is a trajectory JSONL file (`evol rollout`, `evol eval`) or a run directory (`evol train`):
the page lists the episodes (filter, sort), shows one as a conversation, puts two stages
side by side on one task, and for a run draws the learning curve and the phase timings,
updating while the run goes on. Served on waitress, loopback only unless --host says otherwise.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from evol.commands.common import refuse

DEFAULT_PORT = 8765


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("view", help="browse trajectories or follow a run in the browser")
    p.add_argument("path", metavar="PATH", help="a trajectory JSONL file or a run directory")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (default %(default)s)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default %(default)s: this machine only); it and loopback names are accepted "
        "Host headers",
    )
    p.add_argument(
        "--token",
        default=None,
        help="bearer token the page's API wants (or set EVOL_TOKEN); the page is opened with #token=T",
    )
    p.add_argument(
        "--allowed-hosts",
        nargs="+",
        default=(),
        metavar="NAME",
        help="Host names to answer to besides loopback names, IP addresses and --host (guards against "
        "DNS rebinding; '*' accepts any)",
    )
    p.add_argument("--threads", type=int, default=4, help="request threads (default %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from server import TOKEN_ENV
    from server.http import run_waitress, token_from_env
    from server.serve import PARENT_ENV, exit_with_parent

    path = Path(args.path)
    if not path.exists():
        return refuse(f"{path}: no such file or directory")
    if path.is_file() and path.suffix != ".jsonl":
        return refuse(f"{path}: want a trajectory .jsonl file or a run directory")
    from evol.viewer import create_viewer_app

    token = token_from_env(args.token, TOKEN_ENV)
    app = create_viewer_app(path, host=args.host, token=token, extra_hosts=tuple(args.allowed_hosts))
    if os.environ.get(PARENT_ENV, "").isdigit():  # started by a test or a script: end with it
        exit_with_parent(int(os.environ[PARENT_ENV]))
    url = f"http://{args.host}:{args.port}/" + (f"#token={token}" if token else "")
    banner = f"evol: viewing {path} on {url}"
    try:
        run_waitress(
            app, args.host, args.port, args.threads, ident="evol-view", channel_timeout=60, banner=banner
        )
    except OSError as error:  # e.g. the port is taken
        return refuse(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}")
    return 0
