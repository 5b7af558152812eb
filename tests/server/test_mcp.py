"""`evol serve --mcp`: envs as MCP tools, driven by the official MCP SDK's own client against real
`evol serve` subprocesses on loopback, over the same sessions, limits, token and reaper as REST."""

from __future__ import annotations

import asyncio
import base64
import io
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

pytest.importorskip("mcp", reason="the mcp extra: pip install 'evolgym[mcp]'")
httpx2 = pytest.importorskip("httpx2")

from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from PIL import Image  # noqa: E402

from tests.conftest import ServerProcess, free_port  # noqa: E402

BABYAI, CHART = "evol/BabyAI-v0", "evol/ChartQA-v0"
TOKEN = "mcp-s3cret"
TOOLS = {"list_envs", "open_session", "reset", "step", "expert_action", "close_session"}
ROOT = Path(__file__).resolve().parents[2]
CALLS_ON_A_SESSION = (("reset", {}), ("step", {"action": "go"}), ("expert_action", {}), ("close_session", {}))
SERVER_PATHS = (str(ROOT), sys.prefix, "site-packages", ".py")  # none may reach a client


class McpServer(ServerProcess):
    """`evol serve ENV... --mcp` with the MCP endpoint on a loopback port of its own."""

    def __init__(self, env_ids: list[str], *flags: str):
        self.mcp_port = free_port()
        self.mcp_url = f"http://127.0.0.1:{self.mcp_port}/mcp"
        super().__init__(env_ids, "--mcp", "--mcp-port", str(self.mcp_port), *flags)


@pytest.fixture(scope="module")
def server():
    process = McpServer([BABYAI, CHART], "--token", TOKEN, "--workers", "2")
    yield process
    process.stop()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def mcp_session(url: str, token: str | None = TOKEN) -> AsyncIterator[ClientSession]:
    headers = auth(token) if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


def run(server: McpServer, body: Callable[[ClientSession], Awaitable[Any]], token: str | None = TOKEN) -> Any:
    """`body(session)` in an MCP client session with `server`."""

    async def main() -> Any:
        async with mcp_session(server.mcp_url, token) as session:
            return await body(session)

    return asyncio.run(main())


async def call(session: ClientSession, tool: str, /, **args: Any) -> dict[str, Any]:
    """A tool's structured answer; the call must succeed."""
    result = await session.call_tool(tool, args)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def refused(session: ClientSession, tool: str, /, **args: Any) -> dict[str, Any]:
    """A tool error's `{"error": {"type", "message"}, "status"}`; the call must be refused."""
    result = await session.call_tool(tool, args)
    assert result.is_error, f"{tool}({args}) was not refused: {result.content}"
    error = result.structured_content
    assert result.content[0].text == f"{error['error']['type']}: {error['error']['message']}"
    assert not any(path in error["error"]["message"] for path in SERVER_PATHS), error
    return error


async def play_with_expert(session: ClientSession, seed: int = 7, **options: Any) -> dict[str, Any]:
    """Open a BabyAI session, play one episode with the expert's actions, close it: the last answer."""
    sid = (await call(session, "open_session", env=BABYAI))["session"]
    first = await call(session, "reset", session=sid, seed=seed, options=options)
    assert isinstance(first["observation"], str) and "Your goal" in first["observation"]
    for _ in range(200):
        action = (await call(session, "expert_action", session=sid))["action"]
        answer = await call(session, "step", session=sid, action=action)
        if answer["terminated"] or answer["truncated"]:
            break
    assert await call(session, "close_session", session=sid) == {"closed": True}
    return answer


def test_tools_and_env_cards_are_listed(server):
    async def body(session: ClientSession) -> None:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert set(tools) == TOOLS
        assert tools["step"].input_schema["required"] == ["session", "action"]
        assert tools["open_session"].input_schema["properties"]["env"]["enum"] == [BABYAI, CHART]
        listed = {env["id"]: env for env in (await call(session, "list_envs"))["envs"]}
        assert set(listed) == {BABYAI, CHART}
        assert listed[BABYAI]["card"].startswith("BabyAI")
        assert "level" in listed[BABYAI]["options_schema"]["properties"]
        assert listed[CHART]["multimodal"] is True
        assert listed == {env["id"]: env for env in requests.get(f"{server.url}/envs", headers=auth()).json()}

    run(server, body)


