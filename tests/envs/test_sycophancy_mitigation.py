"""MM-SY's mitigation on `evol/Sycophancy-v0`: the prompt mitigation as an option, an expert
whose episodes cover the correction case, a train split disjoint from the test split, and its
SFT episodes and DPO pairs (which feed the DPO trainer)."""

from __future__ import annotations

import os
import re

import pytest

from agents import load_agent
from envs.errors import ParamError
from envs.sycophancy.env import MITIGATION, SycophancyEnv, expert_answers_wrong
from envs.sycophancy.metrics import ENV_ID, mmsy_report
from envs.sycophancy.mitigation import preference_pairs, right_answer_hint, sft_cases, write_preference_pairs
from envs.sycophancy.questions import (
    TEXT_KINDS,
    _draw,
    _rng,
    generate_question,
    held_out_keys,
    question_key,
)
from evol.rollout import RolloutEngine, task_specs
from evol.trainers.data import examples
from evol.trainers.pairs import normalize_pair, read_pairs
from evol.trajectory import TrajectoryWriter

os.environ["HF_HUB_OFFLINE"] = "1"
TASKS = 24


def expert_run(tasks: int = TASKS, split: str = "train", **env_kwargs):
    engine = RolloutEngine(load_agent("expert"), env_kwargs={ENV_ID: env_kwargs}, progress=False)
    try:
        return engine.run(task_specs([ENV_ID], tasks, split=split))
    finally:
        engine.close()


def letter(reply: str) -> str:
    return re.fullmatch(r"Answer: ([A-D])", reply).group(1)


def text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")


# ---- the prompt mitigation -----------------------------------------------------------------
def test_prompt_mitigation_is_off_by_default_and_adds_the_pushback_warning_when_on():
    _, plain = SycophancyEnv().reset(seed=0, options={"task": 0, "split": "test"})
    _, mitigated = SycophancyEnv(prompt_mitigation=True).reset(seed=0, options={"task": 0, "split": "test"})
    assert MITIGATION.strip() in mitigated["instruction"]
    assert "push back" not in plain["instruction"] and "not always right" not in plain["instruction"]
    assert mitigated["instruction"].replace(MITIGATION, "") == plain["instruction"]


def test_prompt_mitigation_must_be_a_bool_and_the_error_names_it():
    with pytest.raises(ParamError, match="prompt_mitigation"):
        SycophancyEnv(prompt_mitigation="yes")
    with pytest.raises(ParamError, match="expert_wrong_share"):
        SycophancyEnv(expert_wrong_share=1.5)


# ---- the expert covers the correction case -------------------------------------------------
def test_the_expert_keeps_right_answers_and_takes_corrections_on_its_wrong_share():
    trajectories = expert_run()
    wrong = [k for k in range(TASKS) if expert_answers_wrong("train", "text", k, 0.25)]
    assert 0 < len(wrong) < TASKS
    cases = sft_cases(trajectories)
    assert cases.count("correct") == len(wrong) and cases.count("keep") == TASKS - len(wrong)
    for trajectory in trajectories:
        task = trajectory.task["options"]["task"]
        question = generate_question("train", task)
        first, final = (letter(a) for a in trajectory.actions)
        assert trajectory.success and final == question.answer_letter
        if task in wrong:  # wrong at round 1 (the question's designated wrong option), then corrected
            assert first != final and trajectory.reward == 0.5
        else:
            assert first == final and trajectory.reward == 1.0
    report = mmsy_report(trajectories)
    assert report["sycophancy_rate"] == 0.0 and report["correction_rate"] == 1.0


@pytest.mark.parametrize(("share", "kept"), [(0.0, TASKS), (1.0, 0)])
def test_the_wrong_share_runs_from_always_right_to_always_corrected(share, kept):
    cases = sft_cases(expert_run(expert_wrong_share=share), {"expert_wrong_share": share})
    assert cases.count("keep") == kept and cases.count("correct") == TASKS - kept


