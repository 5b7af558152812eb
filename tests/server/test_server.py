"""The HTTP API, provoked for real against `evol serve` subprocesses on loopback."""

from __future__ import annotations

import threading
import time

import gymnasium as gym
import pytest
import requests
from gymnasium.utils.env_checker import check_env

import envs
from envs.remote import RemoteEnv, RemoteEnvError, ServerUnavailable, batch_step

COUNTER = "acme/Counter-v0"


def new_session(url: str, env_id: str = COUNTER, headers: dict | None = None) -> str:
    answer = requests.post(f"{url}/sessions", json={"env": env_id}, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()["session"]


def error_of(response: requests.Response) -> str:
    return response.json()["error"]["type"]


@pytest.fixture(scope="module")
def server():
    from tests.conftest import ServerProcess

    process = ServerProcess([COUNTER, "evol/BabyAI-v0"], "--capacity", "6", "--step-timeout", "1")
    yield process
    process.stop()


def test_health_envs_and_openapi(server):
    health = requests.get(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["capacity"] == 6
    listed = {spec["id"]: spec for spec in requests.get(f"{server.url}/envs").json()}
    assert set(listed) == {COUNTER, "evol/BabyAI-v0"}
    assert listed[COUNTER]["max_turns"] == 12 and listed[COUNTER]["reward_range"] == [0.0, 1.0]
    assert "## Rewards" in listed[COUNTER]["card"]
    document = requests.get(f"{server.url}/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/sessions", "/sessions/{sid}/step", "/step", "/health"} <= set(document["paths"])


def test_episode_over_http(server):
    sid = new_session(server.url)
    reset = requests.post(
        f"{server.url}/sessions/{sid}/reset", json={"seed": 3, "options": {"task": 2}}
    ).json()
    assert reset["observation"] == "Counter: 0. Target: 3." and "instruction" in reset["info"]
    for _ in range(3):
        step = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "inc"}).json()
        assert step["reward"] == 0.0 and not step["terminated"]
    step = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "submit"}).json()
    assert step["terminated"] and step["reward"] == 1.0 and step["info"]["success"] is True
    assert requests.delete(f"{server.url}/sessions/{sid}").status_code == 204


@pytest.mark.parametrize(
    "body, kind",
    [
        (b"{not json", "malformed_body"),
        (b"[1, 2]", "malformed_body"),
        (b"{}", "missing_field"),
        (b'{"env": "nope/Missing-v0"}', "unknown_env"),
        (b'{"env": "acme/Counter-v0", "kwargs": {"max_turns": -1}}', "bad_env_kwargs"),
    ],
)
def test_bad_create_requests_answer_400(server, body, kind):
    answer = requests.post(f"{server.url}/sessions", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and error_of(answer) == kind


def test_bad_reset_and_step_bodies_answer_400(server):
    sid = new_session(server.url)
    answer = requests.post(f"{server.url}/sessions/{sid}/reset", json={"options": {"task": 10_000}})
    assert answer.status_code == 400 and error_of(answer) == "bad_options"
    answer = requests.post(f"{server.url}/sessions/{sid}/reset", json={"seed": "x"})
    assert answer.status_code == 400
    requests.post(f"{server.url}/sessions/{sid}/reset", json={})
    answer = requests.post(f"{server.url}/sessions/{sid}/step", json={"act": "inc"})
    assert answer.status_code == 400 and error_of(answer) == "missing_field"
    answer = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": 5})
    assert answer.status_code == 400
    requests.delete(f"{server.url}/sessions/{sid}")


def test_unknown_and_deleted_sessions_answer_404(server):
    answer = requests.post(f"{server.url}/sessions/feedface/step", json={"action": "inc"})
    assert answer.status_code == 404 and error_of(answer) == "unknown_session"
    sid = new_session(server.url)
    assert requests.delete(f"{server.url}/sessions/{sid}").status_code == 204
    assert requests.post(f"{server.url}/sessions/{sid}/reset", json={}).status_code == 404
    assert requests.delete(f"{server.url}/sessions/{sid}").status_code == 404


def test_step_before_reset_and_after_end_answer_409(server):
    sid = new_session(server.url)
    answer = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "inc"})
    assert answer.status_code == 409 and error_of(answer) == "reset_needed"
    requests.post(f"{server.url}/sessions/{sid}/reset", json={"options": {"task": 0}})
    requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "submit"})
    answer = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "inc"})
    assert answer.status_code == 409 and error_of(answer) == "episode_over"
    # A new reset makes the session usable again.
    assert requests.post(f"{server.url}/sessions/{sid}/reset", json={}).status_code == 200
    requests.delete(f"{server.url}/sessions/{sid}")


def test_too_large_body_and_action_answer_413(server):
    sid = new_session(server.url)
    requests.post(f"{server.url}/sessions/{sid}/reset", json={})
    answer = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "x" * (2 << 20)})
    assert answer.status_code == 413 and error_of(answer) == "too_large"
    answer = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "x" * 5000})
    assert answer.status_code == 413
    # The session is untouched: the turn counter did not move.
    step = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "inc"}).json()
    assert step["info"]["turn"] == 1
    requests.delete(f"{server.url}/sessions/{sid}")


