"""evol/RewardJudge-v0: verdicts rewarded against the label, options, data= files with bad records,
the contract, and a live server serving its own data."""

from __future__ import annotations

import json

import pytest
import requests

import envs
from envs.checker import check_text_env
from envs.errors import TaskOptionError
from envs.rewardjudge.env import LETTERS, RewardJudgeEnv, parse_verdict

ENV = "evol/RewardJudge-v0"


def test_parse_verdict_reads_letters_and_scores_and_refuses_ties():
    assert parse_verdict("I compared them. Verdict: B", 2) == 1
    assert parse_verdict("Verdict: A ... on reflection, Verdict: C", 3) == 2
    assert parse_verdict("(b)", 2) == 1
    assert parse_verdict("Scores: 2, 9.5, 3", 3) == 1
    assert parse_verdict("Scores: 5, 5", 2) is None  # a tie for the top picks nothing
    assert parse_verdict("Scores: 5", 2) is None
    assert parse_verdict("Verdict: C", 2) is None
    assert parse_verdict("both are fine", 2) is None


def test_the_expert_verdict_is_rewarded_and_a_wrong_one_is_not():
    env = RewardJudgeEnv()
    kinds = set()
    for task in range(len(env.items)):
        _, info = env.reset(options={"task": task})
        kinds.add(info["kind"])
        expert = env.expert_action()
        _, reward, terminated, _, end = env.step(expert)
        assert (reward, terminated, end["success"], end["correct"]) == (1.0, True, True, True)
        label = expert.split(": ")[1]
        wrong = next(letter for letter in LETTERS[: info["candidates"]] if letter != label)
        env.reset(options={"task": task})
        _, reward, terminated, _, end = env.step(f"Verdict: {wrong}")
        assert (reward, terminated, end["success"], end["label"]) == (0.0, True, False, label)
    assert kinds == {"pairwise", "bon"}
    labels = set()
    for task in range(len(env.items)):
        env.reset(options={"task": task})
        labels.add(env.expert_action())
    assert len(labels) > 1  # the best answer is not always shown first


def test_options_select_mode_goal_and_category():
    env = RewardJudgeEnv()
    obs, info = env.reset(options={"mode": "bon", "goal": "harmlessness", "task": 0})
    assert info["kind"] == "bon" and info["goal"] == "harmlessness" and "[Answer C]" in obs
    _, info = env.reset(options={"category": "Chat", "task": 1})
    assert info["scenario"] == "Chat/Casual Conversation" and info["kind"] == "pairwise"
    assert "[assistant]" in env.reset(options={"category": "Chat", "task": 0})[0]  # multi-turn
    with pytest.raises(TaskOptionError, match="no items"):
        env.reset(options={"category": "Astronomy"})
    with pytest.raises(TaskOptionError, match="below 2"):
        env.reset(options={"category": "Chat", "task": 2})


def test_an_invalid_verdict_is_explained_and_counted():
    env = RewardJudgeEnv()
    env.reset(options={"task": 0})
    obs, reward, terminated, _, info = env.step("they are both good")
    assert info["invalid"] and not terminated and reward == 0 and "Verdict: X" in obs
    assert env.step(env.expert_action())[1] == 1.0


def test_data_files_are_served_and_their_bad_records_skipped(tmp_path, caplog):
    good = {
        "pair_uid": "g",
        "conversation_input": [{"role": "user", "content": "hi"}],
        "chosen": "hello!",
        "reject": "go away",
        "category_path": "Pairwise_set/Helpfulness/Chat/Greeting",
    }
    path = tmp_path / "Pairwise_set" / "Helpfulness" / "x.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "pair_uid": "b", "chosen": None}) + "\n")
    crowded = {
        "bon_uid": "c",
        "conversation_input": good["conversation_input"],
        "bon_best": "hello!",
        "loser_list": [f"no {k}" for k in range(10)],
        "category_path": "BoN_set/Helpfulness/Chat/Greeting",
    }
    (tmp_path / "bon.json").write_text(json.dumps([crowded]))
    env = RewardJudgeEnv(data=str(tmp_path))
    assert len(env.items) == 1 and "missing field 'chosen'" in caplog.text and "x.jsonl line 2" in caplog.text
    assert [s.reason for s in env.skipped] == ["missing field 'chosen'", "more than 10 candidate answers"]
    assert envs.run_expert(env, options={"task": 0}).success


def test_the_env_keeps_the_contract():
    report = check_text_env(envs.make(ENV))
    assert report.passed


def test_a_live_server_serves_its_own_data_and_refuses_a_client_path(tmp_path, start_server):
    good = {
        "bon_uid": "u1",
        "conversation_input": [{"role": "user", "content": "2+2?"}],
        "bon_best": "4",
        "loser_list": ["5", "22", "four hundred"],
        "category_path": "BoN_set/Helpfulness/Math/Arithmetic",
    }
    data = tmp_path / "rmb.json"
    data.write_text(json.dumps([good]))
    server = start_server([ENV], "--env-kwargs", json.dumps({ENV: {"data": str(data)}}))
    env = envs.make(ENV, url=server.url)
    obs, info = env.reset(options={"task": 0})
    assert info["kind"] == "bon" and info["candidates"] == 4 and "four hundred" in obs
    _, _, terminated, _, end = env.step("no verdict here")
    assert end["invalid"] and not terminated
    _, reward, terminated, _, end = env.step(f"Verdict: {_label(obs, info)}")
    assert terminated and reward == 1.0 and end["success"]
    env.close()
    refused = requests.post(
        f"{server.url}/sessions", json={"env": ENV, "kwargs": {"data": "/etc/passwd"}}, timeout=30
    )
    assert refused.status_code == 400 and str(tmp_path) not in refused.text


def _label(obs: str, info: dict) -> str:
    """The letter the answer "4" is shown under."""
    for letter in LETTERS[: info["candidates"]]:
        if f"[Answer {letter}]\n4\n" in obs:
            return letter
    raise AssertionError(obs)
