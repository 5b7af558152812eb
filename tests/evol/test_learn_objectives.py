"""The self-improvement loop's learn objectives: DPO and Inverse-Q* beside SFT, preference pairs
from rollouts, held-out evaluation, and a task the tiny model must learn."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.tiny import build_tiny_model
from evol.trainers.config import from_mapping
from evol.trainers.dpo import DPOSettings, preference_tune
from evol.trainers.inverse_q import (
    InverseQSettings,
    _encode,
    _score_rows,
    _sequence_logps,
    guided_prompt,
    inverse_q_loss,
    inverse_q_tune,
    token_credits,
)
from evol.trainers.loop import LoopConfig, SelfImproveTrainer, phase_specs
from evol.trainers.objectives.sft import one_per_task
from evol.trainers.pairs import normalize_pair, pairs_from_trajectories, read_pairs
from evol.trajectory import Trajectory, TrajectoryWriter, episode_key
from tests.conftest import ROOT

os.environ["HF_HUB_OFFLINE"] = "1"
SIGNAL = "acme/Signal-v0"
COUNTER = "acme/Counter-v0"
QUICK = {"epochs": 1.0, "batch_size": 1, "progress": False, "logging_steps": 1, "warmup_ratio": 0.0}

PROMPT = [
    {"role": "system", "content": "Answer the signal with one word: stop, go, wait or turn."},
    {"role": "user", "content": "Signal: red."},
]
PAIR = {
    "prompt": PROMPT,
    "chosen": [{"role": "assistant", "content": "stop"}],
    "rejected": [{"role": "assistant", "content": "go"}],
}
CORPUS = ["Answer the signal with one word: stop, go, wait or turn.", "Signal: red. green. yellow. blue.",
          "stop go wait turn", "Guidance: a good next action here is: stop"]  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny models with one tokenizer: a policy and a different reference."""
    root = tmp_path_factory.mktemp("models")
    return build_tiny_model(root / "policy", CORPUS, seed=1), build_tiny_model(
        root / "reference", CORPUS, seed=2
    )