def test_capacity_answers_429_then_recovers(server):
    held = [
        new_session(server.url) for _ in range(6 - requests.get(f"{server.url}/health").json()["sessions"])
    ]
    answer = requests.post(f"{server.url}/sessions", json={"env": COUNTER})
    assert answer.status_code == 429 and error_of(answer) == "at_capacity"
    assert int(answer.headers["Retry-After"]) >= 1
    requests.delete(f"{server.url}/sessions/{held.pop()}")
    held.append(new_session(server.url))
    for sid in held:
        requests.delete(f"{server.url}/sessions/{sid}")


def test_slow_step_answers_504_and_loses_the_session(server):
    sid = new_session(server.url)
    requests.post(f"{server.url}/sessions/{sid}/reset", json={})
    started = time.monotonic()
    answer = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "wait 3"})
    assert answer.status_code == 504 and error_of(answer) == "step_timeout"
    assert time.monotonic() - started < 2.5
    later = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "inc"})
    assert later.status_code == 410 and error_of(later) == "session_lost"


def test_concurrent_steps_on_one_session_never_interleave(server):
    sid = new_session(server.url)
    requests.post(f"{server.url}/sessions/{sid}/reset", json={"options": {"task": 6}})
    turns: list[int] = []

    def inc() -> None:
        turns.append(
            requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "inc"}).json()["info"]["turn"]
        )

    threads = [threading.Thread(target=inc) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(turns) == list(range(1, 11))
    final = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "submit"}).json()
    assert final["observation"] == "Submitted 10." and final["info"]["turn"] == 11
    requests.delete(f"{server.url}/sessions/{sid}")


def test_batch_step_mixes_results_and_errors(server):
    a, b = new_session(server.url), new_session(server.url)
    requests.post(f"{server.url}/sessions/{a}/reset", json={"options": {"task": 0}})
    steps = [
        {"session": a, "action": "inc"},
        {"session": b, "action": "inc"},
        {"session": "nope", "action": "inc"},
        {"session": a},
    ]
    results = requests.post(f"{server.url}/step", json={"steps": steps}).json()["results"]
    assert [r["status"] for r in results] == [200, 409, 404, 400]
    assert results[0]["observation"] == "Counter: 1."
    answer = requests.post(f"{server.url}/step", json={"steps": "inc"})
    assert answer.status_code == 400
    for sid in (a, b):
        requests.delete(f"{server.url}/sessions/{sid}")


