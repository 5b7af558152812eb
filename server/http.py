"""HTTP plumbing shared by EvolGym's servers (env server, agent server): request bodies,
bearer tokens and allowed Host names, each refusing bad input with a clear 4xx."""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable
from typing import Any

from flask import Request

from server.errors import ApiError

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
