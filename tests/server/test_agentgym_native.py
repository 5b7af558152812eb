"""The native API refuses fields it does not take (400, naming them) instead of ignoring them: an
AgentGym-shaped body (`data_idx`, `id`) or a misspelt field never gives a random task or a silent
default. Reset and step, single and batch, and session creation."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import ServerProcess

COUNTER = "acme/Counter-v0"


@pytest.fixture(scope="module")
def url():
    server = ServerProcess([COUNTER, "evol/BabyAI-v0"], "--workers", "1")
    yield server.url
    server.stop()


def session(url: str, env_id: str = COUNTER) -> str:
    answer = requests.post(f"{url}/sessions", json={"env": env_id}, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()["session"]


def refused(answer: requests.Response | dict, *names: str) -> None:
    body = answer if isinstance(answer, dict) else answer.json()
    status = body.get("status") if isinstance(answer, dict) else answer.status_code
    assert status == 400, body
    assert body["error"]["type"] == "bad_request" and "unknown" in body["error"]["message"]
    assert all(repr(name) in body["error"]["message"] for name in names), body


@pytest.mark.parametrize(
    "body, names",
    [
        ({"data_idx": 3}, ["data_idx"]),  # AgentGym's reset key
        ({"id": 0, "data_idx": 3}, ["data_idx", "id"]),  # AgentGym's whole reset body
        ({"seeds": 3}, ["seeds"]),
        ({"seed": 3, "option": {"task": 2}}, ["option"]),
        ({"options": {"task": 2}, "task": 2}, ["task"]),
    ],
)
def test_reset_refuses_unknown_fields(url, body, names):
    sid = session(url)
    refused(requests.post(f"{url}/sessions/{sid}/reset", json=body, timeout=30), *names)
    refused(
        requests.post(f"{url}/step", json={"steps": [{"session": sid, "reset": body}]}, timeout=30).json()[
            "results"
        ][0],
        *names,
    )


def test_options_refuse_agentgym_keys_too(url):
    sid = session(url, "evol/BabyAI-v0")
    answer = requests.post(f"{url}/sessions/{sid}/reset", json={"options": {"data_idx": 3}}, timeout=30)
    assert answer.status_code == 400 and "data_idx" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    "body, names",
    [
        ({"action": "inc", "id": 0}, ["id"]),  # AgentGym's step body
        ({"action": "inc", "env": COUNTER}, ["env"]),
        ({"action": "inc", "actions": ["inc"]}, ["actions"]),
    ],
)
def test_step_refuses_unknown_fields_and_the_env_does_not_move(url, body, names):
    sid = session(url)
    requests.post(f"{url}/sessions/{sid}/reset", json={"options": {"task": 2}}, timeout=30)
    refused(requests.post(f"{url}/sessions/{sid}/step", json=body, timeout=30), *names)
    entry = {"session": sid, **body}
    refused(requests.post(f"{url}/step", json={"steps": [entry]}, timeout=30).json()["results"][0], *names)
    step = requests.post(f"{url}/sessions/{sid}/step", json={"action": "inc"}, timeout=30).json()
    assert step["observation"].startswith("Counter: 1.") and step["info"]["turn"] == 1


def test_batch_refuses_unknown_top_level_fields_and_keeps_good_entries(url):
    sid = session(url)
    refused(requests.post(f"{url}/step", json={"steps": [], "id": 0}, timeout=30), "id")
    refused(
        requests.post(f"{url}/step", json={"step": [{"session": sid, "action": "inc"}]}, timeout=30), "step"
    )
    mixed = requests.post(
        f"{url}/step",
        json={
            "steps": [{"session": sid, "reset": {"seed": 1}}, {"session": sid, "reset": {}, "data_idx": 4}]
        },
        timeout=30,
    ).json()["results"]
    assert mixed[0]["status"] == 200
    refused(mixed[1], "data_idx")


@pytest.mark.parametrize(
    "body, names",
    [
        ({"env": COUNTER, "kwarg": {"max_turns": 3}}, ["kwarg"]),
        ({"env": COUNTER, "id": 0}, ["id"]),
        ({"env": COUNTER, "kwargs": {}, "options": {"task": 1}}, ["options"]),
    ],
)
def test_session_creation_refuses_unknown_fields(url, body, names):
    refused(requests.post(f"{url}/sessions", json=body, timeout=30), *names)
