"""The `evol` CLI run as a user runs it: a real process, real stdin."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

COUNTER = "acme/Counter-v0"


def evol(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evol.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_envs_lists_every_registered_env_with_its_card():
    listing = evol("envs")
    assert listing.returncode == 0
    for env_id in ("evol/BabyAI-v0", "evol/TextWorld-v0", COUNTER):
        assert env_id in listing.stdout
    card = evol("envs", COUNTER)
    assert "## Rewards" in card.stdout and "## Task options" in card.stdout


def test_envs_names_an_unknown_id_clearly():
    answer = evol("envs", "nope/Missing-v0")
    assert answer.returncode == 2 and "unknown env 'nope/Missing-v0'" in answer.stderr


def test_help_on_every_command():
    for command in ([], ["envs"], ["serve"], ["play"]):
        answer = evol(*command, "--help")
        assert answer.returncode == 0 and "usage: evol" in answer.stdout


def test_play_locally_to_success():
    answer = evol("play", COUNTER, "--task", "1", stdin="inc\nhop\ninc\nsubmit\n")
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "# Instruction" in answer.stdout and "(invalid action)" in answer.stdout
    assert "SUCCESS: episode ended after 4 turns, total reward 1" in answer.stdout


def test_play_over_a_server(start_server):
    server = start_server([COUNTER])
    answer = evol("play", COUNTER, "--url", server.url, "--task", "0", stdin="dec\nsubmit\n")
    assert answer.returncode == 1
    assert "FAILURE: episode ended after 2 turns" in answer.stdout


def test_serve_refuses_an_unknown_env():
    answer = evol("serve", "nope/Missing-v0", "--port", "1")
    assert answer.returncode == 2 and "unknown env" in answer.stderr


def test_serve_with_a_counterpart_critic_and_env_kwargs(start_server):
    import requests

    server = start_server(
        ["evol/MathCritique-v0"],
        "--counterpart",
        "critic=oracle",
        "--env-kwargs",
        '{"evol/MathCritique-v0": {"refine_rounds": 1}}',
    )
    sid = requests.post(f"{server.url}/sessions", json={"env": "evol/MathCritique-v0"}).json()["session"]
    requests.post(f"{server.url}/sessions/{sid}/reset", json={"options": {"task": 0}})
    step = requests.post(
        f"{server.url}/sessions/{sid}/step", json={"action": "2 + 2 = 5\nThe answer is 5."}
    ).json()
    assert not step["terminated"], "a wrong answer with a critic gets a critique and a refinement round"
    assert "Wrong" in step["observation"]
    step = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": "The answer is 5."}).json()
    assert step["terminated"] and step["reward"] == 0.0


def test_serve_refuses_a_counterpart_no_env_takes():
    answer = evol("serve", "acme/Counter-v0", "--counterpart", "critic=oracle", "--port", "1")
    assert answer.returncode == 2 and "no served env takes a 'critic'" in answer.stderr


def test_rollout_with_a_bounded_view_of_the_episode(tmp_path):
    """What the agent sees (`--history-turns`, `--no-instruction`) is the engine's to cut; trajectories stay whole."""
    out = tmp_path / "bounded.jsonl"
    answer = evol("rollout", "--env", COUNTER, "--agent", "random:0", "--episodes", "3",
                  "--history-turns", "0", "--no-instruction", "--out", str(out))  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(row["messages"][0]["role"] == "system" for row in rows)
    refused = evol("rollout", "--env", COUNTER, "--agent", "random:0", "--episodes", "1",
                   "--history-turns", "-1", "--out", str(tmp_path / "x.jsonl"))  # fmt: skip
    assert refused.returncode == 2 and "--history-turns" in refused.stderr and ">= 0" in refused.stderr
