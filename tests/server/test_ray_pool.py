"""`evol serve --ray ADDRESS`: env workers as Ray actors on a two-node local cluster on loopback.
A client sees the same API and errors as with local worker processes: the HTTP tests of
test_server.py run again here against a --ray server, and a killed actor or a call past the
time limit ends only its own sessions while Ray brings the capacity back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install 'evolgym[ray]'")

from ray_cluster import running_cluster  # noqa: E402
from test_server import (  # noqa: E402,F401 (the API's own tests, run against a --ray server)
    test_batch_step_mixes_results_and_errors,
    test_concurrent_steps_on_one_session_never_interleave,
    test_episode_over_http,
    test_health_envs_and_openapi,
    test_slow_step_answers_504_and_loses_the_session,
    test_step_before_reset_and_after_end_answer_409,
    test_unknown_and_deleted_sessions_answer_404,
)
from test_server_workers import (  # noqa: E402
    COUNTER,
    create,
    error_of,
    pinned_pairs,
    reset,
    step,
    wait_for_workers,
    workers_of,
)

from server.launch import free_port  # noqa: E402

BABYAI = "evol/BabyAI-v0"


@pytest.fixture(scope="module")
def server(ray_cluster):
    """What test_server.py's tests expect (capacity 6, a 1 s step limit), its workers on Ray."""
    from tests.conftest import ServerProcess

    process = ServerProcess(
        [COUNTER, BABYAI], "--ray", ray_cluster, "--workers", "2", "--capacity", "6", "--step-timeout", "1"
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def ray_server(ray_cluster):
    """Two env actors with a 3 s step limit: room for a call to be caught mid-step."""
    from tests.conftest import ServerProcess

    process = ServerProcess([COUNTER, BABYAI], "--ray", ray_cluster, "--workers", "2", "--step-timeout", "3")
    yield process
    process.stop()


def test_babyai_episode_with_the_expert_and_health_lists_actors_per_node(ray_server):
    url = ray_server.url
    sid = create(url, BABYAI)
    observation = reset(url, sid, seed=1).json()
    assert observation["info"]["instruction"]
    for _ in range(64):
        action = requests.post(f"{url}/sessions/{sid}/expert").json()["action"]
        result = step(url, sid, action).json()
        if result["terminated"] or result["truncated"]:
            break
    assert result["terminated"] and result["info"]["success"] is True
    assert requests.delete(f"{url}/sessions/{sid}").status_code == 204
    health = requests.get(f"{url}/health").json()
    assert health["status"] == "ok"
    nodes = health["workers"]["nodes"]
    assert sum(node["actors"] for node in nodes) == 2 and all(node["address"] for node in nodes)
    assert len(nodes) == 2  # placed by Ray with SPREAD: one actor on each node of the cluster
    assert {w["node"] for w in health["workers"]["detail"]} == {node["node"] for node in nodes}


def test_killed_actor_mid_step_loses_only_its_sessions_and_ray_restarts_it(ray_server):
    url = ray_server.url
    wait_for_workers(url, 2)
    (victim, neighbour), (other, other2) = pinned_pairs(url)
    answers = {}
    thread = threading.Thread(target=lambda: answers.setdefault("victim", step(url, victim, "wait 2")))
    thread.start()
    time.sleep(0.5)
    busy = [w for w in workers_of(url) if w["busy"]]
    assert len(busy) == 1
    replaced = requests.get(f"{url}/health").json()["workers"]["replaced"]
    os.kill(busy[0]["pid"], signal.SIGKILL)  # the actor's process, on this machine's local cluster
    thread.join(10)
    assert answers["victim"].status_code == 410 and error_of(answers["victim"]) == "session_lost"
    assert error_of(step(url, neighbour, "inc")) == "session_lost"
    assert step(url, other, "inc").status_code == 200
    alive = wait_for_workers(url, 2, timeout=60)
    assert busy[0]["pid"] not in {w["pid"] for w in alive}
    assert requests.get(f"{url}/health").json()["workers"]["replaced"] == replaced + 1
    fresh = create(url)
    assert reset(url, fresh).status_code == 200 and step(url, fresh, "inc").status_code == 200
    for sid in (other, other2, fresh):
        requests.delete(f"{url}/sessions/{sid}")


def test_step_past_the_time_limit_answers_504_and_capacity_comes_back(server):
    url = server.url
    wait_for_workers(url, 2, timeout=60)
    replaced = requests.get(f"{url}/health").json()["workers"]["replaced"]
    sid = create(url)
    assert reset(url, sid).status_code == 200
    started = time.monotonic()
    answer = step(url, sid, "wait 5")
    assert answer.status_code == 504 and error_of(answer) == "step_timeout"
    assert time.monotonic() - started < 3
    assert error_of(step(url, sid, "inc")) == "session_lost"
    wait_for_workers(url, 2, timeout=60)
    assert requests.get(f"{url}/health").json()["workers"]["replaced"] == replaced + 1
    fresh = create(url)
    assert reset(url, fresh).status_code == 200 and step(url, fresh, "inc").status_code == 200
    requests.delete(f"{url}/sessions/{fresh}")


@pytest.mark.parametrize(
    "address, message",
    [
        (lambda: f"127.0.0.1:{free_port()}", "cannot reach the Ray cluster at 127.0.0.1:"),
        (lambda: "no-port-here", "give HOST:PORT of the cluster's head"),
    ],
    ids=["unreachable", "malformed"],
)
def test_bad_ray_address_exits_at_once_with_a_clear_message(address, message):
    command = [sys.executable, "-m", "evol.cli", "serve", COUNTER, "--port", str(free_port())]
    started = time.monotonic()
    done = subprocess.run([*command, "--ray", address()], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and message in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 30


def test_lost_node_ends_only_its_sessions_and_ray_restarts_its_actor_on_a_live_node(ray_server):
    url = ray_server.url
    cluster = running_cluster()
    wait_for_workers(url, 2, timeout=60)
    sessions = [create(url) for _ in range(4)]
    for sid in sessions:
        assert reset(url, sid).status_code == 200
    detail = {w["slot"]: w for w in workers_of(url)}
    # Sessions go to the least loaded worker, in slot order: slot 0 got sessions 0 and 2.
    nodes = {slot: cluster.node_of(w["pid"]) for slot, w in detail.items()}
    assert sorted(nodes.values())[0] == 0 and len(set(nodes.values())) == 2  # SPREAD: one per node
    lost_slot = next(slot for slot, node in nodes.items() if node != 0)
    lost, kept = sessions[lost_slot::2], sessions[1 - lost_slot :: 2]
    cluster.kill_node(nodes[lost_slot])
    replacement_added = False
    try:
        for sid in lost:
            answer = step(url, sid, "inc")
            assert answer.status_code == 410 and error_of(answer) == "session_lost"
        for sid in kept:
            assert step(url, sid, "inc").status_code == 200
        # The cluster is full without that node (the other module server holds the rest): a
        # node joins, as a replacement machine would, and Ray restarts the lost actor there.
        cluster.add_node()
        replacement_added = True
        alive = wait_for_workers(url, 2, timeout=60)
        assert nodes[lost_slot] not in {cluster.node_of(w["pid"]) for w in alive}
        fresh = create(url, BABYAI)
        assert reset(url, fresh, seed=3).status_code == 200
        assert requests.post(f"{url}/sessions/{fresh}/expert").status_code == 200
        for sid in [*kept, fresh]:
            requests.delete(f"{url}/sessions/{sid}")
    finally:
        if not replacement_added:
            cluster.add_node()  # the tests after this one find two nodes again


def test_workers_zero_on_a_cluster_means_as_many_as_its_live_nodes_hold():
    from server.ray_pool import cluster_fits, worker_resources

    node = {"Alive": True, "Resources": {"CPU": 32.0, "memory": 64.0 * 2**30}}
    nodes = [node, {**node, "Resources": {"CPU": 2.0, "memory": 64.0 * 2**30}}, {**node, "Alive": False}]
    assert cluster_fits(nodes, worker_resources([BABYAI])) == 34  # one CPU each; the dead node counts none
    # SciWorld's JVM: 2 GiB each, so a node's memory bounds it before its CPUs do
    small = [{"Alive": True, "Resources": {"CPU": 32.0, "memory": 8.0 * 2**30}}]
    assert cluster_fits(small, worker_resources([BABYAI, "evol/SciWorld-v0"])) == 4
