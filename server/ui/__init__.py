"""The page at /ui: play and watch any served env in a browser, for people who look before
they read.

The page (`static/play.html`, `play.js`, `play.css`: plain files, no build step) talks to
the server's public API like every other client (GET /envs, POST /sessions, reset, step,
expert, DELETE), with the bearer token the user types. This module serves the page and
adds the one thing the API lacks, the server's own agent taking a turn:

| route | token | answer |
|---|---|---|
| GET /ui, GET /ui/page/ | no | the page (strict Content-Security-Policy: no inline script) |
| GET /ui/page/FILE | no | the page's script and style sheet |
| GET /ui/agent | yes | `{"agent": name or null}`: the agent `evol serve --ui-agent` loaded |
| POST /ui/agent | yes | `{"messages": [...]}` (the conversation so far, chat form) -> `{"action": str}` |

POST /ui/agent answers 400 for a malformed conversation, 409 `no_agent` when the server
has none, 502 `agent_error` when the agent fails, 503 `agent_busy` when another call holds
it too long; calls run one at a time (one model, one lock).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from importlib import resources
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from envs.wire import DATA_URL_PREFIX
from server.errors import ApiError
from server.http import json_body

log = logging.getLogger(__name__)

PAGE = "play.html"
# The files the page is made of, and their types: nothing else is ever read from the package.
PAGE_FILES = {
    PAGE: "text/html; charset=utf-8",
    "play.js": "text/javascript; charset=utf-8",
    "play.css": "text/css; charset=utf-8",
}
# Scripts and styles only from this server, images only from it or data: URLs (the envs'
# PNGs), requests only to it; no frames, no plugins, no forms posted elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
MAX_MESSAGES = 1024  # a conversation longer than any env's episode is refused
MAX_PARTS = 16  # content parts in one message
ROLES = ("system", "user", "assistant")
AGENT_WAIT_S = 300.0  # how long a call waits for the agent another call holds before 503
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

ui = Blueprint("ui", __name__)


def install_ui(app: Flask, ui_agent: Any = None) -> None:
    """Serve the page on `app`; `ui_agent` (a callable from chat messages to an action, with a
    `.name`; `server.app.UiAgent`) takes the turns the page asks an agent for."""
    app.extensions["evol_ui_agent"] = ui_agent
    app.extensions["evol_ui_lock"] = threading.Lock()
    app.register_blueprint(ui)


def _page_file(name: str) -> Response:
    if name not in PAGE_FILES:
        raise ApiError(404, "not_found", f"the page has no file {name!r}")
    body = resources.files(__package__).joinpath("static", name).read_bytes()
    response = Response(body, content_type=PAGE_FILES[name])
    response.headers.update(PAGE_HEADERS)
    return response


@ui.get("/ui")
@ui.get("/ui/page/")
def page() -> Response:
    return _page_file(PAGE)


@ui.get("/ui/page/<path:name>")
def page_file(name: str) -> Response:
    return _page_file(name)


@ui.get("/ui/agent")
def agent_name() -> Response:
    agent = current_app.extensions["evol_ui_agent"]
    name = None if agent is None else str(getattr(agent, "name", type(agent).__name__))
    return jsonify(agent=name)


@ui.post("/ui/agent")
def agent_turn() -> Response:
    data = json_body(request, required=True)
    unknown = sorted(set(data) - {"messages"})
    if unknown:
        raise ApiError(400, "bad_request", f"unknown agent request field(s) {unknown}; known: messages")
    messages = check_messages(data.get("messages"))
    agent = current_app.extensions["evol_ui_agent"]
    if agent is None:
        raise ApiError(
            409, "no_agent", "this server has no agent for the page (start it with --ui-agent SPEC)"
        )
    lock: threading.Lock = current_app.extensions["evol_ui_lock"]
    if not lock.acquire(timeout=AGENT_WAIT_S):
        raise ApiError(503, "agent_busy", "the agent is busy with another turn", {"Retry-After": "5"})
    try:
        action = agent(messages)
    except Exception as error:  # whatever the backend raised: the page shows it, the log keeps it
        log.exception("the page's agent failed")
        raise ApiError(502, "agent_error", f"the agent failed: {type(error).__name__}: {error}") from None
    finally:
        lock.release()
    if not isinstance(action, str):
        raise ApiError(502, "agent_error", f"the agent answered a {type(action).__name__}, not text")
    return jsonify(action=action)


# ---- the conversation the page sends ----------------------------------------------------
def check_messages(messages: Any) -> list[dict[str, Any]]:
    """The page's conversation, checked: chat messages in the rollout engine's form (an optional
    system message first, then user observations and assistant actions, ending with the
    observation to answer; a user message's content is text, or OpenAI content parts whose
    images are PNG data URLs). Anything else is a 400 naming the first wrong place."""
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list of chat messages")
    if len(messages) > MAX_MESSAGES:
        raise _bad(f"at most {MAX_MESSAGES} messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise _bad(f"{where} must be an object with exactly 'role' and 'content'")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise _bad(f"{where}.role must be one of {', '.join(ROLES)}")
        if role == "system" and index != 0:
            raise _bad(f"{where}: only the first message may be the system message")
        if isinstance(content, list) and role == "user":
            _check_parts(content, where)
        elif not isinstance(content, str):
            kinds = "text or a list of content parts" if role == "user" else "text"
            raise _bad(f"{where}.content must be {kinds}")
    if messages[-1]["role"] != "user":
        raise _bad("the last message must be the observation the agent answers (role 'user')")
    return messages


def _check_parts(parts: list[Any], where: str) -> None:
    if not parts or len(parts) > MAX_PARTS:
        raise _bad(f"{where}.content must hold 1 to {MAX_PARTS} parts")
    for index, part in enumerate(parts):
        place = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and set(part) == {"type", "text"} and isinstance(part["text"], str):
            continue
        if kind == "image_url" and set(part) == {"type", "image_url"}:
            image = part["image_url"]
            if isinstance(image, dict) and set(image) == {"url"} and _is_png_data_url(image["url"]):
                continue
            raise _bad(f"{place}: an image must be {{'url': '{DATA_URL_PREFIX}...'}} holding a PNG")
        raise _bad(f"{place} must be {{'type': 'text', 'text': ...}} or {{'type': 'image_url', ...}}")


def _is_png_data_url(url: Any) -> bool:
    if not isinstance(url, str) or not url.startswith(DATA_URL_PREFIX):
        return False
    try:
        raw = base64.b64decode(url[len(DATA_URL_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return False
    return raw.startswith(PNG_SIGNATURE)


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)
