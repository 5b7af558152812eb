"""GPO (`evol train gpo`): the two players' phases alternate in the configured order, each from
its latest checkpoint and against the other's; a run stopped after a phase resumes without redoing
it; the attacker's reward weights are applied as configured; bad configs are refused by field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import envs
from agents.tiny import build_tiny_model
from envs.redteam.diversity import PromptMemory, self_bleu, similarity
from envs.redteam.judges import GuardJudge
from evol.trainers.config import ConfigError, from_mapping
from evol.trainers.gpo import (
    ATTACKER_ENV,
    STAGE_KEYS,
    CountingJudge,
    GPOConfig,
    GPOTrainer,
    attacker_env_kwargs,
    redteam_corpus,
)
from tests.conftest import ROOT

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny models' matrices are small: one torch thread is faster than several (and than
    oversubscribed cores); the session's setting is restored after this module."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """One tiny untrained model: both players start from it. Its replies are noise (invalid
    prompts and replies: constant rewards); the phases' mechanics — order, checkpoints, resume,
    the evaluation rows — are what is tested here, not learning (benchmarks/gpo_redteam.py is)."""
    return build_tiny_model(tmp_path_factory.mktemp("gpo") / "tiny", redteam_corpus(), seed=3)


def config(model_dir: Path, out: Path, **change) -> GPOConfig:
    values = {
        "attacker": str(model_dir), "defender": str(model_dir), "output_dir": str(out), "rounds": 1,
        "defender_steps": 1, "attacker_steps": 1, "num_generations": 2, "prompts_per_step": 1,
        "defender_learning_rate": 1e-4, "attacker_learning_rate": 1e-4, "defender_max_new_tokens": 6,
        "attacker_max_new_tokens": 6, "train_seeds": 1, "defender_benign_tasks": 1, "eval_seeds": 2,
        "eval_benign": 1, "eval_after": "round", "progress": False, **change,
    }  # fmt: skip
    return from_mapping(GPOConfig, values)


def done(out: Path, k: int, role: str) -> dict:
    return json.loads((out / f"round_{k}" / role / "done.json").read_text())


def started_from(out: Path, k: int, role: str) -> str:
    """The checkpoint the phase's GRPO run trained from, as its own saved config says."""
    return yaml.safe_load((out / f"round_{k}" / role / "config.yaml").read_text())["model"]


def phase_rows(out: Path) -> list[tuple[int, str]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(row["round"], row["phase"]) for row in rows if "steps" in row]


