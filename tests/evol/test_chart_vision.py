"""A vision model trained on charts: SFT of the tiny LLaVA on ChartQA-v0 image episodes, full and LoRA.

The expert answers recognition questions on train-split charts in image mode; `fine_tune`
takes the vision path (`evol.trainers.vision`) for an `hf-vision` checkpoint; what it saves
plays a held-out (test split) image episode through `hf-vision:`.
"""

from __future__ import annotations

import math
import os

import pytest

from agents.base import SamplingParams
from evol.rollout import EpisodeSpec, RolloutEngine
from evol.trainers.data import examples, select
from evol.trainers.sft import TrainSettings, fine_tune
from tests.evol.test_vision_training import changed_weights, engine_agent, tiny_vision_checkpoint

pytest.importorskip("torch")
os.environ["HF_HUB_OFFLINE"] = "1"
ENV = "evol/ChartQA-v0"
QUICK = {"epochs": 1.0, "batch_size": 2, "progress": False, "logging_steps": 1, "learning_rate": 1e-3}


def recognition(task: int, split: str) -> EpisodeSpec:
    return EpisodeSpec(ENV, task, {"task": task, "split": split, "mode": "image", "qa_type": "recognition"})


@pytest.fixture(scope="module")
def vision_base(tmp_path_factory) -> str:
    return tiny_vision_checkpoint(tmp_path_factory.mktemp("tiny-llava") / "base")


@pytest.fixture(scope="module")
def chart_trajectories():
    """The expert on 4 recognition questions (2 charts) of the train split, in image mode."""
    engine = RolloutEngine(engine_agent("expert"), concurrency=4, progress=False)
    trajectories = engine.run([recognition(task, "train") for task in (0, 1, 4, 5)])
    engine.close()
    return trajectories


def plays_a_held_out_chart(model_dir) -> None:
    agent = engine_agent(f"hf-vision:{model_dir}", device="cpu", seed=0)
    engine = RolloutEngine(
        agent, concurrency=1, progress=False, max_turns=1, sampling=SamplingParams(max_new_tokens=8)
    )
    (trajectory,) = engine.run([recognition(0, "test")])
    engine.close()
    assert trajectory.error is None and trajectory.turns == 1
    assert agent.last_image_counts == [1]


def test_chart_image_episodes_are_one_image_question_and_the_expert_answer(chart_trajectories):
    assert all(t.success for t in chart_trajectories)
    messages = chart_trajectories[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    parts = messages[1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert messages[2]["content"].startswith("Answer: ")


def test_two_step_vision_sft_on_chart_episodes_writes_a_model_hf_vision_plays(
    vision_base, chart_trajectories, tmp_path
):
    rows = examples(select(chart_trajectories))
    result = fine_tune(vision_base, rows, tmp_path / "sft", TrainSettings(**QUICK, max_length=1536))
    assert len(result.losses) == 2 and all(math.isfinite(loss) for loss in result.losses)
    assert result.examples == 4 and result.truncated == 0
    assert changed_weights(vision_base, result.model_dir)
    plays_a_held_out_chart(result.model_dir)


def test_lora_vision_sft_on_chart_episodes_changes_only_the_language_model(
    vision_base, chart_trajectories, tmp_path
):
    settings = TrainSettings(**QUICK, max_length=1536, lora=True, lora_r=4, lora_alpha=8)
    result = fine_tune(vision_base, examples(select(chart_trajectories)), tmp_path / "lora", settings)
    assert len(result.losses) == 2 and all(math.isfinite(loss) for loss in result.losses)
    changed = changed_weights(vision_base, result.model_dir)
    assert changed and all("language_model" in name for name in changed)
    plays_a_held_out_chart(result.model_dir)