def test_babyai_episode_played_to_success_with_the_experts_actions(server):
    async def body(session: ClientSession) -> list[dict[str, Any]]:
        return [await play_with_expert(session, level=level) for level in ("GoToRedBall", "PickupLoc")]

    for last in run(server, body):
        assert last["terminated"] and last["info"]["success"] is True and last["reward"] > 0


def test_chart_observation_comes_as_image_content(server):
    async def body(session: ClientSession) -> None:
        sid = (await call(session, "open_session", env=CHART, kwargs={"mode": "image"}))["session"]
        for task in (0, 5):
            result = await session.call_tool("reset", {"session": sid, "options": {"task": task}})
            assert not result.is_error
            text, image = result.content
            assert text.type == "text" and image.type == "image" and image.mime_type == "image/png"
            picture = Image.open(io.BytesIO(base64.b64decode(image.data)))
            assert picture.format == "PNG" and picture.size == (480, 360)
            observation = result.structured_content["observation"]
            assert observation["image"] == "[image: content 1]" and observation["text"]
            assert "base64" not in text.text  # the image travels once, as image content
        # In code mode the chart comes as plotting code in the text.
        other = (await call(session, "open_session", env=CHART, kwargs={"mode": "code"}))["session"]
        observation = (await call(session, "reset", session=other, options={"task": 0}))["observation"]
        assert "matplotlib" in observation["text"]
        for each in (sid, other):
            await call(session, "close_session", session=each)

    run(server, body)


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def test_bad_arguments_are_tool_errors(server):
    async def body(session: ClientSession) -> None:
        sid = (await call(session, "open_session", env=BABYAI))["session"]
        on = {"session": sid}
        cases = [
            ("step", on, "bad_arguments", "'action' is a required property"),
            ("step", {**on, "action": 3}, "bad_arguments", "action: 3 is not of type 'string'"),
            ("step", {**on, "action": "go", "actoin": "x"}, "bad_arguments", "'actoin' was unexpected"),
            ("reset", {**on, "seed": -1}, "bad_arguments", "seed: -1 is less than the minimum"),
            ("reset", {**on, "seed": True}, "bad_arguments", "seed: True is not of type 'integer'"),
            ("reset", {**on, "seed": "7"}, "bad_arguments", "seed: '7' is not of type 'integer'"),
            ("reset", {**on, "options": ["task"]}, "bad_arguments", "options: ['task'] is not of type"),
            ("reset", {**on, "options": {"level": "NoSuchLevel"}}, "bad_options", "NoSuchLevel"),
            ("reset", {**on, "options": {"difficulty": 3}}, "bad_options", "difficulty"),
            ("open_session", {}, "bad_arguments", "'env' is a required property"),
            ("open_session", {"env": "evol/Nope-v0"}, "bad_arguments", "env: 'evol/Nope-v0' is not one of"),
            ("open_session", {"env": BABYAI, "kwargs": "max_turns=3"}, "bad_arguments", "kwargs:"),
            ("open_session", {"env": BABYAI, "kwargs": {"bogus": 1}}, "bad_env_kwargs", "bogus"),
            ("open_session", {"env": BABYAI, "kwargs": {"max_turns": 0}}, "bad_env_kwargs", "max_turns"),
            ("step", {**on, "action": "x" * 100_000}, "too_large", "characters"),
            ("step", {**on, "action": "go forward"}, "reset_needed", ""),
            ("list_envs", {"verbose": True}, "bad_arguments", "'verbose' was unexpected"),
            ("rm_rf", {}, "unknown_tool", "no tool 'rm_rf'"),
            ("x" * 5000, {}, "unknown_tool", "x..."),
            ("reset", {**on, "options": {"task": nested(40)}}, "bad_arguments", "nest deeper than 32"),
            ("step", {**on, "action": "go", "extra": nested(40)}, "bad_arguments", "nest deeper than 32"),
        ]
        for tool, args, kind, words in cases:
            error = await refused(session, tool, **args)
            assert error["error"]["type"] == kind and words in error["error"]["message"], (tool, args, error)
            assert 400 <= error["status"] < 500
        # The session is unharmed by the refused calls.
        await call(session, "reset", session=sid, seed=1)
        await call(session, "close_session", session=sid)

    run(server, body)


