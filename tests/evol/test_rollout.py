"""The rollout engine and trajectory files, with real envs, real servers and real agents."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import envs
from agents import load_agent
from agents.base import Agent, AgentInput, AgentOutput, SamplingParams
from agents.scripted import ExpertAgent
from evol.rollout import EpisodeSpec, RolloutEngine, task_specs
from evol.trajectory import (
    AGENTGYM_FILLER,
    TrajectoryWriter,
    from_agentgym,
    read_trajectories,
    to_agentgym,
    to_dataset,
)
from tests.conftest import ROOT

COUNTER = "acme/Counter-v0"
BABYAI = "evol/BabyAI-v0"


class SabotagingAgent(Agent):
    """The expert, except that it breaks the env of target-3 tasks or fails on target-5 ones."""

    name = "saboteur"

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        replies = []
        for item in inputs:
            if "Target: 5." in item.messages[1]["content"]:
                raise RuntimeError("the agent cannot answer this one")
            crash = "Target: 3." in item.messages[1]["content"]
            replies.append(["crash" if crash else item.env.expert_action()])
        return replies


def test_expert_rollouts_through_a_server_replay(shared_server, tmp_path):
    engine = RolloutEngine(ExpertAgent(), concurrency=8, urls=[shared_server.url], progress=False)
    specs = task_specs([BABYAI], 12, split="test")
    with TrajectoryWriter(tmp_path / "t.jsonl") as writer:
        engine.run(specs, writer)
    engine.close()
    trajectories = list(read_trajectories(tmp_path / "t.jsonl"))
    assert len(trajectories) == 12 and all(t.success and t.error is None for t in trajectories)
    for trajectory in trajectories[:4]:
        assert trajectory.messages[0]["role"] == "system" and trajectory.turns == len(trajectory.actions)
        assert [m["role"] for m in trajectory.messages[1:]] == ["user", "assistant"] * trajectory.turns
        # Replaying the same task with the same actions locally gives the same reward.
        env = envs.make(trajectory.env)
        env.reset(seed=trajectory.task["seed"], options=trajectory.task["options"])
        rewards = [env.step(action)[1] for action in trajectory.actions]
        assert rewards == trajectory.rewards and sum(rewards) == trajectory.reward


@pytest.mark.parametrize("where", ["local", "remote"])
def test_a_failing_env_or_agent_reply_does_not_stop_the_others(where, shared_server):
    engine = RolloutEngine(
        SabotagingAgent(),
        concurrency=16,
        urls=[shared_server.url] if where == "remote" else None,
        progress=False,
    )
    trajectories = engine.run(task_specs([COUNTER], 21))
    engine.close()
    assert len(trajectories) == 21
    targets = {t.task["options"]["task"]: t for t in trajectories}
    for k, trajectory in targets.items():
        if k % 7 + 1 == 3:
            assert trajectory.fault == "env" and "env failed" in trajectory.error
            if where == "local":  # a server keeps the env's exception to its log
                assert "the counter broke" in trajectory.error
        elif k % 7 + 1 == 5:
            assert trajectory.fault == "agent" and "agent failed" in trajectory.error
        else:
            assert trajectory.fault is None and trajectory.error is None and trajectory.success
    assert engine.stats.faults == {"infra": 0, "env": 3, "agent": 3} and engine.stats.restarts == 0


class CountingAgent(Agent):
    """Always answers `inc`, reporting 5 generated tokens a reply."""

    def act(self, inputs, sampling=None):
        return [AgentOutput(text="Action: inc", action="inc", tokens=5) for _ in inputs]


def test_turn_and_token_caps_truncate():
    specs = [EpisodeSpec(COUNTER, k, {"task": 6}) for k in range(4)]
    by_turns = RolloutEngine(CountingAgent(), concurrency=4, max_turns=2, progress=False).run(specs)
    assert [(t.turns, t.truncated, t.success) for t in by_turns] == [(2, True, False)] * 4
    by_tokens = RolloutEngine(CountingAgent(), concurrency=4, max_tokens=15, progress=False).run(specs)
    assert [(t.turns, t.tokens, t.truncated) for t in by_tokens] == [(3, 15, True)] * 4
    assert by_tokens[0].messages[2] == {"role": "assistant", "content": "Action: inc"}
    assert by_tokens[0].actions == ["inc"] * 3


def test_random_agent_picks_valid_actions():
    trajectories = RolloutEngine(load_agent("random:0"), concurrency=4, progress=False).run(
        task_specs([BABYAI], 4)
    )
    assert all(t.error is None and t.turns > 0 for t in trajectories)
    assert not any("Invalid" in m["content"] for t in trajectories for m in t.messages if m["role"] == "user")


def test_killed_rollout_resumes_without_duplicates(tmp_path):
    out = tmp_path / "rollout.jsonl"
    command = [sys.executable, "-m", "evol.cli", "rollout", "--env", COUNTER, "--episodes", "100",
               "--samples", "30", "--agent", "random:1", "--concurrency", "1", "--out", str(out)]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 20):
        time.sleep(0.05)
    process.kill()
    process.wait()
    written = out.read_bytes().count(b"\n")
    assert 20 <= written < 3000, "the run must be killed midway"
    with open(out, "ab") as handle:  # what a kill mid-write leaves: a torn line
        handle.write(b'{"env": "acme/Coun')
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert "resuming" in finished.stdout
    keys = [json.loads(line)["key"] for line in out.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 3000


def test_agentgym_format_round_trips(tmp_path):
    engine = RolloutEngine(ExpertAgent(), concurrency=4, progress=False)
    trajectories = engine.run(task_specs([BABYAI], 3, split="test"))
    for trajectory in trajectories:
        item = to_agentgym(trajectory)
        assert item["item_id"] == f"babyai_{trajectory.task['options']['task']}"
        assert item["conversations"][1] == {"from": "gpt", "loss": False, "value": AGENTGYM_FILLER}
        assert all(turn["loss"] for turn in item["conversations"][2:] if turn["from"] == "gpt")
        back = from_agentgym(json.loads(json.dumps(item)), BABYAI, split="test")
        assert back.messages == trajectory.messages
        assert back.task == trajectory.task and back.actions == trajectory.actions
    dataset = to_dataset(trajectories)
    assert len(dataset) == 3 and dataset[0]["messages"][0]["role"] == "system"


def test_eval_writes_results_table_and_plot(tmp_path):
    out = tmp_path / "eval"
    answer = subprocess.run(
        [sys.executable, "-m", "evol.cli", "eval", "--env", BABYAI, COUNTER, "--episodes", "6", "--agent", "expert", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["envs"][BABYAI]["success_rate"] == 1.0 and results["envs"][COUNTER]["episodes"] == 6
    assert "| evol/BabyAI-v0 | 6 | 100.0% |" in (out / "results.md").read_text()
    assert (out / "success.png").read_bytes()[:4] == b"\x89PNG"


def test_rollout_refuses_unknown_env():
    answer = subprocess.run(
        [sys.executable, "-m", "evol.cli", "rollout", "--env", "nope/X-v0", "--episodes", "1", "--agent", "expert", "--out", "/dev/null"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert answer.returncode == 2 and "unknown env" in answer.stderr


def test_eval_reports_test_time_scaling_with_samples_and_refinement(tmp_path):
    out = tmp_path / "eval"
    answer = subprocess.run(
        [sys.executable, "-m", "evol.cli", "eval", "--env", "evol/MathCritique-v0", "--episodes", "3", "--agent", "random:0",
         "--samples", "2", "--temperature", "1.0", "--refine", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    report = json.loads((out / "test_time.json").read_text())
    assert report["tasks"] == 3 and report["samples"] == 6
    assert set(report["before"]) >= {"accuracy@1", "majority", "pass@k"}


def test_server_refuses_file_kwargs_from_clients(shared_server):
    import requests

    answer = requests.post(
        f"{shared_server.url}/sessions",
        json={"env": "evol/MathCritique-v0", "kwargs": {"data": "/etc/passwd"}},
    )
    assert answer.status_code == 400 and "evol serve --env-kwargs" in answer.json()["error"]["message"]


def test_eval_reports_mmsy_rates_for_the_sycophancy_env(tmp_path):
    out = tmp_path / "eval"
    answer = subprocess.run(
        [sys.executable, "-m", "evol.cli", "eval", "--env", "evol/Sycophancy-v0", "--episodes", "8", "--agent", "expert",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    report = json.loads((out / "mmsy.json").read_text())
    # the expert keeps every right answer and takes every correction (it errs at round 1 on a share of tasks)
    assert report["sycophancy_rate"] == 0.0 and report["correction_rate"] == 1.0
    assert report["final_accuracy"] == 1.0 and 0 < report["acc_r1"] < 1
    assert "MM-SY rates" in answer.stdout


class RecordingExpert(ExpertAgent):
    """The expert, remembering which env each conversation it was shown came from."""

    def __init__(self):
        self.seen: list[tuple[str, list[dict]]] = []

    def act(self, inputs, sampling=None):
        self.seen += [(type(item.env.unwrapped).__name__, item.messages) for item in inputs]
        return super().act(inputs, sampling)


def test_the_instruction_can_be_kept_for_some_envs_only():
    from evol.trainers.data import examples

    agent = RecordingExpert()
    engine = RolloutEngine(
        agent, concurrency=4, history_turns=0, instruction_in_context=[COUNTER], progress=False
    )
    trajectories = engine.run(task_specs([COUNTER, BABYAI], 4))
    assert all(t.error is None for t in trajectories)
    shown: dict[str, set[bool]] = {}
    for env_class, messages in agent.seen:
        shown.setdefault(env_class, set()).add(messages[0]["role"] == "system")
    counter_class = type(envs.make(COUNTER).unwrapped).__name__
    babyai_class = type(envs.make(BABYAI).unwrapped).__name__
    assert shown == {counter_class: {True}, babyai_class: {False}}
    # Training examples are cut the same way.
    for trajectory in trajectories:
        rows = examples([(trajectory, 1.0)], history_turns=0, instruction=[COUNTER])
        assert rows and {r["messages"][0]["role"] for r in rows} == {
            "system" if trajectory.env == COUNTER else "user"
        }


def test_eval_url_judges_math_answers_against_the_gold_of_the_env_that_ran_them(start_server, tmp_path):
    """A server holding a data file: the report's gold answers come from that server's episodes
    (their recorded outcome), not from a local replay of the resets, which would make other problems."""
    records = [
        {"question": f"Tom has {n} apples and buys {n + 3} more. How many apples does he have?",
         "answer": f"Tom has {n} + {n + 3} = <<{n}+{n + 3}={2 * n + 3}>>{2 * n + 3} apples.\n#### {2 * n + 3}"}
        for n in range(101, 107)
    ]  # fmt: skip
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in records))
    kwargs = json.dumps({"evol/MathCritique-v0": {"data": str(data)}})
    server = start_server(["evol/MathCritique-v0"], "--env-kwargs", kwargs)
    out = tmp_path / "eval"
    answer = subprocess.run(
        [sys.executable, "-m", "evol.cli", "eval", "--env", "evol/MathCritique-v0", "--episodes", "4", "--agent", "expert",
         "--url", server.url, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["envs"]["evol/MathCritique-v0"]["success_rate"] == 1.0
    report = json.loads((out / "test_time.json").read_text())
    assert report["before"]["accuracy@1"] == 1.0
    lines = (out / "trajectories.jsonl").read_text().splitlines()
    golds = {json.loads(line)["outcome"]["gold_answer"] for line in lines}
    assert len(lines) == 4 and golds <= {str(2 * n + 3) for n in range(101, 107)}
