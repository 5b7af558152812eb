"""`evol train rm`: TRL's RewardTrainer on pairs from real BabyAI rollouts and from preference
files, a task-held-out pairwise accuracy, the checkpoint loaded back as `ClassifierRM`; the
classifier backend's batching; bad configs refused naming the field."""

from __future__ import annotations

import json
import math

import pytest

from agents import load_agent
from agents.tiny import build_tiny_model
from evol.cli import main
from evol.rewards.classifier import ClassifierRM, check_checkpoint
from evol.rollout import RolloutEngine, task_specs
from evol.runs import run_specs
from evol.trainers.config import ConfigError, from_mapping
from evol.trainers.rm import RMConfig, split_by_task, task_of_key

CORPUS = ["go to the red ball turn left turn right move forward pick up toggle You see a wall door key box"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("rm") / "base", CORPUS)


@pytest.fixture(scope="module")
def rollouts(tmp_path_factory):
    """4 random episodes of each of 6 BabyAI train tasks (short: 6 turns)."""
    path = tmp_path_factory.mktemp("rollouts") / "roll.jsonl"
    engine = RolloutEngine(load_agent("random:1"), max_turns=6, progress=False)
    run_specs(engine, task_specs(["evol/BabyAI-v0"], 6, "train", samples=4), path)
    return path


def _config(tmp_path, base, data, **extra):
    settings = {"epochs": 1, "batch_size": 2, "logging_steps": 1, "max_length": 256, "progress": False}
    settings.update(extra.pop("rm", {}))
    return {
        "model": str(base),
        "data": [str(data)],
        "output_dir": str(tmp_path / "rm"),
        "rm": settings,
        **extra,
    }


def test_two_step_reward_trainer_on_rollout_pairs(tmp_path, base, rollouts, capsys):
    import yaml

    config = tmp_path / "rm.yaml"
    # 6 tasks, 1 pair each where a task has a better and a worse episode; 2 tasks held out
    config.write_text(yaml.safe_dump(_config(tmp_path, base, rollouts, pairs_per_task=1, eval_fraction=0.34)))
    assert main(["train", "rm", "--config", str(config)]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "rm"
    metrics = json.loads((out / "metrics.json").read_text())
    assert "pairwise accuracy: held-out" in printed and "trained model saved" in printed
    assert metrics["eval_pairs"] >= 1 and metrics["train_pairs"] >= 2
    assert math.isfinite(metrics["final_loss"])
    assert 0 <= metrics["eval_accuracy"] <= 1 and 0 <= metrics["train_accuracy"] <= 1
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    train_tasks = {p["task"] for p in pairs if p["split"] == "train"}
    eval_tasks = {p["task"] for p in pairs if p["split"] == "eval"}
    assert train_tasks and eval_tasks and not train_tasks & eval_tasks  # never a task on both sides
    assert all(p["chosen"][-1]["role"] == "assistant" for p in pairs)  # env's last word dropped
    # the checkpoint is a one-logit classifier that ClassifierRM loads and scores with
    check_checkpoint(out / "model")
    rm = ClassifierRM(out / "model")
    assert rm.max_length == 256  # the trained length travels with the checkpoint
    first = pairs[0]
    scores = rm.score([first["prompt"], first["prompt"]], [first["chosen"][0]["content"], "drop the ball"])
    assert all(isinstance(s, float) and math.isfinite(s) for s in scores) and scores[0] != scores[1]


def test_preference_file_plain_strings_split_by_prompt_with_lora(tmp_path, base):
    from evol.trainers.rm import RMTrainer

    data = tmp_path / "prefs.jsonl"
    rows = [
        {"prompt": f"Go to the {colour} ball.", "chosen": f"go to {colour} ball 1", "rejected": "turn left"}
        for colour in ("red", "green", "blue", "grey")
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = {"learning_rate": 1e-3, "lora": True, "lora_r": 4, "lora_target_modules": ["q_proj", "v_proj"]}
    config = from_mapping(RMConfig, _config(tmp_path, base, data, eval_fraction=0.5, rm=settings))
    result = RMTrainer(config, log=lambda _: None).train()  # LoRA on a new scoring head, merged on save
    assert result.metrics["train_pairs"] == 2 and result.metrics["eval_pairs"] == 2
    assert len(result.losses) == 1 and math.isfinite(result.losses[0])
    assert result.metrics["eval_accuracy"] in (0.0, 0.5, 1.0)


def test_classifier_scores_batched_equal_unbatched(tmp_path, base):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tmp_path / "cls"
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    model.config.pad_token_id = AutoTokenizer.from_pretrained(base).pad_token_id
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(base).save_pretrained(path)
    conversation = [{"role": "user", "content": "You see a red ball 1. Your goal: go to the red ball"}]
    answers = ["go to red ball 1", "turn left", "move forward move forward move forward pick up the key", "x"]
    one = ClassifierRM(path, batch_size=1).score([conversation] * 4, answers)
    many = ClassifierRM(path, batch_size=8).score([conversation] * 4, answers)
    assert len(set(one)) == 4  # different answers, different scores
    assert one == pytest.approx(many, abs=1e-4)
    with pytest.raises(ValueError, match="not a reward model"):
        ClassifierRM(base)  # a causal LM is no reward model


def test_task_split_and_keys():
    pairs = [{"task": t} for t in "aabbcd"]
    train, held = split_by_task(pairs, 0.25, seed=0)
    assert len(train) + len(held) == 6 and not {p["task"] for p in train} & {p["task"] for p in held}
    assert task_of_key('evol/BabyAI-v0|3|{"task": 3}|2') == 'evol/BabyAI-v0|3|{"task": 3}'


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"eval_fraction": 1.5}, "eval_fraction"),
        ({"pairing": "nearest"}, "pairing"),
        ({"pairs_per_task": 0}, "pairs_per_task"),
        ({"model": "/nonexistent/base"}, "model"),
        ({"rm": {"center_rewards_coefficient": -1.0}}, "center_rewards_coefficient"),
        ({"rm": {"learning_rate": 0.0}}, "learning_rate"),
        ({"rm": {"epochs": "two"}}, "epochs"),
        ({"lora_rank": 4}, "lora_rank"),
    ],
)
def test_bad_configs_refused_naming_the_field(tmp_path, base, rollouts, change, field):
    data = _config(tmp_path, base, rollouts)
    if "rm" in change:
        data["rm"].update(change["rm"])
    else:
        data.update(change)
    with pytest.raises(ConfigError, match=field):
        from_mapping(RMConfig, data)


def test_cli_refuses_bad_config_with_exit_2(tmp_path, base, rollouts, capsys):
    import yaml

    config = tmp_path / "rm.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path, base, rollouts, eval_fraction=-0.1)))
    assert main(["train", "rm", "--config", str(config)]) == 2
    assert "eval_fraction" in capsys.readouterr().err
    assert not (tmp_path / "rm").exists()
