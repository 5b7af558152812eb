"""The env server's MCP front: served envs as Model Context Protocol tools for agent harnesses.

`evol serve ENV... --mcp` (or `python -m server ... --mcp`) answers MCP's streamable HTTP
transport at `http://HOST:MCP_PORT/mcp` beside the REST API, with these tools:

| tool            | arguments                     | answers (structured content; the same JSON as text) |
|-----------------|-------------------------------|-----------------------------------------------------|
| `list_envs`     | -                             | `{"envs": [...]}`: each served env's card, limits, kwargs and options schemas (`GET /envs`) |
| `open_session`  | `env`, `kwargs?`              | `{"session", "env"}` (`POST /sessions`)             |
| `reset`         | `session`, `seed?`, `options?`| `{"observation", "info"}` (`POST /sessions/{id}/reset`) |
| `step`          | `session`, `action`           | `{"observation", "reward", "terminated", "truncated", "info"}` |
| `expert_action` | `session`                     | `{"action"}`: the env's expert's next action (`POST /sessions/{id}/expert`) |
| `close_session` | `session`                     | `{"closed": true}` (`DELETE /sessions/{id}`)        |

A multimodal env's observation image comes as MCP image content (PNG, `content[1]`); in the
structured content and the JSON text it is replaced by `"[image: content 1]"`. A
refused call (bad arguments, unknown session, a full server, an env's own refusal) is an MCP
tool error (`isError`) whose text is `TYPE: MESSAGE` and whose structured content is the REST
API's `{"error": {"type", "message"}}` with its `status`; no message carries a server path.

One process, one `EnvService`. The REST API stays Flask on waitress (WSGI); the SDK's
streamable-HTTP app is ASGI (Starlette), served by uvicorn on a port of its own (`--mcp-port`,
default `--port` + 1) in a thread of the same process, on the `EnvService` the REST app built:
sessions, capacity, idle reaper, time limits, action sizes and worker processes are the REST
API's own, and a session opened over MCP can be stepped over REST and the reverse. Not one port
through a WSGI/ASGI bridge: ASGI-in-waitress would hold a waitress request thread for every
open MCP event stream, and WSGI-in-uvicorn would move the REST API off waitress; on two ports
each protocol keeps its own server and neither can starve the other. MCP runs stateless (no
`Mcp-Session-Id`, JSON answers): the env session id is the only state, kept in the shared store,
so an MCP client that vanishes leaves nothing but env sessions, which the reaper ends as it
does REST ones. Tool calls run the blocking `EnvService` calls in threads (at most `--threads`
at once), so a slow env never stalls the event loop or other clients. Measured on two busy
shared CPU cores (BabyAI, 2 env workers, a turn = expert action + step): one client 8 ms a turn
over MCP, 5 over REST; 16 concurrent clients 70-140 turns/s over MCP, 170 over REST (the SDK
spends ~2 ms of CPU a request); with 16 SDK clients and 8 REST clients at once, all finish
their episodes and REST keeps answering (50-125 turns/s).

The Host check and the bearer token are the REST front's (`HttpFront.check`, built from the
same `ServerLimits`: `--host`, `--allowed-hosts`, `--token` or EVOL_TOKEN), applied by an ASGI
middleware to every MCP request before the SDK reads it, with the REST API's 403/401 answers;
the SDK's own DNS-rebinding check is off, as the front's applies `--allowed-hosts`. Bodies over
`--max-body` are refused by the SDK (413), bodies that are not JSON with 400; at most
`MAX_CONNECTIONS` connections are open at once (as on waitress), more get 503.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import jsonschema
import mcp.types as types
import uvicorn
from mcp.server.lowlevel import Server
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers

from envs.wire import DATA_URL_PREFIX
from server.app import EnvService
from server.errors import ApiError
from server.http import MAX_JSON_DEPTH, HttpFront, allowed_hosts, json_depth_ok
from server.openapi import MAX_SEED

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
MAX_CONNECTIONS = 1000  # open connections at most (event streams included), as `run_waitress` allows
MAX_ERROR_DETAIL = 300  # characters of a client's own value quoted back in an argument error
MAX_ARGUMENT_ERRORS = 3  # problems named in one argument error

_SESSION = {"type": "string", "description": "a session id from open_session"}


def tool_list(service: EnvService) -> list[types.Tool]:
    """The MCP tools over `service`, their input schemas strict (unknown arguments refused)."""

    def tool(name: str, description: str, properties: dict, required: list[str], **hints: bool) -> types.Tool:
        schema = {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
        annotations = types.ToolAnnotations(open_world_hint=False, **hints)
        return types.Tool(name=name, description=description, input_schema=schema, annotations=annotations)

    served = ", ".join(service.env_ids)
    return [
        tool(
            "list_envs",
            "The served envs: for each, its card (task, action format, reward, success rule), limits, "
            "and the JSON schemas of the kwargs open_session takes and of the options reset takes.",
            {},
            [],
            read_only_hint=True,
        ),
        tool(
            "open_session",
            f"Open a session of a served env ({served}); answers its session id. Call reset next.",
            {
                "env": {"type": "string", "enum": list(service.env_ids), "description": "the env id"},
                "kwargs": {
                    "type": "object",
                    "description": "kwargs building the env, as its kwargs_schema in list_envs allows",
                },
            },
            ["env"],
        ),
        tool(
            "reset",
            "Start an episode of a session: answers the first observation and info.",
            {
                "session": _SESSION,
                "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "description": "a seed"},
                "options": {
                    "type": "object",
                    "description": "the task to play (task index, split, level, ...), as the env's "
                    "options_schema in list_envs allows",
                },
            },
            ["session"],
        ),
        tool(
            "step",
            "Send one action (text, in the env's action format) to a session: answers the observation, "
            "reward, terminated, truncated and info.",
            {"session": _SESSION, "action": {"type": "string", "description": "the action"}},
            ["session", "action"],
        ),
        tool(
            "expert_action",
            "The env's expert's next action in a session's episode (for demonstrations and checks).",
            {"session": _SESSION},
            ["session"],
            read_only_hint=True,
        ),
        tool(
            "close_session",
            "End a session and free its env.",
            {"session": _SESSION},
            ["session"],
            destructive_hint=True,
            idempotent_hint=True,
        ),
    ]


class EnvTools:
    """What each tool does: check its arguments, run the `EnvService` call in a thread, shape the answer."""

    def __init__(self, service: EnvService, threads: int):
        self.service = service
        self.tools = tool_list(service)
        self.validators = {t.name: jsonschema.Draft202012Validator(t.input_schema) for t in self.tools}
        self.threads = threads
        self._limiter: anyio.CapacityLimiter | None = None  # made on the event loop, on first use
        self._ops: dict[str, Callable[[dict[str, Any]], Any]] = {
            "list_envs": lambda args: {"envs": list(service.specs.values())},
            "open_session": self._open,
            "reset": lambda args: json.loads(
                service.reset(args["session"], {k: args[k] for k in ("seed", "options") if k in args})
            ),
            "step": lambda args: json.loads(service.step(args["session"], args["action"])),
            "expert_action": lambda args: json.loads(service.expert(args["session"])),
            "close_session": self._close,
        }

    def _open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"session": self.service.create(args["env"], args.get("kwargs")), "env": args["env"]}

    def _close(self, args: dict[str, Any]) -> dict[str, Any]:
        self.service.delete(args["session"])
        return {"closed": True}

    async def list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.tools)

    async def call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        name, args = params.name, params.arguments or {}
        try:
            op = self._ops.get(name)
            if op is None:
                shown = name if len(name) <= MAX_ERROR_DETAIL else name[:MAX_ERROR_DETAIL] + "..."
                raise ApiError(400, "unknown_tool", f"no tool {shown!r}; tools: {', '.join(self._ops)}")
            self._check_arguments(name, args)
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(self.threads)
            result = await anyio.to_thread.run_sync(op, args, limiter=self._limiter)
        except ApiError as error:
            return _tool_error(error)
        except Exception:  # a failure no check foresaw: its details stay in the server's log
            log.exception("MCP tool %s failed", name)
            message = "the server failed on this call; its log has the details"
            return _tool_error(ApiError(500, "internal_error", message))
        return _tool_result(result)

    def _check_arguments(self, name: str, args: dict[str, Any]) -> None:
        if not json_depth_ok(args):
            raise ApiError(400, "bad_arguments", f"the arguments nest deeper than {MAX_JSON_DEPTH} levels")
        errors = sorted(
            self.validators[name].iter_errors(args), key=jsonschema.exceptions.relevance, reverse=True
        )
        if errors:
            problems = "; ".join(_argument_problem(error) for error in errors[:MAX_ARGUMENT_ERRORS])
            raise ApiError(400, "bad_arguments", f"bad arguments for {name}: {problems}")


def _argument_problem(error: jsonschema.ValidationError) -> str:
    where = "" if error.json_path == "$" else f"{error.json_path[2:]}: "
    detail = error.message
    return where + (detail if len(detail) <= MAX_ERROR_DETAIL else detail[:MAX_ERROR_DETAIL] + "...")


def _tool_result(result: dict[str, Any]) -> types.CallToolResult:
    """`result` as structured content and JSON text, with a multimodal observation's image (the
    wire's `{"text", "image": PNG data URL}`, `envs.wire`) moved into image content. Only that
    place is read as an image: text elsewhere that looks like a data URL stays text."""
    content: list[Any] = []
    observation = result.get("observation")
    if isinstance(observation, dict) and isinstance(observation.get("image"), str):
        image = observation["image"]
        if image.startswith(DATA_URL_PREFIX):
            png = image[len(DATA_URL_PREFIX) :]
            content.append(types.ImageContent(type="image", data=png, mime_type="image/png"))
            result = {**result, "observation": {**observation, "image": "[image: content 1]"}}
    text = types.TextContent(type="text", text=json.dumps(result, ensure_ascii=False))
    return types.CallToolResult(content=[text, *content], structured_content=result)


def _tool_error(error: ApiError) -> types.CallToolResult:
    body = {**error.body(), "status": error.status}
    text = types.TextContent(type="text", text=f"{error.type}: {error.message}")
    return types.CallToolResult(content=[text], structured_content=body, is_error=True)


# ---- the ASGI app -----------------------------------------------------------------------
ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class FrontChecks:
    """ASGI middleware: the REST front's Host and bearer-token checks on every HTTP request,
    refused with the REST API's JSON error (403 `host_not_allowed`, 401 `unauthorized`)."""

    def __init__(self, app: ASGIApp, front: HttpFront):
        self.app = app
        self.front = front

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            try:
                self.front.check(headers.get("host", ""), headers.get("authorization", ""), scope["path"])
            except ApiError as error:
                body = json.dumps(error.body()).encode()
                response_headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                ]
                if error.status == 401:
                    response_headers.append((b"www-authenticate", b"Bearer"))
                await send(
                    {"type": "http.response.start", "status": error.status, "headers": response_headers}
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def create_mcp_app(service: EnvService, threads: int = 8) -> ASGIApp:
    """The ASGI app serving `service`'s envs as MCP tools at `MCP_PATH`, behind the REST front's
    checks for `service.limits` (Host names, bearer token)."""
    limits = service.limits
    front = HttpFront(
        ApiError,
        ApiError,
        hosts=allowed_hosts(limits.host, limits.allowed_hosts),
        token=limits.token,
        host_hint=" (evol serve --allowed-hosts adds names)",
        open_paths=frozenset(),
    )
    tools = EnvTools(service, threads)
    mcp_server = Server(
        "evolgym",
        version=_project_version(),
        instructions="EvolGym envs as tools: list_envs, then open_session, reset, step (until terminated "
        "or truncated), close_session.",
        on_list_tools=tools.list_tools,
        on_call_tool=tools.call_tool,
    )
    app = mcp_server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        json_response=True,
        stateless_http=True,
        max_request_body_size=service.limits.max_body_bytes,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        host=service.limits.host,
    )
    return FrontChecks(app, front)


def _project_version() -> str:
    try:
        return importlib.metadata.version("evolgym")
    except importlib.metadata.PackageNotFoundError:
        return ""


def _listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on `host:port`, made with protocol IPPROTO_TCP: asyncio sets
    TCP_NODELAY only on connections of such sockets, and without it each answer waits ~40 ms
    for a delayed ACK (`socket.create_server` leaves the protocol 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


class McpThread:
    """The MCP app on uvicorn, in a daemon thread of this process, on a socket bound at start."""

    def __init__(self, app: ASGIApp, host: str, port: int, start_timeout: float = 30.0):
        try:
            self.socket = _listening_socket(host, port)
        except OSError as error:
            raise OSError(f"cannot serve MCP on {host}:{port}: {error.strerror or error}") from None
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
            server_header=False,
            limit_concurrency=MAX_CONNECTIONS,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, name="mcp-server", daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + start_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.socket.close()
                raise RuntimeError("the MCP server did not start; its log has the details")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_mcp(service: EnvService, host: str, port: int, threads: int = 8) -> McpThread:
    """Serve `service`'s envs as MCP tools on `host:port` (path `MCP_PATH`) from a thread of this process."""
    return McpThread(create_mcp_app(service, threads), host, port)