def test_token_guards_every_route_but_health(start_server):
    server = start_server([COUNTER], "--token", "s3cret")
    assert requests.get(f"{server.url}/health").status_code == 200
    for method, path in [
        ("GET", "/envs"),
        ("GET", "/openapi.json"),
        ("POST", "/sessions"),
        ("POST", "/step"),
    ]:
        answer = requests.request(method, server.url + path, json={"env": COUNTER})
        assert answer.status_code == 401 and error_of(answer) == "unauthorized"
        wrong = requests.request(
            method, server.url + path, json={"env": COUNTER}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
    assert new_session(server.url, headers={"Authorization": "Bearer s3cret"})
    env = RemoteEnv(COUNTER, url=server.url, token="s3cret")
    env.reset(seed=0)
    env.close()
    with pytest.raises(RemoteEnvError) as caught:
        RemoteEnv(COUNTER, url=server.url, token="wrong")
    assert caught.value.status == 401


def test_token_from_environment_variable(start_server):
    server = start_server([COUNTER], env={"EVOL_TOKEN": "from-env"})
    assert requests.get(f"{server.url}/envs").status_code == 401
    assert requests.get(f"{server.url}/envs", headers={"Authorization": "Bearer from-env"}).status_code == 200


def test_reaper_frees_idle_sessions(start_server):
    server = start_server([COUNTER], "--ttl", "0.5")
    sid = new_session(server.url)
    assert requests.get(f"{server.url}/health").json()["sessions"] == 1
    time.sleep(1.5)
    assert requests.get(f"{server.url}/health").json()["sessions"] == 0
    assert requests.post(f"{server.url}/sessions/{sid}/reset", json={}).status_code == 404


def test_killed_server_gives_the_client_a_clear_error(start_server):
    server = start_server([COUNTER])
    env = RemoteEnv(COUNTER, url=server.url, retries=1)
    env.reset(seed=0, options={"task": 1})
    env.step("inc")
    server.kill()
    with pytest.raises(ServerUnavailable) as caught:
        env.step("inc")
    assert "cannot reach the env server" in str(caught.value) and server.url in str(caught.value)
    env.close()  # closing after the server died does not raise


def test_a_launched_server_ends_when_its_launcher_is_killed():
    """A trainer killed by SIGKILL leaves no env server behind."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    launcher = subprocess.Popen(
        [sys.executable, "-c", "from server.launch import LaunchedServer\n"
         "import sys, time\n"
         f"server = LaunchedServer([{COUNTER!r}])\n"
         "print(server.process.pid, server.url, flush=True)\n"
         "time.sleep(600)\n"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    pid, url = launcher.stdout.readline().split()
    assert requests.get(f"{url}/health", timeout=5).status_code == 200
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break  # exited; waits for its new parent to reap it
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.1)
    else:
        os.kill(int(pid), signal.SIGKILL)
        pytest.fail("the env server outlived the process that launched it")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/health", timeout=2)


def test_remote_env_passes_check_env_and_raises_server_errors(server):
    env = RemoteEnv(COUNTER, url=server.url)
    check_env(env, skip_render_check=True)
    with pytest.raises(envs.EpisodeStateError):
        fresh = RemoteEnv(COUNTER, url=server.url)
        try:
            fresh.step("inc")
        finally:
            fresh.close()
    with pytest.raises(RemoteEnvError) as caught:
        env.reset(options={"task": -1})
    assert caught.value.status == 400 and caught.value.type == "bad_options"
    env.close()


def test_remote_env_runs_under_gymnasium_wrappers(server):
    env = gym.wrappers.RecordEpisodeStatistics(gym.wrappers.TimeLimit(RemoteEnv(COUNTER, url=server.url), 3))
    env.reset(seed=0, options={"task": 6})
    for _ in range(3):
        *_, terminated, truncated, info = env.step("inc")
    assert truncated and not terminated and info["episode"]["l"] == 3
    env.close()


def test_remote_env_runs_in_gymnasium_vector_envs(server):
    vector = gym.vector.SyncVectorEnv([lambda: RemoteEnv(COUNTER, url=server.url) for _ in range(3)])
    observations, infos = vector.reset(seed=[0, 1, 2], options={"task": 0})
    assert list(observations) == ["Counter: 0. Target: 1."] * 3
    observations, rewards, terminated, truncated, infos = vector.step(["inc", "inc", "dec"])
    observations, rewards, terminated, truncated, infos = vector.step(["submit", "submit", "submit"])
    assert list(rewards) == [1.0, 1.0, 0.0] and all(terminated)
    vector.close()


def test_sessions_spread_over_several_servers_and_batch_step(start_server):
    first, second = start_server([COUNTER]), start_server([COUNTER])
    remote = [RemoteEnv(COUNTER, url=[first.url, second.url]) for _ in range(4)]
    assert {env.url for env in remote} == {first.url, second.url}
    for env in remote:
        env.reset(options={"task": 0})
    results = batch_step(remote, ["inc"] * 4)
    assert all(result[0] == "Counter: 1." for result in results)
    results = batch_step(remote, ["submit"] * 4)
    assert all(result[1] == 1.0 and result[2] for result in results)
    errors = batch_step(remote, ["inc"] * 4)
    assert all(isinstance(error, envs.EpisodeOver) for error in errors)
    for env in remote:
        env.close()
    assert requests.get(f"{first.url}/health").json()["sessions"] == 0


# ---- the layout: old import paths, the command line -------------------------------------
def test_old_client_and_wire_paths_are_the_env_side_modules():
    import envs.remote
    import envs.wire
    import server.client
    import server.wire

    assert (
        server.client.RemoteEnv is envs.remote.RemoteEnv
        and server.client.batch_call is envs.remote.batch_call
    )
    assert server.wire.to_wire is envs.wire.to_wire


def test_serve_flags_take_their_defaults_from_server_limits():
    import argparse

    from server.app import ServerLimits
    from server.serve import add_serve_arguments, limits_from_args

    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    assert limits_from_args(parser.parse_args([COUNTER])) == ServerLimits()
    args = parser.parse_args(
        [COUNTER, "--ttl", "0", "--max-worker-memory", "2", "--allowed-hosts", "a.example", "--capacity", "3"]
    )
    limits = limits_from_args(args)
    assert (limits.session_ttl, limits.max_worker_rss, limits.allowed_hosts) == (
        None,
        2 << 20,
        ("a.example",),
    )
    assert limits.capacity == 3 and args.envs == [COUNTER] and args.port == 8000
    assert "(default 256)" in parser.format_help()


def test_python_m_server_refuses_an_unknown_env():
    import subprocess
    import sys

    answer = subprocess.run(
        [sys.executable, "-m", "server", "nope/Missing-v0", "--port", "1"], capture_output=True, text=True
    )
    assert answer.returncode == 2 and "unknown env" in answer.stderr


def test_client_sees_a_server_restarted_with_other_envs_on_the_same_address(start_server):
    first = start_server(["evol/Maze-v0"])
    RemoteEnv("evol/Maze-v0", url=first.url).close()  # the client now knows what this address serves
    port = first.port
    first.stop()
    second = start_server([COUNTER], port=port)
    assert second.url == first.url
    env = RemoteEnv(COUNTER, url=second.url)
    observation, _ = env.reset(options={"task": 0})
    assert observation.startswith("Counter: 0.")
    env.close()
