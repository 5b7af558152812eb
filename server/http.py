"""HTTP plumbing shared by EvolGym's servers (env server `server.app`, agent server
`server.agent_app`): JSON errors and their handlers, the Host and bearer-token checks
(`HttpFront`), JSON request bodies, and the waitress start-up (`run_waitress`).

Each server keeps its own error shape (the env API's `{"error": {"type", "message"}}`,
OpenAI's `{"error": {"message", "type", "param", "code"}}`): `HttpFront` is given the
server's error class and a factory that turns plumbing failures into it.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import waitress
from flask import Flask, Request, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from server.errors import ApiError

log = logging.getLogger(__name__)

MAX_JSON_DEPTH = 32  # nesting deeper than this is refused before it reaches any env
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def json_depth_ok(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `value` nests at most `limit` containers deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def json_body(request: Request, required: bool = False) -> dict[str, Any]:
    """The request's JSON object body ({} when empty and not `required`).

    Only `application/json` bodies are read (415 otherwise: a cross-site form post or a
    `text/plain` fetch cannot reach the API); malformed, non-object or too deeply nested
    JSON is a 400."""
    raw = request.get_data(cache=True)
    if not raw:
        if required:
            raise ApiError(400, "malformed_body", "a JSON object body is required")
        return {}
    if request.mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"request bodies must be application/json, not {request.mimetype or 'unspecified'!r}",
        )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as error:
        message = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise ApiError(400, "malformed_body", f"the request body is not valid JSON: {message}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_body", "the request body must be a JSON object")
    if not json_depth_ok(data):
        raise ApiError(400, "malformed_body", f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
    return data


def bearer_token(header: str) -> str:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def token_matches(header: str, token: str) -> bool:
    return hmac.compare_digest(bearer_token(header).encode(), token.encode())


def allowed_hosts(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host names a server answers to: loopback names, the bound host and `extra`."""
    names = {name.lower().strip("[]") for name in (*LOOPBACK_NAMES, bind_host, *extra) if name}
    return frozenset(names)


def host_name(host_header: str) -> str:
    """The name part of a Host header (`[::1]:8000` -> `::1`, `a.b:80` -> `a.b`)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host_header: str, allowed: frozenset[str]) -> bool:
    """Whether a request's Host header names this server.

    IP literals are always accepted (DNS rebinding needs a name); names must be listed.
    `*` in `allowed` accepts any host."""
    if "*" in allowed:
        return True
    name = host_name(host_header)
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name in allowed


def token_from_env(token: str | None, variable: str) -> str | None:
    """`token`, else the environment's `variable`; None (no token required) when neither is set."""
    return token or os.environ.get(variable) or None


# ---- errors and the request front -------------------------------------------------------
class HttpError(Protocol):
    """A server's error type: answered as `body()` with `status` and `headers`."""

    status: int
    headers: dict[str, str]

    def body(self) -> dict[str, Any]: ...


ErrorFactory = Callable[[int, str, str, dict[str, str]], Exception]  # (status, kind, message, headers)


def error_response(error: HttpError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


@dataclass(frozen=True)
class HttpFront:
    """What both servers do before and around their routes: accept only requests naming this
    server's `hosts` and (with a `token`) carrying it as a bearer token, and answer every error
    as JSON in the server's own shape (`error_class`, plumbing failures built by `make_error`)."""

    error_class: type[Exception]
    make_error: ErrorFactory
    hosts: frozenset[str]
    token: str | None = None
    unauthorized: str = "unauthorized"  # the error kind of a missing or wrong token
    host_hint: str = ""  # appended to the wrong-Host message: how to add a name
    open_paths: frozenset[str] = field(default_factory=lambda: frozenset({"/health"}))  # no token needed
    open_prefixes: tuple[str, ...] = ()  # paths under these need no token either (a page's static files)

    def install(self, app: Flask, max_body_bytes: int) -> None:
        app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
        app.extensions["evol_http"] = self
        app.register_error_handler(self.error_class, error_response)
        if self.error_class is not ApiError:
            app.register_error_handler(ApiError, _plumbing_error)
        app.register_error_handler(HTTPException, _http_error)
        app.register_error_handler(Exception, _internal_error)
        app.before_request(_check_request)

    def is_open(self, path: str) -> bool:
        return path in self.open_paths or path.startswith(self.open_prefixes)

    def check(self, host_header: str, authorization: str, path: str) -> None:
        if not host_allowed(host_header, self.hosts):
            message = "this server does not answer to that Host name" + self.host_hint
            raise self.make_error(403, "host_not_allowed", message, {})
        if self.token is not None and not self.is_open(path):
            if not token_matches(authorization, self.token):
                message = "a valid 'Authorization: Bearer <token>' header is required"
                raise self.make_error(401, self.unauthorized, message, {})


def _front() -> HttpFront:
    return current_app.extensions["evol_http"]


def _check_request() -> None:
    headers = request.headers
    _front().check(headers.get("Host", ""), headers.get("Authorization", ""), request.path)


def _plumbing_error(error: ApiError) -> Response:
    return error_response(_front().make_error(error.status, error.type, error.message, error.headers))


def _http_error(error: HTTPException) -> Response:
    make_error = _front().make_error
    if isinstance(error, RequestEntityTooLarge):
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        return error_response(make_error(413, "too_large", f"request body over {limit} bytes", {}))
    kind = {404: "not_found", 405: "method_not_allowed"}.get(error.code or 500, "http_error")
    headers = {k: v for k, v in error.get_headers() if k.lower() == "allow"}
    return error_response(make_error(error.code or 500, kind, error.description or str(error), headers))


def _internal_error(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    message = "the server failed on this request; its log has the details"
    return error_response(_front().make_error(500, "internal_error", message, {}))


# ---- start-up ---------------------------------------------------------------------------
def run_waitress(
    app: Flask, host: str, port: int, threads: int, ident: str, channel_timeout: int, banner: str
) -> None:
    """Serve `app` on waitress (never Flask's dev server) until interrupted, after printing `banner`."""
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    print(banner, flush=True)
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=threads,
        ident=ident,
        connection_limit=1000,
        channel_timeout=channel_timeout,
        _quiet=True,
    )
