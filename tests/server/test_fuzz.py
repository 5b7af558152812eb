"""Fuzz tests: nothing a client sends makes the env server answer 5xx, and it stays healthy.

Two fuzzers, each against a real `evol serve` process on loopback:

- schemathesis on the server's own `/openapi.json` (a mix of BabyAI, Maze, Wordle, ToolUse,
  MathCritique and a small WebShop): every operation through its coverage and fuzzing phases,
  then its stateful phase, which follows the document's OpenAPI links
  (create -> reset -> step -> expert -> delete through the session id);
- a Hypothesis state machine with live sessions, once per registered env: create with kwargs
  drawn from the env's declared schema (and broken on purpose), reset with random seeds and
  options, step with the expert's, random, pathological (regex bombs, code injection, the
  longest allowed and one longer) and non-string actions, expert, delete, batch requests that
  mix resets and steps, and raw requests: oversized, malformed, deeply nested and non-UTF-8
  bodies, wrong content types, bad tokens, unknown methods.

Every answer must be below 500, every error `{"error": {"type", "message"}}` with a type of the
error contract and no traceback; `/health` must answer 200 ok throughout (polled every 50 ms
beside the state machine) and afterwards.

The CI size runs in under a minute (45-50 s on 2 cores). `EVOL_FUZZ_EXAMPLES` multiplies the
examples of every fuzzer (default 1); the longer setting, for a soak before a release (5 took
2 minutes; 20 takes about 8):

    EVOL_FUZZ_EXAMPLES=20 python -m pytest tests/server/test_fuzz.py -q

With `EVOL_FUZZ_KEEP_GOING=1` the state machine records every 5xx instead of stopping at the
first, and the test fails at the end listing each with a one-line reproduction.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

import envs
from server.openapi import ERROR_TYPES, openapi_document
from tests.conftest import ServerProcess

SCALE = max(1, int(os.environ.get("EVOL_FUZZ_EXAMPLES", "1")))
KEEP_GOING = os.environ.get("EVOL_FUZZ_KEEP_GOING") == "1"
TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 1 << 20
SMALL_WEBSHOP = json.dumps({"evol/WebShop-v0": {"num_products": 200}})
SCHEMATHESIS_ENVS = [
    "evol/BabyAI-v0",
    "evol/Maze-v0",
    "evol/Wordle-v0",
    "evol/ToolUse-v0",
    "evol/MathCritique-v0",
    "evol/WebShop-v0",
]
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
# Examples and steps per example of the state machine at EVOL_FUZZ_EXAMPLES=1; fewer for envs
# whose reset costs seconds (a game generated, a JVM started).
# (examples, steps) per env; EVOL_FUZZ_EXAMPLES=K runs K times the examples
MACHINE_SIZE = {"evol/TextWorld-v0": (2, 8), "evol/SciWorld-v0": (2, 8), "evol/AdversarialImage-v0": (3, 8)}
DEFAULT_MACHINE_SIZE = (7, 12)
EXTRA_ERROR_TYPES = {405: {"method_not_allowed"}}
FOUND: list[str] = []  # 5xx seen with EVOL_FUZZ_KEEP_GOING


def assert_healthy(url: str) -> None:
    answer = requests.get(url + "/health", timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "ok", answer.text


class HealthWatch(threading.Thread):
    """Polls `/health` while the fuzzers run: it must answer 200 ok throughout, whatever else is in flight."""

    def __init__(self, url: str, every: float = 0.05):
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.problems: list[str] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        with requests.Session() as http:
            while not self.stopped.wait(self.every):
                try:
                    answer = http.get(self.url + "/health", timeout=30)
                except requests.RequestException as error:
                    self.problems.append(f"GET /health: {type(error).__name__}")
                    continue
                if answer.status_code != 200:
                    self.problems.append(f"GET /health -> {answer.status_code} {answer.text[:200]!r}")


# ---- the OpenAPI document -------------------------------------------------------------------


def test_openapi_declares_bearer_auth_only_when_a_token_is_set():
    assert "security" not in openapi_document(SCHEMATHESIS_ENVS)
    with_token = openapi_document(SCHEMATHESIS_ENVS, token_required=True)
    assert with_token["security"] == [{"bearer": []}]
    assert with_token["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "401" in with_token["paths"]["/sessions"]["post"]["responses"]


def test_openapi_requires_bodies_and_declares_each_envs_kwargs():
    paths = openapi_document(SCHEMATHESIS_ENVS)["paths"]
    assert paths["/sessions"]["post"]["requestBody"]["required"] is True
    assert paths["/sessions/{sid}/step"]["post"]["requestBody"]["required"] is True
    assert paths["/step"]["post"]["requestBody"]["required"] is True
    assert paths["/sessions/{sid}/reset"]["post"]["requestBody"]["required"] is False
    branches = paths["/sessions"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    maze = next(b for b in branches if b["properties"]["env"] == {"const": "evol/Maze-v0"})
    declared = maze["properties"]["kwargs"]["anyOf"][0]
    assert declared == envs.env_spec("evol/Maze-v0")["kwargs_schema"]


def test_openapi_links_chain_a_session_from_create_to_delete():
    paths = openapi_document(SCHEMATHESIS_ENVS)["paths"]
    created = paths["/sessions"]["post"]["responses"]["201"]["links"]
    assert created["Reset"] == {
        "operationId": "resetSession",
        "parameters": {"sid": "$response.body#/session"},
    }
    reset = paths["/sessions/{sid}/reset"]["post"]["responses"]["200"]["links"]
    assert {link["operationId"] for link in reset.values()} >= {
        "stepSession",
        "expertAction",
        "deleteSession",
    }
    expert = paths["/sessions/{sid}/expert"]["post"]["responses"]["200"]["links"]
    assert expert["StepWithExpert"]["requestBody"] == {"action": "$response.body#/action"}
    for route in ("/sessions/{sid}/reset", "/sessions/{sid}/step", "/sessions/{sid}/expert"):
        answers = paths[route]["post"]["responses"]
        assert {"404", "410", "503", "504"} <= set(answers), route


# ---- schemathesis ---------------------------------------------------------------------------


def schemathesis_server(start_server) -> ServerProcess:
    return start_server(SCHEMATHESIS_ENVS, "--token", TOKEN, "--ttl", "30", "--env-kwargs", SMALL_WEBSHOP)


def load_schema(url: str):
    config = schemathesis.Config.from_dict(
        {"headers": AUTH, "request-timeout": 60, "generation": {"max-examples": 15 * SCALE}}
    )
    return schemathesis.openapi.from_url(url + "/openapi.json", config=config, headers=AUTH, timeout=30)


@pytest.fixture
def served_schema(start_server):
    server = schemathesis_server(start_server)
    yield load_schema(server.url)
    assert_healthy(server.url)


fuzzed = schemathesis.pytest.from_fixture("served_schema")


@fuzzed.parametrize()
@settings(
    max_examples=15 * SCALE,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_a_server_error(case):
    case.call_and_validate(checks=CHECKS, headers=AUTH, timeout=60)


def test_stateful_session_chains_never_answer_a_server_error(start_server):
    server = schemathesis_server(start_server)
    base = load_schema(server.url).as_state_machine()

    class SessionChains(base):
        def get_call_kwargs(self, case):
            return {"headers": AUTH, "timeout": 60}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, headers=AUTH)

    SessionChains.run(
        settings=settings(
            max_examples=25 * SCALE,
            stateful_step_count=25,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
    assert_healthy(server.url)


# ---- strategies from the envs' declared schemas ----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy:
    """Values a JSON Schema (as `envs.params.params_schema` writes them) accepts, boundaries first."""
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(branch) for branch in schema[key]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}) for k in kind])
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1000))
        high = schema.get("maximum", schema.get("exclusiveMaximum", 1000))
        if kind == "integer":
            low, high = int(low) + ("exclusiveMinimum" in schema), int(high) - ("exclusiveMaximum" in schema)
            # The low end mostly: client-chosen sizes near the top are slow to build, by design.
            return st.sampled_from([low, high]) | st.integers(low, min(high, low + 16))
        inside = st.floats(
            low,
            high,
            exclude_min="exclusiveMinimum" in schema,
            exclude_max="exclusiveMaximum" in schema,
            allow_nan=False,
        )
        return (
            inside
            if "exclusiveMaximum" in schema or "exclusiveMinimum" in schema
            else inside | st.sampled_from([low, high])
        )
    if kind == "string":
        longest = schema.get("maxLength", 64)
        return st.text(max_size=min(longest, 64)) | st.just("x" * longest)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}))
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 4), 4))
    if isinstance(schema.get("additionalProperties"), dict):  # a mapping of declared values
        names = schema.get("propertyNames", {}).get("enum")
        return st.dictionaries(
            st.sampled_from(names) if names else st.text(max_size=8),
            from_schema(schema["additionalProperties"]),
            max_size=min(schema.get("maxProperties", 3), 3),
        )
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in properties.items() if k in required},
            optional={k: from_schema(v) for k, v in properties.items() if k not in required},
        )
    return json_values


def declared_or_broken(schema: dict[str, Any] | None, fallback: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly values the schema accepts; also each broken one way (a wrong value, an unknown key,
    not an object at all)."""
    if not schema:
        return fallback
    valid = from_schema(schema)
    keys = sorted(schema.get("properties", {})) or ["x"]
    wrong_value = st.builds(lambda d, k, v: {**d, k: v}, valid, st.sampled_from(keys), json_values)
    unknown_key = st.builds(lambda d, k: {**d, f"unknown_{k}": 1}, valid, st.text(max_size=4))
    return st.one_of(valid, valid, wrong_value, unknown_key, json_values)


