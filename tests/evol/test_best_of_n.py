"""`evol eval --best-of N --rm SPEC` on real BabyAI episodes: the oracle keeps each task's
highest-reward episode, a real tiny classifier RM keeps its highest-scored one (one batched
call), plain sampling is the mean over the samples; bad flags refused with exit 2."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from agents.tiny import build_tiny_model
from evol.cli import main
from evol.rewards.base import RewardModel
from evol.rewards.best_of_n import best_of_n, bon_table, episode_input
from evol.trajectory import read_trajectories

ENV = "evol/BabyAI-v0"
RUN = [
    "eval",
    "--env",
    ENV,
    "--episodes",
    "4",
    "--agent",
    "random:2",
    "--temperature",
    "1",
    "--max-turns",
    "6",
]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A tiny one-logit sequence classifier (new head on a tiny causal LM): a real, untrained RM."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    root = tmp_path_factory.mktemp("bon")
    base = build_tiny_model(root / "base", ["go to the red ball turn left move forward pick up"])
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(root / "rm")
    tokenizer.model_max_length = 384
    tokenizer.save_pretrained(root / "rm")
    return root


def _tasks(out):
    groups = defaultdict(list)
    for t in read_trajectories(out / "trajectories.jsonl"):
        groups[t.task["seed"]].append(t)
    return groups


def test_oracle_keeps_the_max_reward_episode(tmp_path, capsys):
    out = tmp_path / "oracle"
    assert main([*RUN, "--out", str(out), "--best-of", "4", "--rm", "oracle"]) == 0
    printed = capsys.readouterr().out
    assert "| plain sampling | BoN-oracle |" in printed
    result = json.loads((out / "best_of_n.json").read_text())
    groups = _tasks(out)
    assert len(groups) == 4 and all(len(g) == 4 for g in groups.values())
    rows = result["tasks"][ENV]
    for row in rows:
        seed = json.loads(row["task"])[1]
        group = groups[seed]
        best = max((int(t.success), t.reward) for t in group)
        assert (int(row["oracle_success"]), row["oracle_reward"]) == best
        assert row["plain_success"] == pytest.approx(sum(t.success for t in group) / 4)
    summary = result["envs"][ENV]
    assert summary["oracle_success"] >= summary["plain_success"]
    assert (out / "best_of_n.png").stat().st_size > 0 and (out / "best_of_n.md").exists()
    # the plain report covers all N samples
    assert json.loads((out / "results.json").read_text())["envs"][ENV]["episodes"] == 16


def test_tiny_classifier_rm_end_to_end(tmp_path, classifier, capsys):
    out = tmp_path / "rm"
    assert main([*RUN, "--out", str(out), "--best-of", "3", "--rm", str(classifier / "rm")]) == 0
    assert "| BoN-RM |" in capsys.readouterr().out
    result = json.loads((out / "best_of_n.json").read_text())
    for row in result["tasks"][ENV]:
        scores = {int(k): v for k, v in row["rm_scores"].items()}
        assert len(scores) == 3 and all(isinstance(v, float) for v in scores.values())
        assert row["rm_sample"] == max(sorted(scores), key=lambda s: scores[s])  # its highest score kept
    assert 0 <= result["envs"][ENV]["rm_success"] <= result["envs"][ENV]["oracle_success"]


class CountingRM(RewardModel):
    """A scripted RM (prefers fewer turns) that records how often it is called."""

    def __init__(self):
        self.calls = []

    def score(self, conversations, answers):
        self.calls.append(len(answers))
        return [-float(len(c)) for c in conversations]


def test_one_batched_rm_call_and_the_episode_input(tmp_path, capsys):
    out = tmp_path / "batch"
    assert main([*RUN, "--out", str(out), "--best-of", "2", "--rm", "oracle"]) == 0
    capsys.readouterr()
    trajectories = list(read_trajectories(out / "trajectories.jsonl"))
    rm = CountingRM()
    result = best_of_n(trajectories, rm)
    assert rm.calls == [8]  # every candidate of every task in one call
    assert "BoN-RM" in bon_table(result)
    conversation, answer = episode_input(trajectories[0].messages)
    assert answer == trajectories[0].messages[-1]["content"] and conversation[-1]["role"] == "user"
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert episode_input(messages) == (messages[:1], "b")  # the env's last word is not the RM's to read


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--best-of", "1", "--rm", "oracle"], "--best-of must be >= 2"),
        (["--best-of", "3"], "--best-of needs --rm"),
        (["--rm", "oracle"], "--rm needs --best-of"),
        (["--best-of", "3", "--rm", "/nonexistent/rm"], "not a checkpoint directory"),
        (["--best-of", "3", "--rm", "oracle", "--samples", "2"], "leave --samples out"),
        (["--best-of", "3", "--rm", "oracle", "--temperature", "0"], "set --temperature"),
    ],
)
def test_bad_best_of_flags_refused_with_exit_2(tmp_path, flags, says, capsys):
    assert main([*RUN, "--out", str(tmp_path / "x"), *flags]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_causal_lm_is_refused_as_rm_and_a_non_number_by_argparse(tmp_path, classifier, capsys):
    assert main([*RUN, "--out", str(tmp_path / "x"), "--best-of", "2", "--rm", str(classifier / "base")]) == 2
    assert "not a reward model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([*RUN, "--out", str(tmp_path / "x"), "--best-of", "many", "--rm", "oracle"])
    assert exit_info.value.code == 2
