"""BC and AgentEvol at tiny sizes: real tiny models, real TRL training, real env servers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.base import AgentInput, SamplingParams
from agents.scripted import ExpertAgent
from agents.tiny import build_tiny_model
from evol.rollout import EpisodeSpec, RolloutEngine, task_specs
from evol.trainers.agentevol import AgentEvolConfig, AgentEvolTrainer
from evol.trainers.bc import BCConfig, BCTrainer
from evol.trainers.config import ConfigError, from_mapping, load_config, parse_config
from evol.trainers.sft import TrainSettings
from evol.trajectory import TrajectoryWriter, read_trajectories
from tests.conftest import ROOT

os.environ["HF_HUB_OFFLINE"] = "1"
COUNTER = "acme/Counter-v0"
QUICK = {"epochs": 1.0, "learning_rate": 3e-3, "batch_size": 8, "progress": False, "logging_steps": 1}


@pytest.fixture(scope="module")
def expert_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("expert") / "expert.jsonl"
    engine = RolloutEngine(ExpertAgent(), concurrency=8, progress=False)
    with TrajectoryWriter(path) as writer:
        engine.run(task_specs([COUNTER], 6), writer)
    return path


def test_bc_lowers_the_loss_and_reproduces_a_memorised_action(tmp_path):
    # Tasks 0, 7, 14, 21 share target 1: the expert says "inc", then "submit".
    memorised = tmp_path / "memorised.jsonl"
    engine = RolloutEngine(ExpertAgent(), concurrency=4, progress=False)
    with TrajectoryWriter(memorised) as writer:
        engine.run([EpisodeSpec(COUNTER, k, {"task": k}) for k in (0, 7, 14, 21)], writer)
    corpus = [m["content"] for t in read_trajectories(memorised) for m in t.messages]
    base = build_tiny_model(tmp_path / "base", corpus)
    config = BCConfig(
        model=str(base),
        data=[str(memorised)],
        output_dir=str(tmp_path / "bc"),
        train=TrainSettings(**{**QUICK, "epochs": 40.0, "batch_size": 16, "logging_steps": 5}),
    )
    result = BCTrainer(config).train()
    assert result.losses[-1] < result.losses[0] / 4, result.losses
    from agents.hf import HFAgent

    agent = HFAgent(str(result.model_dir), device="cpu")
    trajectory = next(t for t in read_trajectories(memorised) if t.task["options"]["task"] == 0)
    first = trajectory.messages[:2]
    second = trajectory.messages[:4]
    outputs = agent.act(
        [AgentInput(messages=first), AgentInput(messages=second)], SamplingParams(max_new_tokens=6)
    )
    assert [o.action for o in outputs] == [trajectory.actions[0], trajectory.actions[1]] == ["inc", "submit"]
    summary = json.loads((tmp_path / "bc" / "train_summary.json").read_text())
    assert summary["kept"] == 4 and summary["tokens_per_s"] > 0
    assert (tmp_path / "bc" / "config.yaml").exists()


def tiny_agentevol(run_dir: Path, **overrides) -> AgentEvolConfig:
    settings = {
        "run_dir": str(run_dir),
        "envs": [COUNTER],
        "base_tasks": 4,
        "explore_tasks": 6,
        "eval_tasks": 3,
        "iterations": 1,
        "history_turns": 0,
        "max_new_tokens": 4,
        "concurrency": 8,
        "progress": False,
        "bc_train": dict(QUICK),
        "train": dict(QUICK),
        **overrides,
    }
    return from_mapping(AgentEvolConfig, settings)


def test_one_agentevol_iteration_writes_every_artifact(tmp_path):
    run_dir = tmp_path / "run"
    table = AgentEvolTrainer(tiny_agentevol(run_dir), log=lambda _: None).train()
    assert list(table) == ["untrained", "bc", "iter_1"]
    for artifact in [
        "config.yaml",
        "state.json",
        "expert.jsonl",
        "base_model/config.json",
        "eval/untrained/results.json",
        "bc/model/model.safetensors",
        "eval/bc/trajectories.jsonl",
        "iter_1/explore.jsonl",
        "iter_1/model/model.safetensors",
        "eval/iter_1/results.json",
        "metrics.jsonl",
        "learning_curve.png",
    ]:
        assert (run_dir / artifact).exists(), artifact
    explored = list(read_trajectories(run_dir / "iter_1" / "explore.jsonl"))
    assert len(explored) == 6 and {t.task["options"]["task"] for t in explored} == set(range(6))
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    phases = [m["phase"] for m in metrics if "phase" in m]
    assert phases == [
        "expert",
        "base_model",
        "eval/untrained",
        "bc",
        "eval/bc",
        "iter_1/explore",
        "iter_1/learn",
        "iter_1/eval",
    ]
    assert any(m.get("explore_kept") is not None for m in metrics)


def test_interrupted_agentevol_resumes_from_its_last_finished_phase(tmp_path):
    run_dir = tmp_path / "run"
    config_path = tmp_path / "agentevol.yaml"
    import yaml

    config = tiny_agentevol(run_dir)
    from evol.trainers.config import to_mapping

    config_path.write_text(yaml.safe_dump(to_mapping(config)))
    command = [sys.executable, "-m", "evol.cli", "train", "agentevol", "--config", str(config_path)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run_dir / "state.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if state.exists() and "bc" in json.loads(state.read_text())["done"]:
            break
        time.sleep(0.2)
    process.kill()
    process.wait()
    done_before = json.loads(state.read_text())["done"]
    assert "bc" in done_before and "iter_1/eval" not in done_before
    expert_lines = (run_dir / "expert.jsonl").read_text()
    bc_weights = (run_dir / "bc" / "model" / "model.safetensors").stat().st_mtime
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert (
        "expert: done earlier, skipped" in finished.stdout and "bc: done earlier, skipped" in finished.stdout
    )
    assert (run_dir / "expert.jsonl").read_text() == expert_lines
    assert (run_dir / "bc" / "model" / "model.safetensors").stat().st_mtime == bc_weights
    assert json.loads(state.read_text())["done"][-1] == "iter_1/eval"
    assert "| iter_1 |" in finished.stdout


@pytest.mark.parametrize(
    "change, field",
    [
        ({"iterations": -1}, "iterations"),
        ({"keep": "best"}, "keep"),
        ({"base_tasks": "many"}, "base_tasks"),
        ({"learning_rate": 0.1}, "learning_rate"),
        ({"envs": ["nope/Missing-v0"]}, "envs"),
        ({"train": {"epochs": 0}}, "epochs"),
        ({"train": {"epoch": 2}}, "epoch"),
        ({"train": 3}, "train"),
        ({"env_tasks": {"evol/BabyAI-v0": {"base_tasks": 3}}}, "env_tasks"),
        ({"instruction_in_context": ["evol/BabyAI-v0"]}, "instruction_in_context"),
        ({"instruction_in_context": "yes"}, "instruction_in_context"),
    ],
)
def test_bad_agentevol_config_is_refused_naming_the_field(tmp_path, capsys, change, field):
    import yaml

    from evol.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "envs": [COUNTER], **change}))
    with pytest.raises(ConfigError, match=field):
        load_config(AgentEvolConfig, path)
    assert main(["train", "agentevol", "--config", str(path)]) == 2
    stderr = capsys.readouterr().err
    assert "bad config" in stderr and field in stderr
    assert not (tmp_path / "run").exists(), "nothing may start before the config is checked"


@pytest.mark.parametrize(
    "args, field",
    [
        (["--iterations", "many"], "--iterations"),
        (["--keep", "best"], "--keep"),
        (["--train.epochs", "0"], "epochs"),
        (["--set", "train.epoch=2"], "epoch"),
        (["--set", "iterations"], "FIELD=VALUE"),
        (["--history_turns", "2.5"], "--history_turns"),
        (["--unknown", "1"], "--unknown"),
    ],
)
def test_bad_flag_is_refused_naming_the_field(args, field):
    with pytest.raises(ConfigError, match=re.escape(field)):
        parse_config(AgentEvolConfig, ["--set", f"envs=[{COUNTER}]", *args])


def test_flags_override_set_which_overrides_the_file(tmp_path):
    import yaml

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"envs": [COUNTER], "iterations": 1, "train": {"epochs": 3.0, "seed": 4}}))
    config = parse_config(
        AgentEvolConfig,
        ["--config", str(path), "--set", "iterations=5", "--set", "train.learning_rate=2.0e-3",
         "--iterations", "6", "--train.batch_size", "2", "--no_progress", "--history_turns", "1",
         "--instruction_in_context", f"[{COUNTER}]", "--reward_threshold", f"{{{COUNTER}: 0.5}}"],
    )  # fmt: skip
    assert config.iterations == 6 and config.progress is False and config.history_turns == 1
    assert (config.train.epochs, config.train.seed, config.train.learning_rate) == (3.0, 4, 2e-3)
    assert config.train.batch_size == 2 and config.bc_train == TrainSettings()
    assert config.instruction_in_context == [COUNTER] and config.reward_threshold == {COUNTER: 0.5}
    assert isinstance(config.train.epochs, float)
    assert load_config(AgentEvolConfig, path, {"train.epochs": 2}).train == TrainSettings(epochs=2.0, seed=4)


def test_every_config_field_has_help_in_its_metadata():
    from dataclasses import fields

    from evol.trainers.dpo import DPOSettings, PreferenceConfig
    from evol.trainers.inverse_q import InverseQConfig, InverseQSettings

    for cls in (
        AgentEvolConfig,
        BCConfig,
        TrainSettings,
        DPOSettings,
        InverseQSettings,
        PreferenceConfig,
        InverseQConfig,
    ):
        assert all(f.metadata.get("help") for f in fields(cls)), cls


@pytest.mark.parametrize(
    "algorithm, config_class",
    [("agentevol", AgentEvolConfig), ("bc", BCConfig), ("dpo", None), ("inverse-q", None), ("loop", None)],
)
def test_train_help_lists_every_field_with_its_help_and_default(algorithm, config_class):
    import importlib
    from dataclasses import fields

    from evol.trainers import TRAINERS

    module_name, class_name, _ = TRAINERS[algorithm]
    config_class = getattr(importlib.import_module(module_name), class_name)
    answer = subprocess.run(
        [sys.executable, "-m", "evol.cli", "train", algorithm, "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr[-2000:]
    text = " ".join(answer.stdout.split())
    from evol.trainers.dpo import DPOSettings
    from evol.trainers.grpo import GRPOSettings
    from evol.trainers.inverse_q import InverseQSettings

    nested = {
        "TrainSettings": TrainSettings,
        "DPOSettings": DPOSettings,
        "InverseQSettings": InverseQSettings,
        "GRPOSettings": GRPOSettings,
    }
    for field in fields(config_class):
        if field.type in nested:
            names = [(f"{field.name}.{f.name}", f) for f in fields(nested[field.type])]
        else:
            names = [(field.name, field)]
        for name, described in names:
            assert f"--{name} " in text, name
            assert " ".join(described.metadata["help"].split()) in text, name
    assert "(default: 100)" in text if algorithm in ("agentevol", "loop") else "(required)" in text


def test_lora_training_saves_a_merged_plain_checkpoint(expert_file, tmp_path):
    from transformers import AutoModelForCausalLM

    from evol.trainers.data import examples, load_trajectories, select
    from evol.trainers.sft import fine_tune

    base = build_tiny_model(tmp_path / "base", ["inc dec submit Counter Target"])
    rows = examples(select(load_trajectories([expert_file])), history_turns=0)
    settings = TrainSettings(**{**QUICK, "lora": True, "lora_r": 4, "lora_alpha": 8, "epochs": 2.0})
    result = fine_tune(base, rows, tmp_path / "lora", settings)
    tuned = AutoModelForCausalLM.from_pretrained(result.model_dir)
    original = AutoModelForCausalLM.from_pretrained(base)
    assert not any("lora" in name for name in tuned.state_dict())
    changed = [
        name for name, weight in tuned.state_dict().items() if not weight.equal(original.state_dict()[name])
    ]
    assert changed and all("proj" in name for name in changed)


@pytest.mark.parametrize(
    ("text", "value"), [("2e-3", 2e-3), ("1E5", 1e5), ("+3.5e-2", 3.5e-2), (".5e1", 5.0)]
)
def test_a_number_in_exponent_form_is_a_number_though_yaml_reads_it_as_a_string(text, value):
    settings = from_mapping(TrainSettings, {"learning_rate": text})
    assert settings.learning_rate == pytest.approx(value)
    config = parse_config(AgentEvolConfig, ["--set", f"train.learning_rate={text}", "--iterations", "1"])
    assert config.train.learning_rate == pytest.approx(value)


@pytest.mark.parametrize("text", ["2e-x", "e5", "2e", "1.0.0e3"])
def test_a_string_that_is_no_number_is_still_refused_for_a_number_field(text):
    with pytest.raises(ConfigError, match="learning_rate: must be a number"):
        from_mapping(TrainSettings, {"learning_rate": text})