def completion_logp(model_dir: Path, prompt, completion) -> float:
    """Sum of log p(token) over the completion's tokens, computed here from the model's logits."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompt_ids, completion_ids = _encode(tokenizer, prompt, completion)
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    logps = torch.log_softmax(logits, -1)
    positions = range(len(prompt_ids) - 1, len(prompt_ids) + len(completion_ids) - 1)
    return float(sum(logps[p, ids[0, p + 1]] for p in positions))


# ---- losses against values computed by hand --------------------------------------------------
def test_dpo_first_loss_is_minus_log_sigmoid_of_the_hand_computed_margin(models, tmp_path):
    policy, reference = models
    beta = 0.5
    margin = (
        completion_logp(policy, PROMPT, PAIR["chosen"])
        - completion_logp(reference, PROMPT, PAIR["chosen"])
        - completion_logp(policy, PROMPT, PAIR["rejected"])
        + completion_logp(reference, PROMPT, PAIR["rejected"])
    )
    expected = -math.log(1 / (1 + math.exp(-beta * margin)))
    settings = DPOSettings(**QUICK, learning_rate=1e-6, beta=beta, reference_model=str(reference))
    result = preference_tune(policy, [PAIR], tmp_path / "dpo", settings)
    assert result.losses[0] == pytest.approx(expected, rel=1e-3), (result.losses, expected)
    # without a reference model the policy is its own reference at the first step: margin 0, loss ln 2
    result = preference_tune(policy, [PAIR], tmp_path / "self", DPOSettings(**QUICK, learning_rate=1e-6))
    assert result.losses[0] == pytest.approx(math.log(2), rel=1e-4)


def test_inverse_q_credits_and_loss_on_hand_built_values():
    import torch

    guided = torch.tensor([[-1.0, -2.0, -0.5, -9.0]])
    plain = torch.tensor([[-2.0, -2.0, -3.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert token_credits(guided, plain, mask).tolist() == [[1.0, 0.0, 2.5, 0.0]]
    assert token_credits(guided, plain, mask, clip=2.0).tolist() == [[1.0, 0.0, 2.0, 0.0]]
    assert token_credits(guided, plain, mask, scale=2.0, clip=9.0).tolist() == [[2.0, 0.0, 5.0, 0.0]]
    # centred: the mean credit over the three response tokens (3.5 / 3) is taken off each
    centred = token_credits(guided, plain, mask, center=True)[0].tolist()
    assert centred == pytest.approx([1 - 3.5 / 3, -3.5 / 3, 2.5 - 3.5 / 3, 0.0])

    policy = torch.tensor([[-1.0, -1.0, -2.0, -5.0]])
    ref = torch.tensor([[-2.0, -1.0, -1.0, -5.0]])
    credits = torch.tensor([[1.0, 0.0, 2.5, 0.0]])
    # β = 0.5: implicit rewards 0.5, 0, -0.5 -> errors (0.5-1)², 0², (-0.5-2.5)² over 3 tokens
    assert float(inverse_q_loss(policy, ref, credits, mask, 0.5)) == pytest.approx((0.25 + 0 + 9) / 3)
    # weighted likelihood: -(1·-1 + 0·-1 + 2.5·-2) / 3
    assert float(inverse_q_loss(policy, ref, credits, mask, 0.5, "weighted_nll")) == pytest.approx(6 / 3)


def test_inverse_q_credit_of_a_token_is_the_guided_minus_the_plain_log_prob(models):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    policy, _ = models
    tokenizer = AutoTokenizer.from_pretrained(policy)
    model = AutoModelForCausalLM.from_pretrained(policy).eval()
    guidance = "Guidance: a good next action here is: stop"
    row = {"prompt": PROMPT, "completion": PAIR["chosen"], "guidance": guidance}
    settings = InverseQSettings(credit_clip=100.0)
    (scored,) = _score_rows(model, tokenizer, [row], settings, batch_size=4)
    plain = completion_logp(policy, PROMPT, PAIR["chosen"])
    guided = completion_logp(policy, guided_prompt(PROMPT, guidance), PAIR["chosen"])
    assert sum(scored["credits"]) == pytest.approx(guided - plain, abs=1e-4)
    assert sum(scored["ref_logps"]) == pytest.approx(plain, abs=1e-4)
    ids = torch.tensor([scored["input_ids"]])
    with torch.no_grad():
        logps = _sequence_logps(model, ids, torch.ones_like(ids))[0]
    assert logps[scored["prompt_length"] - 1 :].tolist() == pytest.approx(scored["ref_logps"], abs=1e-5)


def test_guidance_goes_to_the_system_message_or_the_last_user_turn():
    assert guided_prompt(PROMPT, "G")[0]["content"].endswith("\n\nG") and PROMPT[0]["content"][-1] != "G"
    assert guided_prompt(PROMPT, "G", "user")[1]["content"] == "Signal: red.\n\nG"
    assert guided_prompt(PROMPT[1:], "G") == [{"role": "system", "content": "G"}, PROMPT[1]]


# ---- a short run per objective ---------------------------------------------------------------
@pytest.mark.parametrize("objective", ["dpo", "inverse_q"])
def test_a_few_steps_of_each_objective_lower_its_loss_and_save_a_loadable_checkpoint(
    models, tmp_path, objective
):
    from transformers import AutoModelForCausalLM

    policy, _ = models
    if objective == "dpo":
        settings = DPOSettings(**{**QUICK, "epochs": 4.0}, learning_rate=2e-3, beta=0.5)
        result = preference_tune(policy, [PAIR], tmp_path, settings)
    else:
        rows = [{"prompt": PROMPT, "completion": [{"role": "assistant", "content": a}],
                 "guidance": "Guidance: a good next action here is: stop"} for a in ("stop", "go")]  # fmt: skip
        # credits scaled up: an untrained model barely listens to guidance, and its credits start near 0
        settings = InverseQSettings(
            **{**QUICK, "epochs": 5.0, "batch_size": 2}, learning_rate=3e-4, beta=1.0, credit_scale=20.0
        )
        result = inverse_q_tune(policy, rows, tmp_path, settings)
    assert len(result.losses) >= 3 and result.losses[-1] < result.losses[0], result.losses
    model = AutoModelForCausalLM.from_pretrained(result.model_dir)
    assert model.num_parameters() > 0 and (result.model_dir / "tokenizer.json").exists()


# ---- pairs -----------------------------------------------------------------------------------
def episode(task: int, sample: int, actions: list[str], success: bool, env: str = COUNTER) -> Trajectory:
    messages = [
        {"role": "system", "content": "Reach the target."},
        {"role": "user", "content": "Counter: 0."},
    ]
    for n, action in enumerate(actions):
        messages += [{"role": "assistant", "content": action}, {"role": "user", "content": f"after {n}"}]
    options = {"task": task}
    return Trajectory(
        env=env, task={"seed": task, "options": options}, messages=messages, actions=actions,
        rewards=[float(success)], reward=float(success), success=success, turns=len(actions),
        sample=sample, key=episode_key(env, task, options, sample),
    )  # fmt: skip


def test_pairs_from_rollouts_pair_a_success_against_a_failure_of_the_same_task():
    rollouts = [
        episode(0, 0, ["inc", "inc", "submit"], True),
        episode(0, 1, ["inc", "dec", "submit"], False),
        episode(0, 2, ["dec", "submit"], False),
        episode(1, 0, ["inc", "submit"], False),  # no success in task 1: no pair
        episode(1, 1, ["dec", "submit"], False),
        episode(2, 0, ["inc", "submit"], True),  # task 2: success against task 3's failure is never paired
        episode(3, 0, ["dec", "submit"], False),
    ]
    pairs = pairs_from_trajectories(rollouts)
    assert len(pairs) == 1
    (pair,) = pairs
    # best against worst first: sample 0 against sample 2, which differ at the first reply
    assert pair["prompt"] == rollouts[0].messages[:2]
    assert pair["chosen"] == [{"role": "assistant", "content": "inc"}]
    assert pair["rejected"] == [{"role": "assistant", "content": "dec"}]
    two = pairs_from_trajectories(rollouts, pairs_per_task=2)
    assert len(two) == 2 and two[1]["prompt"] == rollouts[0].messages[:4]  # shared: inc, "after 0"
    assert (two[1]["chosen"][0]["content"], two[1]["rejected"][0]["content"]) == ("inc", "dec")
    whole = pairs_from_trajectories(rollouts, pairing="whole")
    assert whole[0]["prompt"] == rollouts[0].messages[:2] and whole[0]["chosen"] == rollouts[0].messages[2:]
    assert (
        pairs_from_trajectories(rollouts, instruction_in_context=False)[0]["prompt"]
        == rollouts[0].messages[1:2]
    )
    with pytest.raises(ValueError, match="pairing"):
        pairs_from_trajectories(rollouts, pairing="best")
    # the prompt is what the agent saw: with history_turns=0 the instruction and the current observation
    windowed = pairs_from_trajectories(rollouts, pairs_per_task=2, history_turns=0)
    assert windowed[1]["prompt"] == [rollouts[0].messages[0], rollouts[0].messages[3]]
    assert pairs_from_trajectories(rollouts, pairs_per_task=2, history_turns=0, instruction_in_context=False)[
        1
    ]["prompt"] == [rollouts[0].messages[3]]


def test_faulted_episodes_and_higher_reward_ties_are_handled():
    better = episode(0, 0, ["inc"], False)
    better.reward = 0.5
    worse = episode(0, 1, ["dec"], False)
    broken = episode(0, 2, ["submit"], True)
    broken.fault, broken.error = "infra", "server gone"
    (pair,) = pairs_from_trajectories([better, worse, broken])
    assert pair["chosen"][0]["content"] == "inc" and pair["rejected"][0]["content"] == "dec"
    assert pairs_from_trajectories([episode(0, 0, ["inc"], True), episode(0, 1, ["inc"], True)]) == []


def test_preference_files_in_trl_format_are_read_and_bad_lines_named(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "Signal: red.", "chosen": "stop", "rejected": "go"},
        {"messages": PROMPT, "chosen": PAIR["chosen"], "rejected": PAIR["rejected"]},
        {"prompt": PROMPT, "chosen": {"role": "assistant", "content": "stop"}, "rejected": "go"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    read = read_pairs(path)
    assert read[0] == {"prompt": [{"role": "user", "content": "Signal: red."}],
                       "chosen": [{"role": "assistant", "content": "stop"}],
                       "rejected": [{"role": "assistant", "content": "go"}]}  # fmt: skip
    assert read[1] == read[2] == PAIR
    for bad, named in [({"prompt": "p", "chosen": "c"}, "rejected"), ({"chosen": "c", "rejected": "r"}, "prompt"),
                       ({"prompt": "p", "chosen": 3, "rejected": "r"}, "chosen"), ([1, 2], "JSON object")]:  # fmt: skip
        with pytest.raises(ValueError, match=named):
            normalize_pair(bad)
    path.write_text(json.dumps(rows[0]) + "\n" + '{"prompt": "p", "chosen": "c"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_pairs(path)


def test_evol_data_pairs_writes_trl_pairs_from_a_rollout_file(tmp_path):
    rollout = tmp_path / "explore.jsonl"
    with TrajectoryWriter(rollout) as writer:
        for trajectory in (episode(0, 0, ["inc", "submit"], True), episode(0, 1, ["dec", "submit"], False)):
            writer.write(trajectory)
    out = tmp_path / "pairs.jsonl"
    command = [sys.executable, "-m", "evol.cli", "data", "pairs", "--from", str(rollout), "--out", str(out)]
    answer = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0, answer.stderr
    assert "wrote 1 pairs from 2 episodes (1 tasks)" in answer.stdout
    (pair,) = read_pairs(out)
    assert pair["chosen"][0]["content"] == "inc"
    missing = subprocess.run(command[:6] + [str(tmp_path / "nope.jsonl"), "--out", str(out)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert missing.returncode == 2 and "no such rollout file" in missing.stderr


# ---- the loop --------------------------------------------------------------------------------
def test_keep_one_per_task_takes_the_best_sample_of_each_task():
    a0, a1, b0 = episode(0, 0, ["inc"], True), episode(0, 1, ["inc"], True), episode(1, 0, ["dec"], True)
    kept = one_per_task([(a1, 1.0), (a0, 1.0), (b0, 1.0)])
    assert [t.key for t, _ in kept] == [a0.key, b0.key]
    assert [t.key for t, _ in one_per_task([(a0, 0.2), (a1, 0.9)])] == [a1.key]


def test_held_out_tasks_never_overlap_the_explored_ones():
    # no split: a hash split of the task indices
    explored = {s.seed for s in phase_specs(COUNTER, 80, "train")}
    held_out = {s.seed for s in phase_specs(COUNTER, 15, "test")}
    assert len(explored) == 80 and len(held_out) == 15 and not explored & held_out
    # a split of its own: its test split
    assert {s.options["split"] for s in phase_specs("evol/BabyAI-v0", 3, "test")} == {"test"}
    assert [s.seed for s in phase_specs("evol/BabyAI-v0", 3, "test")] == [0, 1, 2]
    # one data file for both splits: the hash split again; one file per split: the splits
    single = {"data": "problems.jsonl"}
    train = {s.seed for s in phase_specs("evol/MathCritique-v0", 40, "train", single)}
    test = {s.seed for s in phase_specs("evol/MathCritique-v0", 10, "test", single)}
    assert not train & test
    both = {"data": {"train": "a.jsonl", "test": "b.jsonl"}}
    assert phase_specs("evol/MathCritique-v0", 1, "test", both)[0].options == {"task": 0, "split": "test"}
    # K samples per task
    assert [s.sample for s in phase_specs(COUNTER, 2, "train", samples=3)] == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"learn": "ppo"}, "learn"),
        ({"explore": "guess"}, "explore"),
        ({"learn": "dpo", "samples_per_task": 1}, "samples_per_task"),
        (
            {"learn": "dpo", "samples_per_task": 2, "dpo": {"reference_model": "/no/such/model"}},
            "reference_model",
        ),
        ({"dpo": {"beta": 0}}, "beta"),
        ({"inverse_q": {"guidance": "oracle"}}, "guidance"),
        ({"pairing": "best"}, "pairing"),
        ({"env_kwargs": {"evol/BabyAI-v0": {}}}, "env_kwargs"),
        ({"env_kwargs": {COUNTER: {"size": 3}}}, "env_kwargs"),
        ({"counterparts": ["critic"]}, "counterparts"),
        ({"learn": "grpo", "history_turns": 0}, "history_turns"),
        ({"learn": "grpo", "grpo": {"num_generations": 1}}, "num_generations"),
        ({"grpo": {"time_budget_s": 0}}, "time_budget_s"),
    ],
)
def test_bad_loop_configs_are_refused_before_any_work_naming_the_field(tmp_path, capsys, change, field):
    import yaml

    from evol.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "envs": [COUNTER], **change}))
    assert main(["train", "loop", "--config", str(path)]) == 2
    stderr = capsys.readouterr().err
    assert "bad config" in stderr and field in stderr, stderr
    assert not (tmp_path / "run").exists(), "nothing may start before the config is checked"


def loop_config(run_dir: Path, **overrides) -> LoopConfig:
    train = {"epochs": 20.0, "learning_rate": 4e-3, "batch_size": 4, "progress": False, "logging_steps": 5}
    settings = {
        "run_dir": str(run_dir), "envs": [SIGNAL], "base_tasks": 16, "explore_tasks": 16, "eval_tasks": 24,
        "iterations": 1, "max_new_tokens": 3, "concurrency": 8, "progress": False, "instruction_in_context": False,
        "bc_train": train, "train": train, **overrides,
    }  # fmt: skip
    return from_mapping(LoopConfig, settings)


@pytest.mark.slow  # a learning proof (26-77 s): run with python -m pytest -m slow
def test_agentevol_learns_a_task_its_held_out_success_rises_above_the_untrained_models(tmp_path):
    """A task the tiny model learns from what it sees: the signal's colour names its action."""
    from evol.trainers.agentevol import AgentEvolConfig, AgentEvolTrainer
    from evol.trainers.config import to_mapping

    config = from_mapping(AgentEvolConfig, to_mapping(loop_config(tmp_path / "run", samples_per_task=2)))
    table = AgentEvolTrainer(config, log=lambda _: None).train()
    explored = {s.seed for s in phase_specs(SIGNAL, 16, "train")}
    evaluated = {
        json.loads(line)["task"]["seed"] for line in open(tmp_path / "run/eval/iter_1/trajectories.jsonl")
    }
    assert len(evaluated) == 24 and not explored & evaluated
    assert table["untrained"][SIGNAL] == 0.0
    assert table["iter_1"][SIGNAL] >= 0.5, table


