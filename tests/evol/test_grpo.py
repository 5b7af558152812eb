"""Online GRPO on EvolGym envs: the adapter (`evol.trainers.grpo_env`) drives served envs through
TRL's GRPOTrainer on a tiny model; a server killed mid-step; `evol train grpo` end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import envs
from agents.base import parse_action
from agents.tiny import build_tiny_model
from envs.remote import RetryPolicy
from evol.trainers.config import ConfigError, from_mapping
from evol.trainers.grpo import GRPOConfig
from evol.trainers.grpo_env import EnvRollout
from evol.trainers.sft import TrainSettings, fine_tune
from tests.conftest import ROOT, ServerProcess

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
SIGNAL = "acme/Signal-v0"
INSTRUCTION = "Answer the signal with one word: stop, go, wait or turn."
CORPUS = [INSTRUCTION, "Signal: red. green. yellow. blue.", "stop go wait turn"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny model taught to answer `stop` or `go` to any signal: right about half the time on red
    and green, never on yellow and blue — rewards that vary within a group."""
    root = tmp_path_factory.mktemp("grpo")
    base = build_tiny_model(root / "base", CORPUS, seed=1)
    rows = [
        {"messages": [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": f"Signal: {c}."},
                      {"role": "assistant", "content": w}]}
        for c in ("red", "green", "yellow", "blue") for w in ("stop", "go")
    ]  # fmt: skip
    settings = TrainSettings(
        epochs=30, learning_rate=3e-3, batch_size=8, progress=False, warmup_ratio=0.0, logging_steps=50
    )
    return fine_tune(base, rows, root / "sft", settings).model_dir


def grpo_trainer(model_dir: Path, rollout: EnvRollout, out: Path, steps: int = 2):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig as TRLGRPOConfig
    from trl import GRPOTrainer

    args = TRLGRPOConfig(
        output_dir=str(out), num_generations=4, per_device_train_batch_size=8, max_steps=steps,
        learning_rate=1e-4, beta=0.04, logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    return GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        reward_funcs=rollout.reward_func,
        args=args,
        train_dataset=rollout.dataset(tasks=4),
        rollout_func=rollout,
    )


def check_episode_tokens(episode, tokenizer) -> None:
    """The completion's model tokens are exactly the sampled replies, with finite log-probs; the
    env's tokens carry none; each action sent is the parsed decoded reply."""
    model_ids = [t for t, m in zip(episode.completion_ids, episode.env_mask, strict=True) if m]
    assert model_ids == [t for reply in episode.replies for t in reply]
    for logp, mask in zip(episode.logprobs, episode.env_mask, strict=True):
        assert (logp is not None and math.isfinite(logp) and logp <= 0) if mask else logp is None
    for reply, action in zip(episode.replies, episode.actions, strict=False):
        text = tokenizer.decode(reply, skip_special_tokens=True)
        assert action == (parse_action(text) or text)


