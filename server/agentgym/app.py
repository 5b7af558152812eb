"""The Flask app of AgentGym's protocol: `create_agentgym_app(env_id, limits, env_overrides, options)`.

Routes (at the root, or under `options.prefix`): `GET /` (the greeting), `POST /create`,
`POST /reset`, `POST /step`, `GET /observation`, `GET /available_actions`, `GET /filtered_vocab`
(Wordle), `GET /instruction_text` (WebShop), `POST /close`; plus the native `GET /health` at the
root. Every body is checked before an env sees it and unknown fields are refused (400, named).
Errors answer `{"error": message}`, AgentGym's servers' shape, with the right 4xx/5xx status.
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request

from server.agentgym.families import FAMILIES, Family, Instance
from server.app import EnvService, ServerLimits, refuse_unknown_fields
from server.errors import ApiError
from server.http import HttpFront, allowed_hosts, json_body
from server.sessions import Session


class AgentGymError(ApiError):
    """An error answered as AgentGym's servers answer one: `{"error": message}`."""

    def body(self) -> dict[str, Any]:
        return {"error": self.message}


def _index(value: Any, name: str) -> int:
    """A non-negative integer from a body field or a query parameter (400 otherwise)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(400, "bad_request", f"'{name}' must be a non-negative integer, got {value!r}")
    return value


class AgentGymService:
    """AgentGym's env instances (integer ids) over the native `EnvService`'s sessions.

    Sessions are created, reset, stepped and closed by the service, under its capacity, time
    limits and reaper; an instance whose session was reaped or lost is forgotten with it."""

    def __init__(self, family: Family, service: EnvService, split: str | None = None):
        self.family = family
        self.service = service
        self.split = split
        self._instances: dict[int, Instance] = {}
        self._ids_of: dict[str, int] = {}  # session id -> instance id
        self._next_id = itertools.count()
        self._lock = threading.Lock()
        close_session = service.store.closer

        def close_and_forget(session: Session) -> None:
            self._forget(session.sid)
            close_session(session)

        service.store.closer = close_and_forget

    # ---- instances ----------------------------------------------------------------------
    def instance(self, value: Any) -> Instance:
        key = self.family.id_key
        if value is None:
            raise ApiError(400, "missing_field", f"'{key}' (the env's id that create answered) is required")
        number = _index(value, key)
        with self._lock:
            instance = self._instances.get(number)
        if instance is None:
            raise ApiError(
                404, "unknown_env", f"no env with {key} {number} (never created, closed or expired)"
            )
        return instance

    def query_instance(self, required: bool = True) -> Instance | None:
        value = request.args.get(self.family.id_key)
        return self.instance(value) if value is not None or required else None

    def _forget(self, sid: str) -> None:
        with self._lock:
            number = self._ids_of.pop(sid, None)
            if number is not None:
                self._instances.pop(number, None)

    def _call(self, instance: Instance, method: Any, *args: Any) -> dict[str, Any]:
        """A call of the native service on the instance's session, its errors in AgentGym's terms."""
        try:
            return json.loads(method(instance.sid, *args))
        except ApiError as error:
            key, number = self.family.id_key, instance.id
            if error.status in (404, 410):
                self._forget(instance.sid)
                message = f"env {key} {number} is gone ({'expired' if error.status == 404 else 'lost'}); create another"
            elif error.type == "reset_needed":
                message = f"env {key} {number} has no episode yet: reset it first"
            elif error.type == "episode_over":
                message = f"the episode of env {key} {number} has ended: reset it to start another"
            else:
                raise
            raise ApiError(error.status, error.type, message, error.headers) from None

    # ---- the protocol -------------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> Any:
        family = self.family
        refuse_unknown_fields(body, family.create_fields, "create")
        family.check_create(body)
        sid = self.service.create(family.env_id, {})
        with self._lock:
            instance = Instance(id=next(self._next_id), sid=sid)
            self._instances[instance.id] = instance
            self._ids_of[sid] = instance.id
        task = family.creates_with_task(instance)
        if task is not None:
            with instance.lock:
                self._reset(instance, task)
        return family.created(instance)

    def reset(self, body: dict[str, Any]) -> Any:
        family = self.family
        refuse_unknown_fields(body, (family.id_key, family.reset_key), "reset")
        instance = self.instance(body.get(family.id_key))
        task = body.get(family.reset_key)
        if task is None:
            if not family.reset_key_optional:
                raise ApiError(400, "missing_field", f"'{family.reset_key}' (the task index) is required")
            task = family.reset_default
        else:
            task = _index(task, family.reset_key)
        with instance.lock:
            self._reset(instance, task)
            return family.reset_answer(instance)

    def _reset(self, instance: Instance, task: int | None) -> None:
        options: dict[str, Any] = {} if task is None else {"task": task}
        if self.split is not None:
            options["split"] = self.split
        try:
            answer = self._call(instance, self.service.reset, {"options": options or None})
        except ApiError as error:
            if error.type == "bad_options":
                raise ApiError(
                    400, "bad_options", f"{self.family.reset_key} {task}: {error.message}"
                ) from None
            raise
        instance.reward, instance.score, instance.done = 0.0, 0.0, False
        self.family.observe(instance, answer["observation"], answer["info"], reset=True)

    def step(self, body: dict[str, Any]) -> Any:
        family = self.family
        refuse_unknown_fields(body, (family.id_key, "action"), "step")
        instance = self.instance(body.get(family.id_key))
        action = body.get("action")
        if not isinstance(action, str):
            raise ApiError(400, "missing_field", "'action' (a string) is required")
        with instance.lock:
            answer = self._call(instance, self.service.step, family.action(action))
            instance.reward = answer["reward"]
            instance.score += answer["reward"]
            instance.done = bool(answer["terminated"] or answer["truncated"])
            family.observe(instance, answer["observation"], answer["info"], reset=False)
            return family.step_answer(instance)

    def started(self, instance: Instance | None) -> Instance | None:
        """`instance`, refused (409) while it has no episode."""
        if instance is not None and instance.observation is None:
            raise ApiError(409, "reset_needed", f"env {self.family.id_key} {instance.id} has no episode yet")
        return instance

    def observation(self) -> Any:
        return self.family.observation_answer(self.started(self.query_instance()))

    def close(self, body: dict[str, Any]) -> bool:
        refuse_unknown_fields(body, (self.family.id_key,), "close")
        instance = self.instance(body.get(self.family.id_key))
        self._forget(instance.sid)
        try:
            self.service.delete(instance.sid)
        except ApiError:
            pass  # reaped or lost meanwhile: closed all the same
        return True


def agentgym() -> AgentGymService:
    return current_app.extensions["evol_agentgym"]


routes = Blueprint("agentgym", __name__)
health_routes = Blueprint("agentgym_health", __name__)


@health_routes.get("/health")
def health():
    body, status = agentgym().service.health()
    return jsonify(body), status


@routes.get("/")
def greeting():
    return jsonify(f"This is environment {agentgym().family.title}.")


@routes.post("/create")
def create():
    return jsonify(agentgym().create(json_body(request)))


@routes.post("/reset")
def reset():
    return jsonify(agentgym().reset(json_body(request, required=True)))


@routes.post("/step")
def step():
    return jsonify(agentgym().step(json_body(request, required=True)))


@routes.get("/observation")
def observation():
    return jsonify(agentgym().observation())


@routes.get("/available_actions")
def available_actions():
    service = agentgym()
    return jsonify(service.family.available_actions(service.started(service.query_instance(required=False))))


@routes.get("/filtered_vocab")
def filtered_vocab():
    service = agentgym()
    return jsonify(service.family.filtered_vocab(service.query_instance()))


@routes.get("/instruction_text")
def instruction_text():
    service = agentgym()
    return jsonify(service.family.instruction_text(service.query_instance()))


@routes.post("/close")
def close():
    return jsonify(agentgym().close(json_body(request, required=True)))


def create_agentgym_app(
    env_id: str,
    limits: ServerLimits | None = None,
    env_overrides: dict[str, dict[str, Any]] | None = None,
    prefix: str = "",
    split: str | None = None,
) -> Flask:
    """The AgentGym-protocol app for `env_id` (a key of `FAMILIES`), its routes under `prefix`
    (e.g. "/maze"; "" for the root); `split` is the split AgentGym's task indices address
    (None: the env's default). Limits, token and Host checks are the native server's."""
    if env_id not in FAMILIES:
        raise ValueError(f"AgentGym's protocol is served for {', '.join(FAMILIES)}, not {env_id}")
    limits = limits or ServerLimits()
    app = Flask("evolgym-agentgym")
    front = HttpFront(
        AgentGymError,
        AgentGymError,
        hosts=allowed_hosts(limits.host, limits.allowed_hosts),
        token=limits.token,
        host_hint=" (evol serve --allowed-hosts adds names)",
    )
    front.install(app, max_body_bytes=limits.max_body_bytes)
    service = EnvService([env_id], limits, env_overrides or {})
    app.extensions["evol"] = service
    app.extensions["evol_agentgym"] = AgentGymService(FAMILIES[env_id], service, split)
    app.register_blueprint(health_routes)
    app.register_blueprint(routes, url_prefix=prefix or None)
    return app