@pytest.mark.parametrize("learn", ["dpo", "inverse_q", "grpo"])
def test_the_loop_runs_each_objective_end_to_end(tmp_path, learn):
    quick = {"epochs": 2.0, "learning_rate": 1e-3, "batch_size": 4, "progress": False, "logging_steps": 1}
    grpo = {"steps": 2, "num_generations": 2, "prompts_per_step": 2, "learning_rate": 1e-3, "max_turns": 2,
            "max_new_tokens": 3}  # fmt: skip
    config = loop_config(
        tmp_path / "run", learn=learn, samples_per_task=3, explore_temperature=1.5, eval_untrained=False,
        explore_tasks=8, eval_tasks=8, dpo={**quick, "beta": 0.5}, inverse_q={**quick, "guidance": "hint"},
        grpo=grpo,
    )  # fmt: skip
    table = SelfImproveTrainer(config, log=lambda _: None).train()
    assert list(table) == ["bc", "iter_1"]
    run = tmp_path / "run"
    assert (run / "iter_1/model/model.safetensors").exists() and (run / "learning_curve.png").exists()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    trained = [m for m in metrics if m.get("stage") == "iter_1" and "losses" in m]
    assert trained and trained[0]["examples"] > 0
    if learn == "dpo":
        assert (run / "iter_1/pairs.jsonl").exists()
        assert any(m.get("pairs", 0) > 0 for m in metrics)
    elif learn == "grpo":  # online: no explore phase; G x tasks-per-step x steps episodes on train tasks
        assert not (run / "iter_1/explore.jsonl").exists()
        assert "iter_1/explore" not in json.loads((run / "state.json").read_text())["done"]
        row = next(m for m in metrics if "grpo_episodes" in m)
        assert (
            row["grpo_episodes"] == 2 * 2 * 2 and row["grpo_steps"] == 2 and row["grpo_failed_episodes"] == 0
        )
        assert trained[0]["examples"] == 8 and all(math.isfinite(x) for x in trained[0]["losses"])
    else:
        assert any(m.get("inverse_q_rows", 0) > 0 for m in metrics)