def test_unknown_or_closed_session_is_a_tool_error(server):
    async def body(session: ClientSession) -> None:
        for sid in ("0" * 24, "no-such-session", "../../etc/passwd"):
            for tool, extra in CALLS_ON_A_SESSION:
                error = await refused(session, tool, session=sid, **extra)
                assert error["status"] == 404 and error["error"]["type"] == "unknown_session"
        sid = (await call(session, "open_session", env=BABYAI))["session"]
        await call(session, "close_session", session=sid)
        for tool, extra in (("step", {"action": "go"}), ("close_session", {})):
            assert (await refused(session, tool, session=sid, **extra))["error"]["type"] == "unknown_session"

    run(server, body)


def refused_connection(url: str, token: str | None) -> list[int]:
    """The SDK client's connection with `token` must fail: the HTTP statuses it got."""
    statuses: list[int] = []

    async def record(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    async def main() -> None:
        headers = auth(token) if token else {}
        async with httpx2.AsyncClient(headers=headers, event_hooks={"response": [record]}) as http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    await session.list_tools()

    with pytest.raises(Exception, match="error"):
        asyncio.run(main())
    return statuses


def test_token_and_host_are_checked_as_for_rest(server):
    for token in (None, "wrong", TOKEN + "x", TOKEN.upper()):
        statuses = refused_connection(server.mcp_url, token)
        assert statuses and set(statuses) == {401}, statuses
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    for extra, status, kind in (
        ({}, 401, "unauthorized"),
        ({"Authorization": "Basic " + TOKEN}, 401, "unauthorized"),
        ({**auth(), "Host": "attacker.example"}, 403, "host_not_allowed"),
        ({**auth(), "Host": f"evil.example:{server.mcp_port}"}, 403, "host_not_allowed"),
    ):
        answer = requests.post(server.mcp_url, json=initialize, headers={**headers, **extra}, timeout=10)
        assert answer.status_code == status and answer.json()["error"]["type"] == kind, answer.text
    ok = requests.post(server.mcp_url, json=initialize, headers={**headers, **auth(), "Host": "localhost"})
    assert ok.status_code == 200 and ok.json()["result"]["serverInfo"]["name"] == "evolgym"
    # A form post is never read as JSON-RPC; a body over --max-body (1 MiB) is refused unread.
    form = requests.post(server.mcp_url, data="x=1", headers={**headers, **auth()}, timeout=10)
    assert form.status_code == 400
    call_step = {**initialize, "method": "tools/call"}
    call_step["params"] = {"name": "step", "arguments": {"session": "s", "action": "a" * (1 << 20)}}
    huge = requests.post(server.mcp_url, json=call_step, headers={**headers, **auth()}, timeout=10)
    assert huge.status_code == 413


def test_sessions_are_shared_with_the_rest_api(server):
    rest = requests.Session()
    rest.headers.update(auth())

    async def body(session: ClientSession) -> None:
        # Opened over MCP, played over REST, closed over REST: gone for MCP too.
        sid = (await call(session, "open_session", env=BABYAI))["session"]
        assert rest.post(f"{server.url}/sessions/{sid}/reset", json={"seed": 3}).status_code == 200
        action = rest.post(f"{server.url}/sessions/{sid}/expert").json()["action"]
        assert (await call(session, "step", session=sid, action=action))["info"]["turn"] == 1
        assert rest.delete(f"{server.url}/sessions/{sid}").status_code == 204
        gone = await refused(session, "step", session=sid, action="go")
        assert gone["error"]["type"] == "unknown_session"
        # Opened over REST, played over MCP.
        other = rest.post(f"{server.url}/sessions", json={"env": BABYAI}).json()["session"]
        await call(session, "reset", session=other, seed=3)
        assert rest.post(f"{server.url}/sessions/{other}/step", json={"action": action}).status_code == 200
        await call(session, "close_session", session=other)
        assert rest.delete(f"{server.url}/sessions/{other}").status_code == 404

    run(server, body)


def test_concurrent_clients_play_while_rest_serves(server):
    """Eight MCP clients, each on its own connection, play three BabyAI episodes each at once while
    a REST client plays too: every episode succeeds and the REST API keeps answering."""

    async def client(index: int, level: str) -> list[dict[str, Any]]:
        async with mcp_session(server.mcp_url) as session:
            return [await play_with_expert(session, 3 * index + n, level=level) for n in range(3)]

    async def main() -> tuple[list[dict[str, Any]], float]:
        levels = ["GoToRedBall", "GoToLocal", "PickupLoc", "GoToObj"] * 2
        started = time.perf_counter()
        results = await asyncio.gather(
            *(client(*each) for each in enumerate(levels)), asyncio.to_thread(rest_episode)
        )
        return [last for episodes in results[:-1] for last in episodes], time.perf_counter() - started

    def rest_episode() -> None:
        rest = requests.Session()
        rest.headers.update(auth())
        sid = rest.post(f"{server.url}/sessions", json={"env": BABYAI}).json()["session"]
        rest.post(f"{server.url}/sessions/{sid}/reset", json={"seed": 5}).raise_for_status()
        for _ in range(200):
            action = rest.post(f"{server.url}/sessions/{sid}/expert").json()["action"]
            answer = rest.post(f"{server.url}/sessions/{sid}/step", json={"action": action}).json()
            if answer["terminated"] or answer["truncated"]:
                break
        assert answer["info"]["success"] is True
        rest.delete(f"{server.url}/sessions/{sid}")

    results, seconds = asyncio.run(main())
    assert all(last["info"]["success"] for last in results), results
    steps = sum(last["info"]["turn"] for last in results)
    print(f"8 MCP clients and 1 REST client: {len(results)} MCP episodes, {steps} steps in {seconds:.2f} s")
    assert requests.get(f"{server.url}/health").json()["sessions"] == 0


def test_capacity_and_reaper_are_the_rest_apis():
    with McpServer([BABYAI], "--capacity", "1", "--ttl", "1", "--workers", "1") as server:
        held = requests.post(f"{server.url}/sessions", json={"env": BABYAI}).json()["session"]

        async def full(session: ClientSession) -> None:
            error = await refused(session, "open_session", env=BABYAI)
            assert error["status"] == 429 and error["error"]["type"] == "at_capacity"

        run(server, full, token=None)
        time.sleep(2.5)  # the reaper ends the idle REST session ...
        assert requests.post(f"{server.url}/sessions/{held}/reset").status_code == 404

        async def reaped(session: ClientSession) -> None:
            sid = (await call(session, "open_session", env=BABYAI))["session"]  # ... which frees the slot
            await call(session, "reset", session=sid)
            await asyncio.sleep(2.5)  # and ends an idle MCP-opened session the same way
            gone = await refused(session, "step", session=sid, action="go")
            assert gone["error"]["type"] == "unknown_session"

        run(server, reaped, token=None)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--mcp-port", "9"], "--mcp-port needs --mcp"),
        (["--mcp", "--port", "7001", "--mcp-port", "7001"], "differ"),
    ],
)
def test_mcp_flags_are_checked(flags, message):
    command = [sys.executable, "-m", "evol.cli", "serve", BABYAI, *flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_taken_mcp_port_is_reported_and_the_server_exits():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "server", BABYAI, "--workers", "1", "--port", str(free_port())]
        done = subprocess.run(
            [*command, "--mcp", "--mcp-port", str(port)], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == f"evol: cannot serve MCP on 127.0.0.1:{port}: Address already in use"
