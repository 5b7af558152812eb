"""The Flask application that serves registered envs: `create_app(env_ids, limits)`.

Routes (their schemas: `server.openapi`, served at /openapi.json): health, env listing,
sessions (create, reset, step, delete), a batch of steps and resets over many sessions, the
expert's next action, and the OpenAPI document; docs/architecture.md places the server. The front checks every request (Host, token, body, kwargs, options, sizes)
before any env sees it; env work runs in worker processes (`server.workers`). Every
error leaves through one handler as `{"error": {"type", "message"}}` (`server.http`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

import envs
from server.errors import ApiError
from server.http import HttpFront, allowed_hosts, json_body
from server.openapi import MAX_SEED, openapi_document
from server.sessions import Session, SessionStore
from server.workers import WorkerPool

UI_PAGE_PREFIX = "/ui/page"  # the page and its static files: no data in them, so no token needed
# An agent for the page's "agent turn": the conversation so far (chat messages, the env's
# instruction as the system message) in, the agent's action text out.
UiAgent = Callable[[list[dict[str, Any]]], str]


def _limit(default: Any, help: str, flag: str | None = None, **cli: Any) -> Any:
    """A `ServerLimits` field whose command-line flag (`server.serve.add_serve_arguments`)
    is described by its metadata: `help`, the `flag` name when it is not the field's, and for
    a flag in other units, `scale` (field = flag x scale) and `metavar`. A field that may be
    None takes 0 on the command line for None, where `zero` says what that means."""
    return field(default=default, metadata={"help": help, "flag": flag, **cli})


@dataclass
class ServerLimits:
    """Limits a server enforces; each has a flag on `python -m server` and `evol serve`."""

    capacity: int = _limit(256, "live sessions at most; more get 429")
    session_ttl: float | None = _limit(
        600.0, "seconds before an idle session is reaped", "--ttl", zero="never"
    )
    step_timeout: float | None = _limit(
        30.0, "seconds an env call (build, reset, step) may take; over it: 504", zero="no limit"
    )
    max_body_bytes: int = _limit(1 << 20, "largest request body in bytes; larger get 413", "--max-body")
    max_batch: int = _limit(1024, "entries in one POST /step at most")
    token: str | None = _limit(None, "bearer token required on every route but /health (or set EVOL_TOKEN)")
    workers: int = _limit(
        0,
        "env worker processes, each session living in one; 0: one per CPU core (with --ray: as many as the cluster holds)",
    )
    max_worker_rss: int | None = _limit(
        1 << 30,
        "a worker whose memory grew past this takes no new sessions and is replaced once its sessions end",
        "--max-worker-memory",
        scale=1 << 20,
        metavar="MB",
        zero="no limit",
    )
    host: str = _limit(
        "127.0.0.1",
        "bind address (loopback only by default); it and loopback names are accepted Host headers",
    )
    allowed_hosts: tuple[str, ...] = _limit(
        (),
        "Host names the server answers to besides loopback names, IP addresses and --host "
        "(guards against DNS rebinding; '*' accepts any)",
        metavar="NAME",
    )

    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else max(1, os.cpu_count() or 1)


class EnvService:
    """What the routes do: validate, place the session on a worker, run the call there."""

    def __init__(
        self,
        env_ids: list[str],
        limits: ServerLimits,
        env_overrides: dict[str, dict[str, Any]],
        ray_address: str | None = None,
    ):
        unknown = [env_id for env_id in env_ids if env_id not in envs.env_ids()]
        if unknown:
            raise KeyError(f"unknown env(s) {unknown}; known: {', '.join(envs.env_ids())}")
        self.env_ids = list(env_ids)
        self.limits = limits
        self.store = SessionStore(capacity=limits.capacity, ttl=limits.session_ttl, closer=self._close)
        if ray_address is None:
            pool_class: Any = WorkerPool
            pool_args: dict[str, Any] = {}
        else:  # env workers as Ray actors placed over a cluster (the ray extra)
            from server.ray_pool import RayWorkerPool

            pool_class, pool_args = RayWorkerPool, {"address": ray_address}
        self.pool = pool_class(
            env_ids,
            # On a Ray cluster, 0 workers means as many as its nodes hold, not this machine's cores.
            size=limits.worker_count() if ray_address is None else limits.workers,
            env_overrides=env_overrides,
            call_timeout=limits.step_timeout,
            max_worker_rss=limits.max_worker_rss,
            on_lost=self.store.mark_lost,
            **pool_args,
        )
        try:  # the workers start while this process imports the env modules for their cards
            self.specs = {env_id: envs.env_spec(env_id) for env_id in env_ids}
        except Exception:
            self.pool.close()
            raise
        self.pool.wait_ready()
        self.batch_pool = ThreadPoolExecutor(max_workers=4 * self.pool.size, thread_name_prefix="batch")
        self.store.start_reaper()

    # ---- validation ---------------------------------------------------------------------
    def check_kwargs(self, env_id: str, kwargs: Any) -> dict[str, Any]:
        if not isinstance(kwargs, dict):
            raise ApiError(400, "bad_env_kwargs", "'kwargs' must be a JSON object")
        try:
            return envs.check_kwargs(env_id, kwargs, from_client=True)
        except ValueError as error:
            raise ApiError(400, "bad_env_kwargs", f"cannot build {env_id}: {error}") from None

    def check_reset(self, session: Session, args: Any) -> dict[str, Any]:
        if not isinstance(args, dict):
            raise ApiError(400, "bad_request", "a reset must be a JSON object {seed?, options?}")
        refuse_unknown_fields(args, ("seed", "options"), "reset")
        seed, options = args.get("seed"), args.get("options")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED
        ):
            raise ApiError(400, "bad_request", f"seed must be an integer from 0 to {MAX_SEED}")
        if options is not None:
            if not isinstance(options, dict):
                raise ApiError(400, "bad_options", "options must be a JSON object")
            try:
                options = envs.check_options(session.env_id, options)
            except ValueError as error:
                raise ApiError(400, "bad_options", str(error)) from None
        return {"seed": seed, "options": options}

    def check_action(self, session: Session, action: Any) -> dict[str, Any]:
        if not isinstance(action, str):
            raise ApiError(400, "bad_request", "action must be a string")
        limit = self.specs[session.env_id]["max_action_length"]
        if len(action) > limit:
            raise ApiError(413, "too_large", f"action over {limit} characters")
        return {"action": action}

    # ---- calls --------------------------------------------------------------------------
    def _call(self, session: Session, op: str, **args: Any) -> Any:
        session.calls += 1
        try:
            return self.pool.call(session.worker, op, session.sid, **args)
        finally:
            session.calls -= 1
            session.touch()

    def create(self, env_id: Any, kwargs: Any) -> str:
        if not isinstance(env_id, str):
            raise ApiError(400, "missing_field", "'env' (an env id) is required")
        if env_id not in self.specs:
            raise ApiError(400, "unknown_env", f"unknown env {env_id!r}; served: {', '.join(self.specs)}")
        kwargs = self.check_kwargs(env_id, kwargs if kwargs is not None else {})
        session = self.store.reserve(env_id)
        admitted = None
        try:
            session.worker = self.pool.assign(session.sid)
            try:
                self._call(session, "create", env_id=env_id, kwargs=kwargs)
            except ApiError:
                self.pool.release(session.worker, session.sid)
                raise
            admitted = session
        finally:
            self.store.admit(admitted)
        return session.sid

    def reset(self, sid: str, args: dict[str, Any]) -> bytes:
        session = self.store.get(sid)
        return self._call(session, "reset", **self.check_reset(session, args))

    def step(self, sid: str, action: Any) -> bytes:
        session = self.store.get(sid)
        return self._call(session, "step", **self.check_action(session, action))

    def expert(self, sid: str) -> bytes:
        return self._call(self.store.get(sid), "expert")

    def delete(self, sid: str) -> None:
        if self.store.remove(sid) is None:
            self.store.get(sid)  # 410 for a lost session, else 404
            raise ApiError(404, "unknown_session", f"no session {sid!r}")

    def _close(self, session: Session) -> None:
        if session.worker is not None:
            self.pool.close_session(session.worker, session.sid)

    def batch(self, entries: Any) -> bytes:
        """Steps and resets of many sessions: one message per worker, workers in parallel."""
        if not isinstance(entries, list):
            raise ApiError(
                400, "missing_field", "'steps' (a list of {session, action} or {session, reset}) is required"
            )
        if len(entries) > self.limits.max_batch:
            raise ApiError(413, "too_large", f"at most {self.limits.max_batch} entries in one batch")
        results: list[bytes] = [b""] * len(entries)
        groups: dict[Any, list[tuple[int, Session, tuple]]] = {}
        for index, item in enumerate(entries):
            try:
                session, call = self._batch_call(item)
            except ApiError as error:
                results[index] = _json({"status": error.status, **error.body()})
                continue
            groups.setdefault(session.worker, []).append((index, session, call))

        def run_group(group: list[tuple[int, Session, tuple]]) -> None:
            sessions = [session for _, session, _ in group]
            for session in sessions:
                session.calls += 1
            try:
                answers = self.pool.run(group[0][1].worker, [call for _, _, call in group])
            finally:
                for session in sessions:
                    session.calls -= 1
                    session.touch()
            for (index, _, _), answer in zip(group, answers):
                if isinstance(answer, ApiError):
                    results[index] = _json({"status": answer.status, **answer.body()})
                elif answer[0] == "error":
                    results[index] = _json(
                        {"status": answer[1], "error": {"type": answer[2], "message": answer[3]}}
                    )
                else:  # the worker's JSON object, with the status put first
                    results[index] = b'{"status":200,' + answer[1][1:]

        group_list = list(groups.values())
        if len(group_list) == 1:
            run_group(group_list[0])
        else:
            for future in [self.batch_pool.submit(run_group, group) for group in group_list]:
                future.result()
        return b'{"results":[' + b",".join(results) + b"]}"

    def _batch_call(self, item: Any) -> tuple[Session, tuple]:
        if not isinstance(item, dict) or not isinstance(item.get("session"), str):
            raise ApiError(400, "bad_request", "each entry needs 'session' and either 'action' or 'reset'")
        refuse_unknown_fields(item, ("session", "action", "reset"), "batch entry")
        has_action, has_reset = "action" in item, "reset" in item
        if has_action == has_reset:
            raise ApiError(400, "bad_request", "each entry needs exactly one of 'action' and 'reset'")
        session = self.store.get(item["session"])
        if has_reset:
            return session, ("reset", session.sid, self.check_reset(session, item["reset"] or {}))
        return session, ("step", session.sid, self.check_action(session, item["action"]))

    def health(self) -> tuple[dict[str, Any], int]:
        workers = self.pool.status()
        degraded = workers.pop("degraded")
        body = {
            "status": "degraded" if degraded else "ok",
            "sessions": len(self.store),
            "capacity": self.store.capacity,
            "workers": workers,
        }
        return body, 503 if degraded else 200

    def close(self) -> None:
        self.store.close_all()
        self.pool.close()
        self.batch_pool.shutdown(wait=False)


def refuse_unknown_fields(body: dict[str, Any], known: tuple[str, ...], what: str) -> None:
    """400 naming the fields of `body` that `what` does not take: a misspelt or foreign field
    (AgentGym's `data_idx` on a reset) is refused, never silently ignored."""
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise ApiError(400, "bad_request", f"unknown {what} field(s) {unknown}; known: {', '.join(known)}")


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _json_response(body: bytes) -> Response:
    """A 200 answer whose JSON was encoded already (by a worker)."""
    return Response(body, mimetype="application/json")


def service() -> EnvService:
    return current_app.extensions["evol"]


routes = Blueprint("envs", __name__)


@routes.get("/health")
def health():
    body, status = service().health()
    return jsonify(body), status


@routes.get("/envs")
def list_envs():
    return jsonify(list(service().specs.values()))


@routes.get("/openapi.json")
def openapi():
    svc = service()
    return jsonify(openapi_document(svc.env_ids, token_required=svc.limits.token is not None))


@routes.post("/sessions")
def create_session():
    data = json_body(request, required=True)
    refuse_unknown_fields(data, ("env", "kwargs"), "session")
    sid = service().create(data.get("env"), data.get("kwargs"))
    return jsonify(session=sid, env=data["env"]), 201


@routes.post("/sessions/<sid>/reset")
def reset(sid: str):
    return _json_response(service().reset(sid, json_body(request)))


@routes.post("/sessions/<sid>/step")
def step(sid: str):
    data = json_body(request, required=True)
    if "action" not in data:
        raise ApiError(400, "missing_field", "'action' is required")
    refuse_unknown_fields(data, ("action",), "step")
    return _json_response(service().step(sid, data["action"]))


@routes.post("/sessions/<sid>/expert")
def expert(sid: str):
    return _json_response(service().expert(sid))


@routes.delete("/sessions/<sid>")
def delete(sid: str):
    service().delete(sid)
    return Response(status=204)


@routes.post("/step")
def batch_step():
    data = json_body(request, required=True)
    refuse_unknown_fields(data, ("steps",), "batch")
    return _json_response(service().batch(data.get("steps")))


def create_app(
    env_ids: list[str],
    limits: ServerLimits | None = None,
    env_overrides: dict[str, dict[str, Any]] | None = None,
    ui: bool = True,
    ui_agent: UiAgent | None = None,
    ray_address: str | None = None,
) -> Flask:
    """The server app for `env_ids`. `env_overrides[env_id]` are kwargs given to every
    session's env of that id (picklable objects included, e.g. a counterpart agent such as
    a critic: each worker process gets its own copy). With `ui`, the page at /ui plays and
    watches the envs through this same API (`server.ui`); `ui_agent` takes the turns the page
    asks an agent for. `ray_address` ("auto", "local" or host:port) places the env workers as
    Ray actors on that cluster (`server.ray_pool`) instead of local processes."""
    limits = limits or ServerLimits()
    app = Flask("evolgym")
    front = HttpFront(
        ApiError,
        ApiError,
        hosts=allowed_hosts(limits.host, limits.allowed_hosts),
        token=limits.token,
        host_hint=" (evol serve --allowed-hosts adds names)",
        open_paths=frozenset({"/health", "/ui"} if ui else {"/health"}),
        open_prefixes=(UI_PAGE_PREFIX,) if ui else (),
    )
    front.install(app, max_body_bytes=limits.max_body_bytes)
    app.extensions["evol"] = EnvService(env_ids, limits, env_overrides or {}, ray_address)
    app.register_blueprint(routes)
    if ui:
        from server.ui import install_ui

        install_ui(app, ui_agent)
    return app
