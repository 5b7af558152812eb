"""Run the env server on waitress, a production WSGI server (never Flask's dev server)."""

from __future__ import annotations

import logging
import os

import waitress

from server.app import ServerLimits, create_app

TOKEN_ENV = "EVOL_TOKEN"


def serve(
    env_ids: list[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = 8,
    limits: ServerLimits | None = None,
    env_overrides: dict | None = None,
) -> None:
    limits = limits or ServerLimits()
    if limits.token is None:
        limits.token = os.environ.get(TOKEN_ENV) or None
    app = create_app(env_ids, limits, env_overrides)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    print(f"evol: serving {', '.join(env_ids)} on http://{host}:{port} ({threads} threads)", flush=True)
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