def fallback_kwargs(env_id: str) -> st.SearchStrategy:
    """Before kwargs are declared: the constructor's own keys with small random values."""
    import inspect

    names = [
        n
        for n in inspect.signature(envs.env_class(env_id).__init__).parameters
        if n not in ("self", "render_mode", "data", "cache_dir", "judge", "critic", "defender", "attacker")
    ]
    small = (
        st.none() | st.booleans() | st.integers(-3, 50) | st.text(max_size=8) | st.lists(st.integers(0, 3))
    )
    if not names:
        return st.just({}) | st.dictionaries(st.text(max_size=6), small, max_size=2)
    return st.just({}) | st.dictionaries(st.sampled_from(names), small, max_size=3)


def fallback_options() -> st.SearchStrategy:
    small = (
        st.none() | st.integers(-3, 5) | st.sampled_from(["train", "test", "easy", "x"]) | st.text(max_size=4)
    )
    return st.just({}) | st.dictionaries(
        st.sampled_from(["task", "split", "difficulty", "nope"]), small, max_size=2
    )


seeds = (
    st.none()
    | st.integers(0, 3)
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([-1, 2**32, 2**64, 1.5, "3", True])
)

# Bodies no JSON client would send, by name (a name keeps a failing example readable).
RAW_BODIES = {
    "empty": b"",
    "truncated": b"{",
    "null": b"null",
    "array": b"[]",
    "string": b'"text"',
    "not utf-8": b"\xff\xfe\x00",
    "NaN and Infinity": b'{"action": NaN, "seed": Infinity}',
    "float overflow": b'{"seed": 1e400, "env": 1}',
    "nested 1,000 deep": b"[" * 1000 + b"]" * 1000,
    "action nested 100,000 deep": b'{"action": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "4,000 batch entries": b'{"steps": [' + b",".join([b'{"session": "x", "action": "look"}'] * 4000) + b"]}",
    "over the body limit": b"x" * (MAX_BODY + 1),
}

# Strings that trip parsers: regex backtracking, code injection, format strings, huge numbers.
RCE_MARKER = Path(tempfile.gettempdir()) / f"evol-fuzz-rce-{os.getpid()}"


class Labelled(str):
    """A long string shown by its label in a failing example."""

    label = ""

    def __repr__(self) -> str:
        return f"<{self.label}: {len(self)} characters>"


def labelled(label: str, text: str) -> Labelled:
    value = Labelled(text)
    value.label = label
    return value


def pathological_actions(longest: int) -> list[Labelled]:
    def fill(unit: str, tail: str = "") -> str:
        return (unit * (longest // len(unit) + 1))[: longest - len(tail)] + tail

    injected = f"__import__('os').system('touch {RCE_MARKER}')"
    repeated = {
        f"{unit!r}{' then ' + repr(tail) if tail else ''} to the limit": fill(unit, tail)
        for unit, tail in [
            ("a", ""),
            ("a", "!"),
            (" ", ""),
            ("1,", ""),
            ("1.1", ""),
            ("= ", "x"),
            ("answer: ", ""),
            ("The answer is 1 ", ""),
            ("\\boxed{", ""),
            ("{", ""),
            ('{"name": "', ""),
            ("search[", ""),
            ("click[", ""),
            ("(" * 50 + "x" + ")" * 50 + " ", ""),
        ]
    }
    named = {
        **repeated,
        "one past the limit": "a" * (longest + 1),
        "code in an answer": f"The answer is {injected}",
        "code in a boxed answer": f"\\boxed{{{injected}}}",
        "code in a tool argument": f'{{"name": "get_weather", "arguments": {{"city": {injected}}}}}',
        "dict literal argument": "get_weather(city={[]: 1})",
        "power tower": "The answer is 9**9**9**9",
        "lambda": "The answer is (lambda: 1)()",
        "dunder chain": "The answer is ().__class__.__bases__[0].__subclasses__()",
        "format string": "The answer is {0.__class__}",
        "huge exponent": "The answer is 1e999999",
        "control characters": "\x00\ud7ff\ufffd",
    }
    return [labelled(label, text) for label, text in named.items()]


def plausible_actions(env_id: str) -> list[str]:
    """A few well-formed actions per family, so episodes get past their first turn."""
    return {
        "evol/BabyAI-v0": ["turn left", "turn right", "move forward", "pickup", "toggle"],
        "evol/Maze-v0": ["move up", "move down", "move left", "move right"],
        "evol/Wordle-v0": ["SLATE", "CRANE", "AAAAA", "slate"],
        "evol/WebShop-v0": ["search[shoes]", "click[1]", "click[buy now]", "click[back to search]"],
        "evol/TextCraft-v0": ["inventory", "get 1 oak log", "craft 4 oak planks using 1 oak log"],
        "evol/ToolUse-v0": ['{"name": "finish", "arguments": {"answer": "1"}}', "finish(answer=1)"],
        "evol/ChartQA-v0": ["Answer: 1", "Answer: Espresso"],
        "evol/Sycophancy-v0": ["Answer: A", "Answer: C"],
    }.get(env_id, ["look", "inventory", "The answer is 42", "Answer: 1"])


def batch_entry(
    sessions: list[str], action: st.SearchStrategy, reset: st.SearchStrategy
) -> st.SearchStrategy:
    sid = st.sampled_from(sessions) if sessions else st.text(max_size=8)
    return st.one_of(
        st.builds(lambda s, a: {"session": s, "action": a}, sid, action),
        st.builds(lambda s, r: {"session": s, "reset": r}, sid, reset),
        st.builds(lambda s: {"session": s, "reset": {}, "action": "look"}, sid),
        st.builds(lambda s, a: {"session": s, "action": a}, st.text(max_size=8), action),
        json_values,
    )


# ---- the state machine ----------------------------------------------------------------------


def check_answer(answer: requests.Response, reproduce: str) -> None:
    """The invariants every answer keeps: below 500, errors in the contract's shape."""
    status = answer.status_code
    problems = []
    if status >= 500:
        problems.append(f"{status} {answer.text[:200]!r}")
    elif status >= 400 and answer.request.method != "HEAD":
        try:
            error = answer.json()["error"]
            kind, message = error["type"], error["message"]
        except (ValueError, KeyError, TypeError):
            kind, message = None, None
            problems.append(f"{status} error not in the contract's JSON shape: {answer.text[:200]!r}")
        allowed = set(ERROR_TYPES.get(status, ())) | EXTRA_ERROR_TYPES.get(status, set())
        if kind is not None and (kind not in allowed or not isinstance(message, str)):
            problems.append(f"{status} with error type {kind!r}")
        if "Traceback" in answer.text or re.search(r"\.py\b", answer.text):
            problems.append(f"{status} shows server code: {answer.text[:200]!r}")
        if status == 405 and "Allow" not in answer.headers:
            problems.append("405 without Allow")
        if status in (429, 503) and "Retry-After" not in answer.headers:
            problems.append(f"{status} without Retry-After")
    for problem in problems:
        report(f"{problem} <- {reproduce}")


def report(problem: str) -> None:
    """Fail now, or with EVOL_FUZZ_KEEP_GOING collect it for the end of the test."""
    if not KEEP_GOING:
        raise AssertionError(problem)
    FOUND.append(problem)


def session_machine(env_id: str, url: str) -> type[RuleBasedStateMachine]:
    spec = envs.env_spec(env_id)
    longest = int(spec["max_action_length"])
    kwargs = declared_or_broken(spec.get("kwargs_schema"), fallback_kwargs(env_id))
    options = declared_or_broken(spec.get("options_schema"), fallback_options())
    resets = st.fixed_dictionaries({}, optional={"seed": seeds, "options": options}) | json_values
    actions = st.one_of(
        st.sampled_from(plausible_actions(env_id)),
        st.sampled_from(plausible_actions(env_id)),
        st.text(max_size=40),
        st.sampled_from(pathological_actions(longest)),
        json_values.filter(lambda v: not isinstance(v, str)),
    )

    class FuzzedSessions(RuleBasedStateMachine):
        """Live sessions of one env, driven by every kind of request a client can send."""

        def __init__(self) -> None:
            super().__init__()
            self.http = requests.Session()
            self.live: list[str] = []
            self.expert: dict[str, str] = {}

        def send(self, method: str, path: str, payload: Any = None, **kwargs: Any) -> requests.Response:
            headers = {**AUTH, **kwargs.pop("headers", {})}
            if payload is not None:
                kwargs["data"] = json.dumps(payload)
                headers.setdefault("Content-Type", "application/json")
            answer = self.http.request(method, url + path, headers=headers, timeout=60, **kwargs)
            shown = kwargs.get("data", b"")
            shown = shown if isinstance(shown, str) else shown[:120].decode("latin-1")
            check_answer(answer, f"{method} {path} {shown[:300]}")
            return answer

        def pick(self, data) -> str:
            return data.draw(st.sampled_from(self.live) if self.live else st.text(max_size=8), label="sid")

        @initialize(seed=st.integers(0, 3))
        def start_an_episode(self, seed: int) -> None:
            answer = self.send("POST", "/sessions", {"env": env_id})
            if answer.status_code == 201:
                self.live.append(answer.json()["session"])
                self.send("POST", f"/sessions/{self.live[-1]}/reset", {"seed": seed})

        @rule(kwargs=kwargs)
        def create(self, kwargs: Any) -> None:
            if len(self.live) >= 3:
                return
            answer = self.send("POST", "/sessions", {"env": env_id, "kwargs": kwargs})
            if answer.status_code == 201:
                self.live.append(answer.json()["session"])

        @rule(data=st.data(), body=resets)
        def reset(self, data, body: Any) -> None:
            self.send("POST", f"/sessions/{self.pick(data)}/reset", body)

        @rule(data=st.data(), moves=st.lists(st.tuples(actions, st.booleans()), min_size=1, max_size=4))
        def step(self, data, moves: list[tuple[Any, bool]]) -> None:
            sid = self.pick(data)
            for action, follow_expert in moves:
                if follow_expert and sid in self.expert:
                    action = self.expert.pop(sid)
                answer = self.send("POST", f"/sessions/{sid}/step", {"action": action})
                if answer.status_code == 200 and follow_expert:
                    expert = self.send("POST", f"/sessions/{sid}/expert")
                    if expert.status_code == 200:
                        self.expert[sid] = expert.json()["action"]

        @rule(data=st.data())
        def ask_expert(self, data) -> None:
            sid = self.pick(data)
            answer = self.send("POST", f"/sessions/{sid}/expert")
            if answer.status_code == 200:
                self.expert[sid] = answer.json()["action"]

        @rule(data=st.data())
        def delete(self, data) -> None:
            sid = self.pick(data)
            self.send("DELETE", f"/sessions/{sid}")
            if sid in self.live:
                self.live.remove(sid)

        @rule(data=st.data())
        def batch(self, data) -> None:
            entries = data.draw(st.lists(batch_entry(self.live, actions, resets), max_size=6), label="steps")
            answer = self.send("POST", "/step", {"steps": entries})
            if answer.status_code == 200:
                results = answer.json()["results"]
                assert len(results) == len(entries)
                for entry, result in zip(entries, results):
                    assert result["status"] < 500, f"batch entry {entry!r} -> {result!r}"

        @rule(
            path=st.sampled_from(["/sessions", "/step", "/sessions/{sid}/reset", "/sessions/{sid}/step"]),
            body=st.sampled_from(sorted(RAW_BODIES)),
            content_type=st.sampled_from(
                [
                    "application/json",
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    None,
                    "application/json; charset=latin-1",
                ]
            ),
            data=st.data(),
        )
        def raw_body(self, path: str, body: str, content_type: str | None, data) -> None:
            headers = {"Content-Type": content_type} if content_type else {}
            self.send("POST", path.format(sid=self.pick(data)), data=RAW_BODIES[body], headers=headers)

        @rule(
            data=st.data(),
            content_type=st.sampled_from(
                ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
            ),
        )
        def json_under_another_content_type(self, data, content_type: str) -> None:
            body = json.dumps({"env": env_id, "action": "look", "steps": []}).encode()
            path = data.draw(st.sampled_from(["/sessions", "/step", f"/sessions/{self.pick(data)}/step"]))
            answer = self.send("POST", path, data=body, headers={"Content-Type": content_type})
            expected = {415} if path in ("/sessions", "/step") else {415, 404, 405}  # 404/405: no such sid
            if answer.status_code not in expected:
                report(f"{answer.status_code}, not 415 <- POST {path} with JSON as {content_type}")

        @rule(
            header=st.sampled_from(
                [
                    None,
                    "",
                    "Bearer",
                    "Bearer ",
                    "Bearer wrong",
                    f"Basic {TOKEN}",
                    f"Bearer {TOKEN}x",
                    f"bearer {TOKEN}",
                ]
            ),
            path=st.sampled_from(["/envs", "/openapi.json", "/sessions", "/step", "/health"]),
        )
        def tokens(self, header: str | None, path: str) -> None:
            headers = {"Authorization": header} if header is not None else {}
            answer = self.http.request(
                "GET" if path in ("/envs", "/openapi.json", "/health") else "POST",
                url + path,
                headers=headers,
                json={"steps": []} if path == "/step" else {"env": env_id},
                timeout=30,
            )
            check_answer(answer, f"{path} with Authorization {header!r}")
            if answer.status_code == 201:
                self.live.append(answer.json()["session"])
            accepted = header in (f"Bearer {TOKEN}", f"bearer {TOKEN}") or path == "/health"
            if accepted == (answer.status_code == 401):
                report(f"{answer.status_code} <- {path} with Authorization {header!r}")

        @rule(
            method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "POST"]),
            path=st.sampled_from(
                [
                    "/sessions",
                    "/step",
                    "/envs",
                    "/health",
                    "/nope",
                    "/sessions/{sid}/reset",
                    "/sessions/%2F..%2F",
                ]
            ),
            data=st.data(),
        )
        def methods_and_paths(self, method: str, path: str, data) -> None:
            self.send(method, path.format(sid=self.pick(data)))

        @invariant()
        def no_code_ran(self) -> None:
            assert not RCE_MARKER.exists(), "a client's action ran code on the server"

        def teardown(self) -> None:
            for sid in self.live:
                self.send("DELETE", f"/sessions/{sid}")
            self.http.close()

    FuzzedSessions.__name__ = f"FuzzedSessions[{env_id}]"
    return FuzzedSessions


@pytest.fixture(scope="module")
def fuzz_server():
    server = ServerProcess(envs.env_ids(), "--token", TOKEN, "--ttl", "60", "--env-kwargs", SMALL_WEBSHOP)
    server.health = HealthWatch(server.url)
    server.health.start()
    yield server
    server.health.stopped.set()
    server.stop()


@pytest.mark.parametrize("env_id", envs.env_ids())
def test_fuzzed_sessions_never_answer_a_server_error(env_id, fuzz_server):
    FOUND.clear()
    earlier = len(fuzz_server.health.problems)
    machine = session_machine(env_id, fuzz_server.url)
    examples, steps = MACHINE_SIZE.get(env_id, DEFAULT_MACHINE_SIZE)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples * SCALE,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            phases=[Phase.generate, Phase.shrink] if not KEEP_GOING else [Phase.generate],
            suppress_health_check=list(HealthCheck),
        ),
    )
    assert not FOUND, "server errors:\n" + "\n".join(sorted(set(FOUND)))
    unhealthy = fuzz_server.health.problems[earlier:]
    assert not unhealthy, "\n".join(sorted(set(unhealthy)))
    assert_healthy(fuzz_server.url)
