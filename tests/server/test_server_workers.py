"""Env sessions in worker processes: a slow or killed worker ends only its own sessions,
memory-heavy workers are recycled, and the front refuses bad requests before any env sees them."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import requests

COUNTER = "acme/Counter-v0"


def create(url: str, env_id: str = COUNTER) -> str:
    answer = requests.post(f"{url}/sessions", json={"env": env_id})
    assert answer.status_code == 201, answer.text
    return answer.json()["session"]


def reset(url: str, sid: str, **body) -> requests.Response:
    return requests.post(f"{url}/sessions/{sid}/reset", json=body)


def step(url: str, sid: str, action: str) -> requests.Response:
    return requests.post(f"{url}/sessions/{sid}/step", json={"action": action})


def error_of(response: requests.Response) -> str:
    return response.json()["error"]["type"]


def workers_of(url: str) -> list[dict]:
    return [w for w in requests.get(f"{url}/health").json()["workers"]["detail"] if w["alive"]]


def wait_for_workers(url: str, count: int, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = workers_of(url)
        if len(alive) == count:
            return alive
        time.sleep(0.1)
    raise AssertionError(f"{count} workers not back within {timeout} s")


def pinned_pairs(url: str) -> tuple[list[str], list[str]]:
    """Four sessions on a two-worker server: two on each worker (sessions go to the least loaded)."""
    sids = [create(url) for _ in range(4)]
    for sid in sids:
        assert reset(url, sid, seed=0, options={"task": 1}).status_code == 200
    return sids[0::2], sids[1::2]


@pytest.fixture
def two_workers(start_server):
    return start_server([COUNTER, "evol/BabyAI-v0"], "--workers", "2", "--step-timeout", "2")


def test_health_reports_workers(two_workers):
    health = requests.get(f"{two_workers.url}/health").json()
    assert health["status"] == "ok"
    assert health["workers"]["workers"] == 2 and health["workers"]["alive"] == 2
    assert len({w["pid"] for w in health["workers"]["detail"]}) == 2


def test_slow_call_is_killed_without_touching_the_other_worker(two_workers):
    url = two_workers.url
    (slow, neighbour), (other, other2) = pinned_pairs(url)
    answers = {}
    thread = threading.Thread(target=lambda: answers.setdefault("slow", step(url, slow, "wait 30")))
    thread.start()
    time.sleep(0.3)
    # The other worker keeps answering at once while the slow call runs.
    started = time.monotonic()
    for _ in range(10):  # the Counter episode has 12 turns
        assert step(url, other, "inc").status_code == 200
    assert time.monotonic() - started < 1.5
    thread.join(10)
    assert answers["slow"].status_code == 504 and error_of(answers["slow"]) == "step_timeout"
    # The slow session's worker was replaced: its sessions are lost, with a clear type.
    for sid in (slow, neighbour):
        lost = step(url, sid, "inc")
        assert lost.status_code == 410 and error_of(lost) == "session_lost"
    assert step(url, other2, "inc").status_code == 200
    wait_for_workers(url, 2)
    fresh = create(url)
    assert reset(url, fresh).status_code == 200 and step(url, fresh, "inc").status_code == 200
    assert requests.get(f"{url}/health").json()["workers"]["replaced"] == 1


def test_worker_killed_mid_step_loses_only_its_sessions(two_workers):
    url = two_workers.url
    (victim, neighbour), (other, _) = pinned_pairs(url)
    pids = {w["pid"] for w in workers_of(url)}
    answers = {}
    thread = threading.Thread(target=lambda: answers.setdefault("victim", step(url, victim, "wait 1.5")))
    thread.start()
    time.sleep(0.4)
    busy = [w for w in workers_of(url) if w["busy"]]
    assert len(busy) == 1
    os.kill(busy[0]["pid"], signal.SIGKILL)
    thread.join(10)
    assert answers["victim"].status_code == 410 and error_of(answers["victim"]) == "session_lost"
    assert error_of(step(url, neighbour, "inc")) == "session_lost"
    assert step(url, other, "inc").status_code == 200
    alive = wait_for_workers(url, 2)
    assert len({w["pid"] for w in alive} - pids) == 1


def test_batch_carries_resets_and_steps_across_workers(two_workers):
    url = two_workers.url
    (a, b), (c, d) = pinned_pairs(url)
    entries = [
        {"session": a, "action": "inc"},
        {"session": c, "reset": {"seed": 1, "options": {"task": 2}}},
        {"session": b, "reset": {}},
        {"session": d, "action": "submit"},
        {"session": "nope", "action": "inc"},
        {"session": a, "action": "inc", "reset": {}},
        {"session": a, "reset": {"seed": -1}},
    ]
    results = requests.post(f"{url}/step", json={"steps": entries}).json()["results"]
    assert [r["status"] for r in results] == [200, 200, 200, 200, 404, 400, 400]
    assert results[0]["observation"] == "Counter: 1." and "reward" in results[0]
    assert results[1]["observation"].startswith("Counter: 0.") and "instruction" in results[1]["info"]
    assert results[3]["terminated"] is True


def test_worker_over_its_memory_limit_is_recycled_once_idle(start_server):
    server = start_server([COUNTER], "--workers", "1", "--max-worker-memory", "1")
    url = server.url
    first = workers_of(url)[0]["pid"]
    sid = create(url)
    assert reset(url, sid).status_code == 200
    assert requests.delete(f"{url}/sessions/{sid}").status_code == 204
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = workers_of(url)
        if alive and alive[0]["pid"] != first:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the worker was not recycled")
    sid = create(url)
    assert reset(url, sid).status_code == 200 and step(url, sid, "inc").status_code == 200


def test_front_refuses_what_no_env_should_see(start_server):
    url = start_server([COUNTER], "--workers", "1").url
    sid = create(url)
    # Negative and huge seeds, non-object options.
    for body in ({"seed": -1}, {"seed": 2**70}, {"seed": "1"}, {"options": [1]}, {"sed": 1}):
        answer = reset(url, sid, **body)
        assert answer.status_code == 400, (body, answer.text)
    # JSON nested a thousand levels, and non-JSON content types.
    deep = "[" * 1000 + "]" * 1000
    answer = requests.post(f"{url}/step", data=deep, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and error_of(answer) == "malformed_body"
    nested = '{"steps": ' + "[" * 100 + "]" * 100 + "}"
    answer = requests.post(f"{url}/step", data=nested, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    answer = requests.post(
        f"{url}/sessions", data='{"env": "acme/Counter-v0"}', headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 415 and error_of(answer) == "unsupported_media_type"
    # 405 says what is allowed.
    answer = requests.get(f"{url}/sessions/{sid}/step")
    assert answer.status_code == 405 and "POST" in answer.headers["Allow"]


def test_expert_before_reset_and_after_the_end_answers_409(start_server):
    url = start_server([COUNTER, "evol/ToolUse-v0"], "--workers", "1").url
    for env_id in (COUNTER, "evol/ToolUse-v0"):
        sid = create(url, env_id)
        answer = requests.post(f"{url}/sessions/{sid}/expert")
        assert answer.status_code == 409 and error_of(answer) == "reset_needed", answer.text
    sid = create(url)
    reset(url, sid, options={"task": 0})
    while True:
        action = requests.post(f"{url}/sessions/{sid}/expert").json()["action"]
        if step(url, sid, action).json()["terminated"]:
            break
    answer = requests.post(f"{url}/sessions/{sid}/expert")
    assert answer.status_code == 409 and error_of(answer) == "episode_over"


def test_env_exception_is_a_generic_500_without_internals(start_server):
    url = start_server([COUNTER], "--workers", "1").url
    sid = create(url)
    reset(url, sid)
    answer = step(url, sid, "crash")
    assert answer.status_code == 500 and error_of(answer) == "env_error"
    assert "Traceback" not in answer.text and "/" not in answer.json()["error"]["message"]
    assert step(url, sid, "inc").status_code in (200, 409)


def test_host_header_and_bearer_scheme(start_server):
    url = start_server(
        [COUNTER], "--workers", "1", "--token", "s3cret", "--allowed-hosts", "envs.internal"
    ).url
    good = {"Authorization": "Bearer s3cret"}
    for scheme in ("Bearer", "bearer", "BEARER"):
        answer = requests.get(f"{url}/envs", headers={"Authorization": f"{scheme} s3cret"})
        assert answer.status_code == 200, scheme
    assert requests.get(f"{url}/envs", headers={"Authorization": "Basic s3cret"}).status_code == 401
    # A name that is not this server's (DNS rebinding) is refused; IP literals and listed names pass.
    for host, status in (
        ("evil.example:80", 403),
        ("localhost:1", 200),
        ("envs.internal", 200),
        ("127.0.0.1", 200),
        ("[::1]:9", 200),
    ):
        answer = requests.get(f"{url}/envs", headers={**good, "Host": host})
        assert answer.status_code == status, host
    document = requests.get(f"{url}/openapi.json", headers=good).json()
    assert "bearer" in str(document["components"]).lower()