def check_sampled_logprobs(rollout: EnvRollout, trainer) -> None:
    """One rollout before training: the trainer's model, scoring prompt + completion ids as given,
    puts on every model token the log-prob the rollout recorded when sampling it — the ids are the
    sampled ones, nothing re-tokenised — and the output has what TRL's rollout_func contract asks."""
    import torch

    prompts = [row["prompt"] for row in trainer.train_dataset.select(range(2)) for _ in range(4)]
    output = rollout(prompts, trainer)
    assert {"prompt_ids", "completion_ids", "logprobs", "env_mask", "env_reward"} <= set(output)
    model = trainer.model
    for prompt_ids, completion_ids, logprobs, mask in zip(
        output["prompt_ids"], output["completion_ids"], output["logprobs"], output["env_mask"], strict=True
    ):
        ids = torch.tensor([prompt_ids + completion_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float().log_softmax(-1)
        scored = logits.gather(-1, ids[0, len(prompt_ids) :, None]).squeeze(-1).tolist()
        for given, rescored, m in zip(logprobs, scored, mask, strict=True):
            if m:
                assert given == pytest.approx(rescored, abs=1e-3)


def test_served_env_trains_two_grpo_steps_with_the_envs_rewards(model_dir, tmp_path):
    server = ServerProcess([SIGNAL])
    try:
        rollout = EnvRollout([SIGNAL], urls=[server.url], max_turns=3, max_new_tokens=4)
        trainer = grpo_trainer(model_dir, rollout, tmp_path / "trl")
        check_sampled_logprobs(rollout, trainer)
        trainer.train()
    finally:
        server.stop()
    logs = [row for row in trainer.state.log_history if "loss" in row]
    assert len(logs) == 2 and all(math.isfinite(row["loss"]) for row in logs)
    assert rollout.stats.episodes == 24 and rollout.stats.failed == 0
    batch = rollout.last_batch
    assert len(batch) == 8
    for episode in batch:
        check_episode_tokens(episode, trainer.processing_class)
        # the reward is the env's: replaying the actions on a local env pays the same
        local = envs.make(SIGNAL)
        local.reset(seed=episode.spec.seed, options=episode.spec.options)
        assert episode.reward == sum(local.step(a)[1] for a in episode.actions)
    assert logs[-1]["reward"] == pytest.approx(sum(e.reward for e in batch) / len(batch))
    assert rollout.stats.successes > 0  # the model is right sometimes: rewards are not all zero


class KillOnSecondStep(EnvRollout):
    """Kills `server` after the model's first replies of the second training step, before the env steps."""

    def __init__(self, *args, server: ServerProcess, **kwargs):
        super().__init__(*args, **kwargs)
        self.server = server
        self.calls = 0

    def __call__(self, prompts, trainer):
        self.calls += 1
        return super().__call__(prompts, trainer)

    def _step(self, live, tokenizer, last_turn):
        if self.calls == 2 and self.server.process.poll() is None:
            self.server.kill()
        super()._step(live, tokenizer, last_turn)


def test_a_server_killed_mid_step_fails_only_its_episodes_never_as_zero_rewards(model_dir, tmp_path):
    alive, doomed = ServerProcess([SIGNAL]), ServerProcess([SIGNAL])
    try:
        rollout = KillOnSecondStep(
            [SIGNAL], urls=[alive.url, doomed.url], max_turns=2, max_new_tokens=4,
            retry=RetryPolicy(retries=0), failure_log=tmp_path / "failures.jsonl", server=doomed,
        )  # fmt: skip
        trainer = grpo_trainer(model_dir, rollout, tmp_path / "trl")
        trainer.train()
    finally:
        alive.stop()
        doomed.stop()
    batch = rollout.last_batch
    failed = [e for e in batch if e.error is not None]
    finished = [e for e in batch if e.error is None]
    assert failed and finished  # the dead server's episodes failed, the live one's played on
    assert rollout.stats.failed == len(failed) and rollout.stats.faults["infra"] == len(failed)
    lines = (tmp_path / "failures.jsonl").read_text().splitlines()
    assert len(lines) == len(failed) and all(json.loads(line)["phase"] == "step" for line in lines)
    logs = [row for row in trainer.state.log_history if "loss" in row]
    assert len(logs) == 2 and all(math.isfinite(row["loss"]) for row in logs)
    assert logs[-1]["env/failed_episodes"] == len(failed)
    # the logged mean reward is over finished episodes only: a failure is not a zero in it
    assert logs[-1]["reward"] == pytest.approx(sum(e.reward for e in finished) / len(finished))
    for episode in finished:
        check_episode_tokens(episode, trainer.processing_class)


def test_evol_train_grpo_runs_end_to_end_on_a_served_env(model_dir, tmp_path):
    server = ServerProcess([SIGNAL])
    out = tmp_path / "run"
    config = tmp_path / "grpo.yaml"
    config.write_text(
        f"model: {model_dir}\nenv_ids: [{SIGNAL}]\nurls: [{server.url}]\noutput_dir: {out}\n"
        "tasks: 4\nnum_generations: 2\nprompts_per_step: 2\nsteps: 2\nmax_turns: 2\nmax_new_tokens: 4\n"
        "learning_rate: 1.0e-4\nlora: true\nlora_r: 4\nprogress: false\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "evol.cli", "train", "grpo", "--config", str(config)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained model saved in" in done.stdout
    assert (out / "model" / "config.json").exists()
    stats = json.loads((out / "rollout_stats.json").read_text())
    assert stats["episodes"] == 8 and stats["failed"] == 0
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]  # fmt: skip
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_generations": 1}, "num_generations"),
        ({"env_ids": []}, "env_ids"),
        ({"env_ids": ["acme/Nope-v0"]}, "env_ids"),
        ({"urls": ["localhost:8000"]}, "urls"),
        ({"epsilon": 1.5}, "epsilon"),
        ({"beta": -0.1}, "beta"),
        ({"max_turns": 0}, "max_turns"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"loss_type": "ppo"}, "loss_type"),
        ({"model": "/nonexistent/model"}, "model"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(model_dir, change, field):
    with pytest.raises(ConfigError, match=field):
        from_mapping(GRPOConfig, {"model": str(model_dir), "env_ids": [SIGNAL], **change})


def test_cli_refuses_a_bad_config_with_exit_code_2(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(f"model: {tmp_path}\nenv_ids: [{SIGNAL}]\nnum_generations: 1\n")
    done = subprocess.run(
        [sys.executable, "-m", "evol.cli", "train", "grpo", "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "num_generations" in done.stderr


def test_a_time_budget_stops_after_the_step_that_passes_it_and_the_instruction_can_stay_out(
    model_dir, tmp_path
):
    from evol.rollout import task_specs
    from evol.trainers.grpo import GRPORun

    config = GRPOConfig(
        model=str(model_dir), env_ids=[SIGNAL], output_dir=str(tmp_path / "run"), num_generations=2,
        prompts_per_step=1, steps=50, time_budget_s=0.001, max_turns=1, max_new_tokens=3, progress=False,
        instruction_in_context=False,
    )  # fmt: skip
    specs = task_specs([SIGNAL], 2, start=5)
    run = GRPORun(config, specs=specs)
    result = run.train()
    assert run.trainer.state.global_step == 1 and len(result.losses) == 1
    assert {spec.seed for spec in run.rollout.specs[next(iter(run.rollout.specs))]} <= {5, 6}
    first = run.rollout.last_batch[0].messages
    assert first[0]["role"] == "user" and INSTRUCTION not in json.dumps(first)
