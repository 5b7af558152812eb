"""evol/AdversarialImage-v0: the budget and reward rules, strict parsing, targeted tasks, the expert
against the standard classifier, a saved classifier as a kwarg, the contract, and a live server."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests

import envs
from envs.adversarial.data import digits
from envs.adversarial.env import SCALE, AdversarialImageEnv, Budget, CommandError, parse_command
from envs.adversarial.models import DigitsClassifier, save_classifier, train_standard
from envs.checker import check_text_env
from envs.errors import TaskOptionError

ENV = "evol/AdversarialImage-v0"
BUDGET = Budget(eps_max=0.3, eps_max_l2=2.0, max_steps=50, max_pixels=4)


@pytest.fixture(scope="module")
def saved_classifier(tmp_path_factory):
    """A quickly trained classifier written by save_classifier (a stand-in for a defended one)."""
    x, y = digits("train")
    model = train_standard(DigitsClassifier(arch="mlp", hidden=32, seed=1), x, y, epochs=3, seed=1)
    return str(save_classifier(model, tmp_path_factory.mktemp("clf") / "mlp"))


def test_commands_parse_into_attacks_and_edits():
    pgd = parse_command("Attack PGD eps=0.1 steps=20 norm=l2 target=3 alpha=0.05", BUDGET)
    assert (pgd.method, pgd.eps, pgd.steps, pgd.norm, pgd.target, pgd.alpha) == (
        "pgd",
        0.1,
        20,
        "l2",
        3,
        0.05,
    )
    assert parse_command("attack fgsm eps=.2", BUDGET).eps == 0.2
    edit = parse_command("edit (0,1)=1; (7, 7)=0.25;", BUDGET)
    assert edit.method == "edit" and edit.edits == ((0, 1, 1.0), (7, 7, 0.25))


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ("attack pgd eps=0.31", "over budget: eps must be in (0, 0.3]"),
        ("attack fgsm eps=2.5 norm=l2", "over budget: eps must be in (0, 2]"),
        ("attack pgd eps=0.1 steps=51", "over budget: steps must be in [1, 50]"),
        ("edit (0,0)=1; (0,1)=1; (0,2)=1; (0,3)=1; (0,4)=1", "over budget: at most 4 pixels"),
        ("attack pgd eps=0", "over budget: eps must be in (0, 0.3]"),
        ("attack fgsm eps=0.1 steps=3", "fgsm takes ['eps', 'norm', 'target'], not 'steps'"),
        ("attack pgd eps=0.1 eps=0.2", "eps is given twice"),
        ("attack pgd steps=5", "give the budget as eps=E"),
        ("attack pgd eps=0.1 norm=l1", "norm must be one of ['linf', 'l2']"),
        ("attack pgd eps=0.1 target=12", "target must be a class 0-9"),
        ("attack pgd eps=0.1 alpha=0.5", "alpha must be in (0, eps=0.1]"),
        ("edit (8,0)=1", "outside the 8x8 image"),
        ("edit (0,0)=1.5", "a value must be in [0, 1]"),
        ("edit (0,0)=1; (0,0)=0", "edited twice"),
        ("attack pgd eps=__import__('os').system('true')", "write `attack fgsm eps=E`"),
        ("attack pgd eps=1e5", "eps must be a decimal number"),
        ("attack pgd eps=0.1; import os", "write `attack fgsm eps=E`"),
        ("edit (0,0)=float('nan')", "is not `(r,c)=v`"),
        ("eval(1)", "start with `attack fgsm"),
    ],
)
def test_malformed_or_over_budget_commands_are_refused_with_the_reason(action, reason):
    with pytest.raises(CommandError) as refused:
        parse_command(action, BUDGET)
    assert reason in str(refused.value)


def test_an_invalid_command_is_explained_and_counted_and_the_image_is_kept():
    env = AdversarialImageEnv(max_pixels=2)
    first, _ = env.reset(options={"task": 0})
    obs, reward, terminated, truncated, info = env.step("edit (0,0)=1; (0,1)=1; (0,2)=1")
    assert info["invalid"] and info["turn"] == 1 and reward == 0.0 and not (terminated or truncated)
    assert "over budget: at most 2 pixels per edit, got 3" in obs["text"]
    assert np.array_equal(obs["image"], first["image"])


def test_reward_is_one_minus_half_the_budget_share_and_falls_with_the_budget():
    env = AdversarialImageEnv()
    rewards = []
    for eps in (None, 0.3):  # the expert's (smallest fooling) eps, then the whole budget
        env.reset(options={"task": 4})
        action = env.expert_action() if eps is None else f"attack pgd eps={eps} steps=20"
        _, reward, terminated, _, info = env.step(action)
        assert (
            terminated
            and info["success"]
            and info["fooled"]
            and info["prediction"] != info["outcome"]["label"]
        )
        assert reward == pytest.approx(1 - 0.5 * info["spent"])
        rewards.append(reward)
    assert info["spent"] == pytest.approx(1.0) and rewards[1] == pytest.approx(0.5)
    assert rewards[0] > rewards[1]
    assert env.budget.share(parse_command("edit (0,0)=1; (0,1)=1", env.budget)) == 2 / 8


def test_a_command_that_does_not_fool_gives_nothing_and_the_episode_goes_on():
    env = AdversarialImageEnv(max_turns=2)
    _, start = env.reset(options={"task": 0})
    assert start["prediction"] == start["label"] and start["confidence"] > 0.5
    obs, reward, terminated, truncated, info = env.step("attack fgsm eps=0.01")
    assert reward == 0.0 and not terminated and not truncated and not info["fooled"]
    assert obs["text"].startswith("Not fooled (attack fgsm eps=0.01 norm=linf).")
    *_, truncated, info = env.step("attack fgsm eps=0.01")
    assert truncated and info["success"] is False and info["outcome"]["fooled_by"] is None


def test_a_targeted_task_needs_the_target_class():
    env = AdversarialImageEnv()
    _, start = env.reset(options={"task": 3, "target": 0})
    assert start["target"] == 0 and "Make it predict the target class 0" in start["instruction"]
    other = next(c for c in range(10) if c not in (0, start["label"]))
    _, reward, terminated, _, info = env.step(f"attack pgd eps=0.3 steps=30 target={other}")
    assert info["prediction"] == other and reward == 0.0 and not terminated  # wrong, but not the target
    action = env.expert_action()
    assert action.endswith("target=0")
    _, reward, terminated, _, info = env.step(action)
    assert terminated and info["success"] and info["prediction"] == 0 and reward > 0.5
    with pytest.raises(TaskOptionError, match="must differ from the digit's label"):
        env.reset(options={"task": 3, "target": start["label"]})


def test_the_expert_fools_the_standard_classifier_on_most_tasks():
    env = AdversarialImageEnv()
    results = [envs.run_expert(env, options={"task": k, "split": "test"}) for k in range(20)]
    assert sum(result.success for result in results) >= 18


def test_edits_set_pixels_and_the_modes_show_them():
    env = AdversarialImageEnv(mode="text")
    obs, _ = env.reset(options={"task": 0})
    assert not obs["image"].any() and "Pixels (row 0 first):" in obs["text"]
    obs, *_ = env.step("edit (0,0)=1; (0,7)=0.5")
    first_row = obs["text"].split("Pixels (row 0 first):\n")[1].splitlines()[0].split()
    assert first_row[0] == "1.00" and first_row[7] == "0.50"
    env = AdversarialImageEnv()
    obs, _ = env.reset(options={"task": 0})
    obs, *_ = env.step("edit (0,0)=1; (7,7)=0")
    assert obs["image"].shape == (8 * SCALE, 8 * SCALE, 3)
    assert (obs["image"][:SCALE, :SCALE] == 255).all() and (obs["image"][-SCALE:, -SCALE:] == 0).all()


def test_a_saved_classifier_is_the_target_and_a_bad_path_is_refused(saved_classifier, tmp_path):
    env = AdversarialImageEnv(classifier=saved_classifier)
    assert envs.run_expert(env, options={"task": 1}).success
    assert env.model is not AdversarialImageEnv().model
    with pytest.raises(ValueError, match="classifier must be a directory"):
        AdversarialImageEnv(classifier=str(tmp_path / "missing"))


def test_the_env_keeps_the_contract():
    assert check_text_env(envs.make(ENV), expert_tasks=3).passed


def test_a_live_server_serves_its_own_classifier_and_refuses_a_client_path(saved_classifier, start_server):
    server = start_server([ENV], "--env-kwargs", json.dumps({ENV: {"classifier": saved_classifier}}))
    env = envs.make(ENV, url=server.url)
    obs, info = env.reset(options={"task": 2, "split": "test"})
    assert obs["image"].shape == (128, 128, 3) and f"True label {info['label']}" in obs["text"]
    obs, reward, terminated, _, end = env.step("attack pgd eps=7")
    assert end["invalid"] and not terminated and "over budget" in obs["text"]
    _, reward, terminated, _, end = env.step(env.expert_action())
    assert terminated and end["success"] and 0.5 <= reward <= 1.0
    env.close()
    refused = requests.post(
        f"{server.url}/sessions", json={"env": ENV, "kwargs": {"classifier": "/etc"}}, timeout=30
    )
    assert refused.status_code == 400 and "set by the server only" in refused.text