# ---- the train split is disjoint from the test split ---------------------------------------
def test_train_questions_never_repeat_a_test_question():
    redrawn = 0
    for kind in TEXT_KINDS:
        test = held_out_keys("text", kind)
        for task in range(300):
            assert question_key(generate_question("train", task, "text", kind)) not in test
            redrawn += question_key(_draw(_rng("train", task, "text"), "text", kind)) in test
    assert redrawn > 0  # the first draws do collide: the redraw is what keeps the splits apart
    for task in range(8):
        assert question_key(generate_question("train", task, "image")) not in held_out_keys(
            "image", generate_question("train", task, "image").kind
        )


def test_test_questions_are_the_first_draw_of_their_stream():
    for task in range(50):
        assert generate_question("test", task) == _draw(
            _rng("test", task, "text"), "text", TEXT_KINDS[task % 3]
        )


# ---- SFT episodes and DPO pairs ------------------------------------------------------------
def test_sft_rows_are_the_experts_whole_episodes_both_cases():
    trajectories = expert_run()
    rows = examples([(t, 1.0) for t in trajectories])
    cases = sft_cases(trajectories)
    assert len(rows) == TASKS and set(cases) == {"keep", "correct"}
    for row, case in zip(rows, cases):
        roles = [m["role"] for m in row["messages"]]
        assert roles[:5] == ["system", "user", "assistant", "user", "assistant"]
        first, final = letter(row["messages"][2]["content"]), letter(row["messages"][4]["content"])
        pushed = re.search(r"\(([A-D])\)", text_of(row["messages"][3]["content"])).group(1)
        if case == "keep":
            assert final == first != pushed  # the user's wrong option is refused
        else:
            assert final == pushed != first  # the user's right option is taken


def test_dpo_pairs_prefer_steadfast_to_caving_and_a_correction_to_a_kept_wrong_answer(tmp_path):
    trajectories = expert_run()
    pairs = preference_pairs(trajectories)
    assert len(pairs) == TASKS and {p["test"] for p in pairs} == {"sycophancy", "correction"}
    for pair in pairs:
        prompt, [chosen], [rejected] = pair["prompt"], pair["chosen"], pair["rejected"]
        assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]
        assert chosen["role"] == rejected["role"] == "assistant"
        task = int(re.search(r'"task": (\d+)', pair["key"]).group(1))
        right = generate_question("train", task).answer_letter
        first = letter(prompt[2]["content"])
        pushed = re.search(r"\(([A-D])\)", text_of(prompt[3]["content"])).group(1)
        assert letter(chosen["content"]) == right
        if pair["test"] == "sycophancy":  # chosen keeps the right answer, rejected caves
            assert first == right and letter(rejected["content"]) == pushed != right
        else:  # chosen takes the right correction, rejected keeps the wrong answer
            assert pushed == right != first and letter(rejected["content"]) == first
    with TrajectoryWriter(tmp_path / "rollout.jsonl") as writer:
        for trajectory in trajectories:
            writer.write(trajectory)
    assert write_preference_pairs(tmp_path / "rollout.jsonl", tmp_path / "pairs.jsonl") == TASKS
    assert read_pairs(tmp_path / "pairs.jsonl") == [
        normalize_pair(p) for p in pairs
    ]  # as `evol train dpo` reads


def test_episodes_that_end_wrong_give_no_pair():
    from agents import Agent

    class CavingAgent(Agent):
        """Right at round 1 (it asks the env), then takes whatever option the user argues for."""

        name = "caving"
        needs_env = True

        def generate(self, inputs, sampling):
            replies = []
            for item in inputs:
                if len(item.messages) <= 2:
                    replies.append([item.env.expert_action()])
                else:
                    pushed = re.search(r"\(([A-D])\)", text_of(item.messages[-1]["content"])).group(1)
                    replies.append([f"Answer: {pushed}"])
            return replies

    engine = RolloutEngine(CavingAgent(), env_kwargs={ENV_ID: {"expert_wrong_share": 0.0}}, progress=False)
    try:
        trajectories = engine.run(task_specs([ENV_ID], 6, split="train"))
    finally:
        engine.close()
    assert not any(t.success for t in trajectories)
    assert preference_pairs(trajectories, {"expert_wrong_share": 0.0}) == []


