"""Exploration on Ray: `evol rollout|eval --ray`, the loop's `ray:` and RayRolloutEngine, on a
two-node local Ray cluster on loopback (tests/ray_cluster.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agents import load_agent
from agents.base import SamplingParams
from agents.scripted import RandomAgent
from evol.cli import main
from evol.rollout import RolloutEngine, task_specs
from evol.runs import run_specs

BABYAI = "evol/BabyAI-v0"


@pytest.fixture(scope="module")
def ray_address(ray_cluster):
    """This test process connected to the cluster (the commands run in-process reuse it)."""
    import ray

    ray.init(address=ray_cluster, log_to_driver=False, logging_level="ERROR")
    yield ray_cluster
    ray.shutdown()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def evol(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evol.cli", *args], capture_output=True, text=True, timeout=120, env=os.environ
    )


def test_rollout_on_ray_writes_the_episodes_the_local_engine_writes_and_a_rerun_resumes(
    ray_address, tmp_path
):
    out = tmp_path / "ray.jsonl"
    args = ["rollout", "--env", BABYAI, "--episodes", "12", "--agent", "expert", "--out", str(out)]
    assert main([*args, "--ray", ray_address]) == 0
    local = tmp_path / "local.jsonl"
    engine = RolloutEngine(load_agent("expert"), agent_name="expert", progress=False)
    run_specs(engine, task_specs([BABYAI], 12, split="train"), local)
    ray_rows, local_rows = lines(out), lines(local)
    assert len(ray_rows) == 12 and all(row["success"] and row["fault"] is None for row in ray_rows)
    by_key = {row["key"]: row for row in local_rows}
    assert sorted(by_key) == sorted(row["key"] for row in ray_rows)
    for row in ray_rows:
        assert row["actions"] == by_key[row["key"]]["actions"] and row["agent"] == "expert"
    assert main([*args, "--episodes", "14", "--ray", ray_address]) == 0
    rows = lines(out)
    assert len(rows) == 14 and len({row["key"] for row in rows}) == 14  # only the 2 new ones ran


def test_rollout_on_ray_steps_a_served_env_from_the_actors(ray_address, start_server, tmp_path):
    server = start_server([BABYAI])
    out = tmp_path / "served.jsonl"
    status = main(
        ["rollout", "--env", BABYAI, "--episodes", "12", "--agent", "expert", "--out", str(out),
         "--url", server.url, "--ray", ray_address, "--ray-actors", "2"]
    )  # fmt: skip
    assert status == 0
    rows = lines(out)
    assert len(rows) == 12 and all(row["success"] for row in rows)
    import requests

    assert requests.get(f"{server.url}/health", timeout=5).json()["sessions"] == 0  # actors closed theirs


def test_eval_on_ray_reports_the_test_tasks(ray_address, tmp_path):
    answer = evol("eval", "--env", BABYAI, "--episodes", "4", "--agent", "expert", "--out", str(tmp_path),
                  "--ray", ray_address)  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert json.dumps(results).count("success_rate") >= 1
    assert len(lines(tmp_path / "trajectories.jsonl")) == 4


class SlowChat(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that takes 50 ms to answer "turn left" (a slow shared model)."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.05)
        body = json.dumps({"choices": [{"index": 0, "message": {"content": "turn left"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_chat():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowChat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_an_actor_killed_mid_run_loses_no_episode_and_repeats_none(ray_address, slow_chat, tmp_path):
    import ray

    from evol.ray_rollout import RayRolloutEngine

    engine = RayRolloutEngine(
        f"openai:{slow_chat}#slow", address=ray_address, actors=2, chunk=3, concurrency=1,
        max_turns=3, progress=False, sampling=SamplingParams(max_new_tokens=8),
    )  # fmt: skip
    out = tmp_path / "killed.jsonl"
    killed = []

    def kill_when_two_are_written() -> None:
        while not (out.exists() and len(out.read_text().splitlines()) >= 2):
            time.sleep(0.02)
        victim = engine.actors[0]
        ray.kill(victim)
        killed.append(victim)

    threading.Thread(target=kill_when_two_are_written, daemon=True).start()
    outcome = run_specs(engine, task_specs([BABYAI], 12), out)
    assert killed and engine.lost >= 1
    rows = lines(out)
    assert Counter(row["key"] for row in rows) == Counter(spec.key for spec in task_specs([BABYAI], 12))
    assert all(row["fault"] is None and row["turns"] == 3 for row in rows)  # all finished, at the turn cap
    assert not outcome.incomplete and outcome.stats.episodes == 12
    assert outcome.stats.restarts >= 1  # the killed actor's unfinished episodes ran elsewhere


def test_loop_with_ray_explores_on_actors_and_ships_the_policy_as_its_spec(ray_address, tmp_path):
    from agents.scripted import ExpertAgent
    from evol.ray_rollout import RayRolloutEngine
    from evol.trainers.loop import LoopConfig, SelfImproveTrainer

    loop = SelfImproveTrainer(LoopConfig(run_dir=str(tmp_path), ray=ray_address, progress=False))
    loop.rollout(ExpertAgent(), loop.specs("base_tasks")[:6], tmp_path / "expert.jsonl", temperature=0.0)
    assert not loop._servers  # the actors ran the envs in-process: no server launched
    rows = lines(tmp_path / "expert.jsonl")
    assert len(rows) == 6 and all(row["success"] for row in rows)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"model_type": "llama"}')
    policy = loop.policy(tmp_path / "model")
    assert policy.spec == f"hf:{tmp_path / 'model'}" and policy._agent is None  # not loaded here
    engine = loop.engine(policy, temperature=1.0)
    assert isinstance(engine, RayRolloutEngine) and engine.recipe.spec == policy.spec
    engine.close()
    local = SelfImproveTrainer(LoopConfig(run_dir=str(tmp_path), urls=["http://127.0.0.1:1"]))
    engine = local.engine(ExpertAgent(), 0.0)
    assert type(engine) is RolloutEngine
    engine.close()


def test_an_agent_object_without_a_spec_is_refused_with_what_to_give():
    from evol.ray_rollout import RayRolloutEngine

    with pytest.raises(ValueError, match="cannot be shipped to Ray actors: give it as an agent spec"):
        RayRolloutEngine(RandomAgent(seed=1), address="local")


def test_rollout_with_a_bad_ray_address_is_refused(tmp_path, capsys):
    pytest.importorskip("ray")
    args = ["rollout", "--env", BABYAI, "--episodes", "1", "--agent", "expert", "--out", str(tmp_path / "x")]
    assert main([*args, "--ray", "127.0.0.1:1"]) == 2
    assert "--ray 127.0.0.1:1: no Ray cluster answers there" in capsys.readouterr().err
    assert main([*args, "--ray", "no-port-here"]) == 2
    assert "not a Ray address (auto, local, HOST:PORT or ray://HOST:PORT)" in capsys.readouterr().err
    for command in (args, ["eval", *args[1:]]):
        assert main([*command, "--ray-actors", "2"]) == 2
        assert "--ray-actors needs --ray" in capsys.readouterr().err


def test_an_agent_the_actors_cannot_build_ends_the_run_at_once_with_the_reason(ray_address, tmp_path, capsys):
    args = ["rollout", "--env", BABYAI, "--episodes", "4", "--agent", "random:not-a-seed"]
    assert main([*args, "--out", str(tmp_path / "x.jsonl"), "--ray", ray_address]) == 2
    err = capsys.readouterr().err
    assert "the Ray actors cannot build the agent random:not-a-seed: ValueError: invalid literal" in err


def test_rollout_with_ray_not_installed_says_which_extra_to_install(tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None; from evol.cli import main; "
        f"sys.exit(main(['rollout', '--env', '{BABYAI}', '--episodes', '1', '--agent', 'expert', "
        f"'--out', '{tmp_path / 'x.jsonl'}', '--ray']))"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert answer.returncode == 2
    assert "--ray needs Ray: pip install 'evolgym[ray]'" in answer.stderr


def test_actors_prefer_the_env_servers_on_their_own_node():
    from evol.ray_rollout import urls_near

    urls = ["http://127.0.0.1:8001", "http://192.0.2.9:8001"]
    assert urls_near(urls, "192.0.2.9") == ["http://192.0.2.9:8001"]
    assert urls_near(urls, "198.51.100.7") == urls  # none on this node: all of them


def test_a_vllm_agent_takes_one_gpu_per_actor_and_a_lazy_policy_ships_as_its_spec():
    from agents import LazyAgent
    from evol.ray_rollout import AgentRecipe, agent_recipe
    from evol.trainers.explore.math_common import SharedAgent

    assert AgentRecipe("vllm:/models/m").gpus == 1 and AgentRecipe("self-demos:vllm:/m").gpus == 1
    assert AgentRecipe("hf:/models/vllm").gpus == 0 and AgentRecipe("openai:http://h:1#m").gpus == 0
    policy = LazyAgent("hf:/models/m", seed=3)
    assert agent_recipe(SharedAgent(policy)) == AgentRecipe("hf:/models/m", {"seed": 3})
    assert policy._agent is None  # asking for the recipe loaded nothing


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"ray_actors": 0}, "ray_actors must be >= 1 or null, got 0"),
        ({"counterparts": ["critic=oracle"]}, "counterparts: with ray the actors run the envs in-process"),
    ],
)
def test_a_loop_config_with_ray_refuses_what_the_actors_cannot_do(tmp_path, settings, message):
    from evol.trainers.loop import LoopConfig

    with pytest.raises(ValueError, match=message):
        LoopConfig(run_dir=str(tmp_path), ray="auto", **settings)
