"""Run the env server on waitress, a production WSGI server (never Flask's dev server)."""

from __future__ import annotations

import logging
import os
import threading
import time

import waitress

from server.app import ServerLimits, create_app

TOKEN_ENV = "EVOL_TOKEN"
PARENT_ENV = "EVOL_PARENT_PID"  # set by `LaunchedServer`: the server ends when that process is gone


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
    port: int = 8000,
    threads: int = 8,
    limits: ServerLimits | None = None,
    env_overrides: dict | None = None,
) -> None:
    limits = limits or ServerLimits()
    limits.host = host
    if limits.token is None:
        limits.token = os.environ.get(TOKEN_ENV) or None
    app = create_app(env_ids, limits, env_overrides)
    if os.environ.get(PARENT_ENV, "").isdigit():
        exit_with_parent(int(os.environ[PARENT_ENV]))
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    workers = app.extensions["evol"].pool.size
    print(
        f"evol: serving {', '.join(env_ids)} on http://{host}:{port} "
        f"({workers} env worker processes, {threads} request threads)",
        flush=True,
    )
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=threads,
        ident="evolgym",
        connection_limit=1000,
        channel_timeout=120,
        _quiet=True,
    )