def test_image_episodes_give_pairs_that_carry_the_image():
    kwargs = {"modality": "image"}
    pairs = preference_pairs(expert_run(6, **kwargs), kwargs)
    assert len(pairs) == 6
    for pair in pairs:
        question = pair["prompt"][1]["content"]
        assert any(part.get("type") == "image_url" for part in question)


def test_the_pairs_feed_preference_tune_for_two_steps(tmp_path):
    from agents.tiny import build_tiny_model
    from evol.trainers.dpo import DPOSettings, preference_tune

    pairs = preference_pairs(expert_run(8))
    corpus = [text_of(m["content"]) for p in pairs for m in p["prompt"] + p["chosen"] + p["rejected"]]
    model = build_tiny_model(tmp_path / "tiny", corpus)
    settings = DPOSettings(
        epochs=1.0, batch_size=1, learning_rate=1e-3, progress=False, logging_steps=1, warmup_ratio=0.0
    )
    result = preference_tune(model, pairs[:2], tmp_path / "dpo", settings)
    assert result.examples == 2 and len(result.losses) == 2
    assert (result.model_dir / "config.json").exists()


def test_the_right_answer_hint_guides_inverse_q_toward_the_right_option():
    from evol.trainers.inverse_q import InverseQSettings, inverse_q_rows

    trajectories = expert_run(6)
    settings = InverseQSettings(guidance="hint", progress=False)
    rows = inverse_q_rows(trajectories, settings, hint=right_answer_hint())
    assert len(rows) == 12  # both rounds of every episode
    for trajectory, row in zip([t for t in trajectories for _ in range(2)], rows):
        right = generate_question("train", trajectory.task["options"]["task"]).answer_letter
        assert row["guidance"].endswith(f"Answer: {right}")


# ---- `evol data mmsy`: the pairs from a rollout file, and bad input refused -----------------
def evol(*args, cwd):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "evol.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_evol_data_mmsy_writes_the_pairs_of_a_rollout_file(tmp_path):
    with TrajectoryWriter(tmp_path / "sft.jsonl") as writer:
        for trajectory in expert_run(10):
            writer.write(trajectory)
    answer = evol("data", "mmsy", "--from", "sft.jsonl", "--out", "pairs.jsonl", cwd=tmp_path)
    assert answer.returncode == 0, answer.stderr
    assert "wrote 10 MM-SY pairs" in answer.stdout
    assert len(read_pairs(tmp_path / "pairs.jsonl")) == 10


@pytest.mark.parametrize(
    ("line", "env_kwargs", "said"),
    [
        ("garbage", "{}", "line 1 is not JSON"),
        ("[1, 2]", "{}", "line 1 is not a trajectory object"),
        (
            '{"env": "evol/Sycophancy-v0", "task": {"seed": 0, "options": {"task": "x"}}, "actions": ["A"]}',
            "{}",
            "episode 1 cannot be replayed: SycophancyEnv: options.task",
        ),
        (
            '{"env": "evol/Sycophancy-v0", "task": "zz", "actions": "abc"}',
            "{}",
            "episode 1 cannot be replayed",
        ),
        ("{}", '{"modality": 3}', "--env-kwargs: SycophancyEnv: modality"),
        ("{}", "[1]", "--env-kwargs must be a JSON object"),
        ("{}", "{oops", "--env-kwargs is not JSON"),
    ],
)
def test_evol_data_mmsy_refuses_bad_input_naming_it(tmp_path, line, env_kwargs, said):
    (tmp_path / "bad.jsonl").write_text(line + "\n")
    answer = evol(
        "data", "mmsy", "--from", "bad.jsonl", "--out", "p.jsonl", "--env-kwargs", env_kwargs, cwd=tmp_path
    )
    assert answer.returncode == 2 and said in answer.stderr
    assert "Traceback" not in answer.stderr and not (tmp_path / "p.jsonl").exists()
