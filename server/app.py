"""The Flask application that serves registered envs: `create_app(env_ids, limits)`.

Routes (ARCHITECTURE.md): health, env listing, sessions (create, reset, step, delete),
a batch step over many sessions, the expert's next action, and the OpenAPI document.
Every error leaves through one handler as `{"error": {"type", "message"}}`.
"""

from __future__ import annotations

import hmac
import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

import envs
from envs.errors import EpisodeOver, ResetNeeded, TaskOptionError
from server.errors import ApiError
from server.openapi import openapi_document
from server.sessions import Session, SessionStore
from server.wire import to_wire

log = logging.getLogger(__name__)


# Env kwargs that name files on the server: settable by whoever starts the server
# (`evol serve --env-kwargs`), never by a client over HTTP.
SERVER_SIDE_KWARGS = frozenset({"data", "cache_dir", "judge"})


@dataclass
class ServerLimits:
    """Limits a server enforces; each has a CLI flag on `evol serve`."""

    capacity: int = 256  # live sessions at most; more answer 429
    session_ttl: float | None = 600.0  # seconds idle before a session is reaped; None keeps them
    step_timeout: float | None = 30.0  # seconds a reset/step may take; over it answers 504
    max_body_bytes: int = 1 << 20  # larger request bodies answer 413
    max_batch: int = 1024  # steps in one POST /step
    token: str | None = None  # bearer token required on every route but /health
    step_workers: int = 16  # threads that run env calls under the time limit