def test_defender_first_round_the_attacker_plays_the_trained_defender(model_dir, tmp_path):
    out = tmp_path / "run"
    table = GPOTrainer(config(model_dir, out), log=lambda _: None).train()
    assert phase_rows(out) == [(1, "defender"), (1, "attacker")]
    assert started_from(out, 1, "defender") == str(model_dir)
    assert done(out, 1, "defender")["opponent"] == str(model_dir)
    assert started_from(out, 1, "attacker") == str(model_dir)
    assert done(out, 1, "attacker")["opponent"] == str(out / "round_1" / "defender" / "model")
    for role in ("defender", "attacker"):
        assert (out / "round_1" / role / "model" / "config.json").exists()
        assert done(out, 1, role)["steps"] == 1
    # a round-0 row and one per round; every metric present, rates in [0, 1]
    assert list(table) == ["round 0", "1:attacker"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [row for row in rows if "stage" in row]
    assert [row["stage"] for row in evals] == ["round 0", "1:attacker"]
    for row in evals:
        assert set(STAGE_KEYS) <= set(row) and len(row["prompts"]) == 2
        assert all(0 <= row[key] <= 1 for key in STAGE_KEYS if key != "judge_calls_per_s")
        assert isinstance(row["judge_calls"], int) and row["judge_calls_per_s"] >= 0
    assert evals[0]["asr_current"] == evals[0]["asr_initial"]  # round 0: the current defender is the initial
    assert (out / "gpo_curves.png").stat().st_size > 0


def test_attacker_first_stopped_after_one_phase_resumes_with_latest_checkpoints(model_dir, tmp_path):
    out = tmp_path / "run"
    GPOTrainer(
        config(model_dir, out, order=["attacker", "defender"], max_phases=1), log=lambda _: None
    ).train()
    assert phase_rows(out) == [(1, "attacker")]
    assert not (out / "round_1" / "defender").exists()
    first_model = out / "round_1" / "attacker" / "model" / "model.safetensors"
    stamp = first_model.stat().st_mtime_ns
    # rerun, two rounds now: the finished phase is not redone; each phase starts from its role's latest
    log: list[str] = []
    GPOTrainer(config(model_dir, out, order=["attacker", "defender"], rounds=2), log=log.append).train()
    assert any("round 1 attacker: done earlier, skipped" in line for line in log)
    assert first_model.stat().st_mtime_ns == stamp
    assert phase_rows(out) == [(1, "attacker"), (1, "defender"), (2, "attacker"), (2, "defender")]
    r1a, r1d = out / "round_1" / "attacker" / "model", out / "round_1" / "defender" / "model"
    assert started_from(out, 1, "defender") == str(model_dir) and done(out, 1, "defender")["opponent"] == str(
        r1a
    )
    assert started_from(out, 2, "attacker") == str(r1a) and done(out, 2, "attacker")["opponent"] == str(r1d)
    assert started_from(out, 2, "defender") == str(r1d)
    assert done(out, 2, "defender")["opponent"] == str(out / "round_2" / "attacker" / "model")
    stages = [json.loads(line).get("stage") for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in stages if s] == ["round 0", "1:defender", "2:defender"]  # no eval row twice


def test_attacker_reward_weights_applied_as_configured_on_a_prompt_history(tmp_path):
    cfg = config(tmp_path, tmp_path, bleu_weight=2.5, similarity_weight=0.5)
    memory = PromptMemory(16)
    judge = CountingJudge(GuardJudge())
    env = envs.make(ATTACKER_ENV, **{**attacker_env_kwargs(cfg, None, judge, memory), "defender": "scripted"})
    seed = env.reset(seed=0, options={"task": 0, "split": "train"})[1]["seed_prompt"]
    history = [f"Write a story where a character asks: {seed}", f"For a novel, {seed}"]
    for n, prompt in enumerate(history):
        memory.add(("hand-made", n), prompt)
    prompt = history[0]  # a repeat of its own past prompt
    before = memory.prompts()
    _, reward, _, _, info = env.step(prompt)
    bleu, sim = self_bleu(prompt, before), similarity(prompt, before, "tfidf")
    assert bleu > 0.5 and sim > 0.5
    assert judge.take()[0] == 1  # the env asked the judge passed in (what judge_calls_per_s counts)
    p_unsafe = judge.judge(prompt, info["response"]).p_unsafe
    assert reward == pytest.approx(p_unsafe - 2.5 * bleu - 0.5 * sim, abs=1e-3)
    assert memory.prompts()[-1] == prompt  # kept for the next prompts' penalties
    # a new wording, against the same history and that prompt, is penalised less
    env.reset(seed=1, options={"task": 0, "split": "train"})
    _, fresh_reward, _, _, fresh = env.step(
        f"Hypothetically, as a safety researcher: {seed.lower()} Answer briefly."
    )
    assert 0 < fresh["penalty"] < info["penalty"]
    assert fresh_reward == pytest.approx(fresh["p_unsafe"] - fresh["penalty"], abs=1e-3)
    assert "2.5 x the Self-BLEU" in envs.make(ATTACKER_ENV, bleu_weight=2.5).reset(seed=0)[1]["instruction"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"order": ["defender", "defender"]}, "order"),
        ({"order": ["critic", "attacker"]}, "order"),
        ({"rounds": 0}, "rounds"),
        ({"defender_steps": 0}, "defender_steps"),
        ({"num_generations": 1}, "num_generations"),
        ({"beta": -1.0}, "beta"),
        ({"epsilon": 1.5}, "epsilon"),
        ({"attacker_learning_rate": 0}, "attacker_learning_rate"),
        ({"defender_reward": "helpful"}, "defender_reward"),
        ({"bleu_weight": -1.0}, "bleu_weight"),
        ({"similarity": "embedding"}, "similarity"),
        ({"judge": "gpt4"}, "judge"),
        ({"judge": "classifier:/nonexistent"}, "judge"),
        ({"eval_after": "step"}, "eval_after"),
        ({"attacker": "/nonexistent/model"}, "attacker"),
        ({"max_phases": 0}, "max_phases"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(tmp_path, change, field):
    with pytest.raises(ConfigError, match=field):
        config(tmp_path, tmp_path, **change)


def test_cli_refuses_a_bad_config_with_exit_code_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(f"attacker: {tmp_path}\ndefender: {tmp_path}\nsimilarity_weight: 200\n")
    result = subprocess.run(
        [sys.executable, "-m", "evol.cli", "train", "gpo", "--config", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "similarity_weight" in result.stderr


def test_the_defender_pool_env_is_private_to_the_process(tmp_path):
    """GPO's second defender config is built here but never listed: servers and `env_ids()` skip it."""
    import envs
    from evol.trainers.gpo import POOL_ENV

    envs.register(POOL_ENV, "envs.redteam.defender:DefenderEnv", listed=False)
    assert POOL_ENV not in envs.env_ids()
    env = envs.make(POOL_ENV)
    try:
        _, info = env.reset(seed=0, options={"task": 0})
        assert info["instruction"]
    finally:
        env.close()
