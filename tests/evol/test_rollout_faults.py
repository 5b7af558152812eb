"""Rollouts against servers that fail: killed and restarted, at capacity, dead, timing out.

Infrastructure faults are retried in fresh sessions; what still fails is written as a failed
attempt that a rerun runs again; env and agent faults are told apart from infra faults.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
import requests

from agents.base import AgentInput, SamplingParams
from agents.scripted import ExpertAgent
from envs.remote import (
    RemoteEnv,
    Reset,
    ServerBusy,
    ServerUnavailable,
    SessionLost,
    batch_call,
    batch_reset,
)
from evol.rollout import RolloutEngine, task_specs
from evol.trainers.data import select
from evol.trajectory import TrajectoryWriter, final_attempts, read_trajectories
from server.launch import free_port
from tests.conftest import ROOT, ServerProcess

COUNTER = "acme/Counter-v0"
WORKERS = ("--workers", "1")


@pytest.fixture
def launch():
    """`launch(*flags, port=None)`: a Counter server (on `port` to restart one); all stopped after."""
    started: list[ServerProcess] = []

    def start(*flags: str, port: int | None = None) -> ServerProcess:
        server = ServerProcess([COUNTER], *WORKERS, *flags, port=port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def rollout(out, url: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "evol.cli", "rollout", "--env", COUNTER, "--agent", "expert",
            "--url", url, "--out", str(out), *flags]  # fmt: skip


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def written(path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_rollout_finishes_every_episode_when_its_server_is_killed_and_restarted(launch, tmp_path):
    server = launch()
    out = tmp_path / "rollout.jsonl"
    command = rollout(out, server.url, "--episodes", "50", "--samples", "3", "--concurrency", "8",
                      "--retries", "8", "--backoff", "0.3")  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and written(out) < 30:
        time.sleep(0.02)
    server.kill()  # SIGKILL, mid-run
    assert process.poll() is None and written(out) < 150, "the server must die mid-run"
    time.sleep(0.5)
    launch(port=server.port)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert (
        "faults: 0 infra, 0 env, 0 agent" in stdout
        and "episode restarts after infrastructure faults" in stdout
    )
    rows = lines(out)
    assert len(rows) == len({row["key"] for row in rows}) == 150
    assert all(row["success"] and row["fault"] is None and row["error"] is None for row in rows)


def test_rollout_runs_within_a_server_capacity_smaller_than_its_concurrency(launch, tmp_path):
    server = launch("--capacity", "2")
    out = tmp_path / "rollout.jsonl"
    answer = subprocess.run(rollout(out, server.url, "--episodes", "12", "--concurrency", "4", "--backoff", "0.2"),
                            cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    rows = lines(out)
    assert len(rows) == 12 and all(row["success"] for row in rows)


def test_remote_env_waits_out_a_server_at_capacity_as_retry_after_says(launch):
    server = launch("--capacity", "1")
    held = requests.post(f"{server.url}/sessions", json={"env": COUNTER}).json()["session"]
    with pytest.raises(ServerBusy) as caught:
        RemoteEnv(COUNTER, url=server.url, retries=0)
    assert caught.value.status == 429 and caught.value.retry_after == 1.0
    threading.Timer(1.5, lambda: requests.delete(f"{server.url}/sessions/{held}")).start()
    started = time.monotonic()
    env = RemoteEnv(COUNTER, url=server.url, backoff=0.05)  # Retry-After (1 s) outweighs the backoff
    waited = time.monotonic() - started
    assert 1.5 <= waited < 5
    assert env.reset(options={"task": 0})[0] == "Counter: 0. Target: 1."
    env.close()


def test_remote_env_resets_in_a_fresh_session_after_its_server_restarted(launch):
    server = launch()
    env, other = RemoteEnv(COUNTER, url=server.url), RemoteEnv(COUNTER, url=server.url)
    for remote in (env, other):
        remote.reset(options={"task": 1})
        remote.step("inc")
    old_session = env.session
    server.kill()
    with pytest.raises(ServerUnavailable):
        env.step("inc")
    launch(port=server.port)
    with pytest.raises(SessionLost):  # the episode cannot go on in a new server
        env.step("inc")
    with pytest.raises(SessionLost):
        env.step("inc")  # nor later: only a reset starts over
    observation, info = env.reset(options={"task": 1})
    assert observation == "Counter: 0. Target: 2." and env.session != old_session
    assert env.step("inc")[0] == "Counter: 1."
    # A batch reset does the same for a session it finds lost.
    (observation, info), step = batch_call([other, env], [Reset(options={"task": 0}), "inc"])
    assert observation == "Counter: 0. Target: 1." and step[0] == "Counter: 2."
    for remote in (env, other):
        remote.close()
    assert requests.get(f"{server.url}/health").json()["sessions"] == 0


def test_a_step_past_the_time_limit_loses_the_session_and_a_reset_starts_a_fresh_one(launch):
    server = launch("--step-timeout", "1")
    env = RemoteEnv(COUNTER, url=server.url)
    env.reset(options={"task": 0})
    with pytest.raises(SessionLost) as caught:
        env.step("wait 3")
    assert caught.value.infra and caught.value.status == 504
    assert env.reset(options={"task": 2})[0] == "Counter: 0. Target: 3."
    assert env.step("inc")[0] == "Counter: 1."
    env.close()


def test_batch_reset_starts_episodes_in_one_request_per_server(launch):
    first, second = launch(), launch()
    remote = [RemoteEnv(COUNTER, url=[first.url, second.url]) for _ in range(4)]
    answers = batch_reset(remote, [Reset(seed=k, options={"task": k}) for k in range(4)])
    assert [observation for observation, _ in answers] == [f"Counter: 0. Target: {k + 1}." for k in range(4)]
    results = batch_call(remote, ["inc", Reset(options={"task": 6}), "inc", "dec"])
    assert results[0][0] == "Counter: 1." and results[1][0] == "Counter: 0. Target: 7."
    assert results[3][0] == "Counter: -1."
    for env in remote:
        env.close()


def test_a_dead_server_ends_the_run_with_failed_attempts_that_a_rerun_completes(launch, tmp_path):
    port = free_port()
    out = tmp_path / "rollout.jsonl"
    command = rollout(out, f"http://127.0.0.1:{port}", "--episodes", "4", "--concurrency", "2",
                      "--retries", "1", "--backoff", "0.05")  # fmt: skip
    failed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    assert "4 of 4 episodes could not be completed" in failed.stderr and "rerunning" in failed.stderr
    assert "faults: 4 infra, 0 env, 0 agent" in failed.stdout
    rows = lines(out)
    assert len(rows) == 4 and all(row["fault"] == "infra" for row in rows)
    assert all(
        "cannot reach the env server" in row["error"] and "after 2 attempts" in row["error"] for row in rows
    )
    launch(port=port)
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert (
        "0 of 4 episodes are already in" in finished.stdout
        and "4 failed attempts are run again" in finished.stdout
    )
    trajectories = list(read_trajectories(out))
    assert len(trajectories) == 8
    final = final_attempts(trajectories)
    assert len(final) == 4 and all(t.completed and t.success for t in final)
    assert len(select(trajectories)) == 4, "training data leaves failed attempts out"
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and len(lines(out)) == 8, "nothing is left to run"


class FaultyAgent(ExpertAgent):
    """The expert, except: task 1 gets an action over the env's length limit, task 2 a crash of
    the env, and task 3's first attempt a step past the server's time limit."""

    def __init__(self):
        self.timed_out = False

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        replies = []
        for item in inputs:
            target = item.messages[1]["content"]
            if "Target: 2." in target:
                replies.append(["inc" * 1000])
            elif "Target: 3." in target:
                replies.append(["crash"])
            elif "Target: 4." in target and not self.timed_out:
                self.timed_out = True
                replies.append(["wait 5"])
            else:
                replies.append([item.env.expert_action()])
        return replies


def test_faults_are_told_apart_and_only_infra_faults_are_retried(launch, tmp_path):
    server = launch("--step-timeout", "1")
    engine = RolloutEngine(FaultyAgent(), concurrency=5, urls=[server.url], progress=False, backoff=0.05)
    path = tmp_path / "t.jsonl"
    with TrajectoryWriter(path) as writer:
        trajectories = {t.task["options"]["task"]: t for t in engine.run(task_specs([COUNTER], 5), writer)}
    engine.close()
    assert trajectories[1].fault == "agent" and "413" in trajectories[1].error
    assert trajectories[2].fault == "env" and "env_error" in trajectories[2].error
    assert trajectories[3].fault is None and trajectories[3].success, "restarted after the timeout"
    assert "wait 5" not in trajectories[3].actions, "the retry is a fresh episode"
    assert all(trajectories[k].success and trajectories[k].fault is None for k in (0, 4))
    assert engine.stats.faults == {"infra": 0, "env": 1, "agent": 1} and engine.stats.restarts >= 1
    assert engine.stats.episodes == 5
    reopened = TrajectoryWriter(path)
    assert reopened.failed == {trajectories[1].key, trajectories[2].key}
    assert reopened.done == {trajectories[k].key for k in (0, 3, 4)}
    reopened.close()