def create_app(
    env_ids: list[str],
    limits: ServerLimits | None = None,
    env_overrides: dict[str, dict[str, Any]] | None = None,
) -> Flask:
    """The server app for `env_ids`. `env_overrides[env_id]` are kwargs given to every
    session's env of that id (objects included: e.g. a counterpart agent such as a critic)."""
    limits = limits or ServerLimits()
    env_overrides = env_overrides or {}
    for env_id in env_ids:
        envs.env_class(env_id)  # fail at start for an id that is not registered
    specs = {env_id: envs.env_spec(env_id) for env_id in env_ids}
    store = SessionStore(capacity=limits.capacity, ttl=limits.session_ttl)
    store.start_reaper()
    pool = ThreadPoolExecutor(max_workers=limits.step_workers, thread_name_prefix="env-step")

    app = Flask("evolgym")
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes
    app.extensions["evol"] = {"store": store, "limits": limits, "pool": pool}

    # ---- errors -----------------------------------------------------------------------
    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        response = jsonify(error.body())
        response.status_code = error.status
        response.headers.update(error.headers)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if isinstance(error, RequestEntityTooLarge):
            return api_error(ApiError(413, "too_large", f"request body over {limits.max_body_bytes} bytes"))
        kind = {404: "not_found", 405: "method_not_allowed"}.get(error.code or 500, "http_error")
        return api_error(ApiError(error.code or 500, kind, error.description or str(error)))

    @app.errorhandler(Exception)
    def internal_error(error: Exception):
        log.exception("unhandled error")
        return api_error(ApiError(500, "internal_error", f"{type(error).__name__}: {error}"))

    @app.before_request
    def check_token():
        if limits.token is None or request.path == "/health":
            return None
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else ""
        if not hmac.compare_digest(given.encode(), limits.token.encode()):
            raise ApiError(401, "unauthorized", "a valid 'Authorization: Bearer <token>' header is required")
        return None

    # ---- helpers ----------------------------------------------------------------------
    def body() -> dict[str, Any]:
        data = request.get_json(silent=True, force=True) if request.data else {}
        if not isinstance(data, dict):
            raise ApiError(400, "malformed_body", "the request body must be a JSON object")
        return data

    def run_locked(session: Session, call, *args):
        """Run `call(*args)` holding the session's lock, under the step time limit."""
        if not session.lock.acquire(timeout=limits.step_timeout or -1):
            raise ApiError(504, "step_timeout", "the session stayed busy past the step time limit")
        if limits.step_timeout is None:
            try:
                return call(*args)
            finally:
                session.lock.release()
        future = pool.submit(call, *args)
        future.add_done_callback(lambda _: session.lock.release())
        try:
            return future.result(timeout=limits.step_timeout)
        except FutureTimeout:
            store.remove(session.sid)  # its state can no longer be trusted
            raise ApiError(
                504,
                "step_timeout",
                f"the env call took longer than {limits.step_timeout}s; session {session.sid} was closed",
            ) from None

    def do_reset(session: Session, seed: Any, options: Any) -> dict[str, Any]:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ApiError(400, "bad_request", "seed must be an integer")
        if options is not None and not isinstance(options, dict):
            raise ApiError(400, "bad_request", "options must be a JSON object")
        try:
            observation, info = run_locked(session, lambda: session.env.reset(seed=seed, options=options))
        except (TaskOptionError, ValueError) as error:
            raise ApiError(400, "bad_options", str(error)) from None
        return {"observation": to_wire(observation), "info": to_wire(info)}

    def do_step(session: Session, action: Any) -> dict[str, Any]:
        if not isinstance(action, str):
            raise ApiError(400, "bad_request", "action must be a string")
        if len(action) > session.env.max_action_length:
            raise ApiError(413, "too_large", f"action over {session.env.max_action_length} characters")
        try:
            observation, reward, terminated, truncated, info = run_locked(session, session.env.step, action)
        except ResetNeeded as error:
            raise ApiError(409, "reset_needed", str(error)) from None
        except EpisodeOver as error:
            raise ApiError(409, "episode_over", str(error)) from None
        except ApiError:
            raise
        except Exception as error:  # a bug in the env: this session's problem, not the server's
            log.exception("env %s failed in step", session.env_id)
            raise ApiError(500, "env_error", f"{type(error).__name__}: {error}") from None
        return {
            "observation": to_wire(observation),
            "reward": reward,
            "terminated": terminated,
            "truncated": truncated,
            "info": to_wire(info),
        }

    # ---- routes -----------------------------------------------------------------------
    @app.get("/health")
    def health():
        return jsonify(status="ok", sessions=len(store), capacity=store.capacity)

    @app.get("/envs")
    def list_envs():
        return jsonify(list(specs.values()))

    @app.get("/openapi.json")
    def openapi():
        return jsonify(openapi_document(env_ids))

    @app.post("/sessions")
    def create_session():
        data = body()
        env_id = data.get("env")
        if not isinstance(env_id, str):
            raise ApiError(400, "missing_field", "'env' (an env id) is required")
        if env_id not in specs:
            raise ApiError(400, "unknown_env", f"unknown env {env_id!r}; served: {', '.join(specs)}")
        kwargs = data.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ApiError(400, "bad_request", "'kwargs' must be a JSON object")
        refused = sorted(SERVER_SIDE_KWARGS & set(kwargs))
        if refused:
            raise ApiError(
                400,
                "bad_env_kwargs",
                f"{refused} can only be set where the server starts (evol serve --env-kwargs)",
            )

        def build():
            try:
                return envs.make_local(env_id, **{**kwargs, **env_overrides.get(env_id, {})})
            except (TypeError, ValueError) as error:
                raise ApiError(400, "bad_env_kwargs", f"cannot build {env_id}: {error}") from None

        session = store.create(env_id, build)
        return jsonify(session=session.sid, env=env_id), 201

    @app.post("/sessions/<sid>/reset")
    def reset(sid: str):
        data = body()
        session = store.get(sid)
        return jsonify(do_reset(session, data.get("seed"), data.get("options")))

    @app.post("/sessions/<sid>/step")
    def step(sid: str):
        data = body()
        if "action" not in data:
            raise ApiError(400, "missing_field", "'action' is required")
        return jsonify(do_step(store.get(sid), data["action"]))

    @app.post("/sessions/<sid>/expert")
    def expert(sid: str):
        session = store.get(sid)
        try:
            action = run_locked(session, session.env.expert_action)
        except ResetNeeded as error:
            raise ApiError(409, "reset_needed", str(error)) from None
        return jsonify(action=action)

    @app.delete("/sessions/<sid>")
    def delete(sid: str):
        if store.remove(sid) is None:
            raise ApiError(404, "unknown_session", f"no session {sid!r}")
        return Response(status=204)

    @app.post("/step")
    def batch_step():
        data = body()
        steps = data.get("steps")
        if not isinstance(steps, list):
            raise ApiError(400, "missing_field", "'steps' (a list of {session, action}) is required")
        if len(steps) > limits.max_batch:
            raise ApiError(413, "too_large", f"at most {limits.max_batch} steps in one batch")
        results = []
        for item in steps:
            try:
                if not isinstance(item, dict) or not isinstance(item.get("session"), str):
                    raise ApiError(400, "bad_request", "each step needs 'session' and 'action'")
                result = do_step(store.get(item["session"]), item.get("action"))
                results.append({"status": 200, **result})
            except ApiError as error:
                results.append({"status": error.status, **error.body()})
        return jsonify(results=results)

    return app
