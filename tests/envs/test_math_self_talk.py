"""Self-talk: replies that check and correct themselves inline, built from critique-refine steps
(`evol data self-talk --n N | --from ROLLOUT`), scored by their final answer, learned by SFT
(`evol train bc`) and evaluated (`evol eval` on evol/MathCritique-v0); bad input refused."""

from __future__ import annotations

import json
import os
import random

import pytest

from agents.base import Agent, AgentInput, SamplingParams
from envs.math.answers import extract_answer
from envs.math.critics import OracleCritic
from envs.math.critique import Critique, StepCritique, parse_critique
from envs.math.critique_env import MathCritiqueEnv
from envs.math.flaws import make_flawed
from envs.math.generator import generate_problem
from envs.math.self_talk import (
    CHECK_PASSED,
    read_self_talk,
    self_talk_from_rollouts,
    self_talk_reply,
    self_talk_report,
)
from envs.registry import EvalReport
from evol.cli import main
from evol.rollout import RolloutEngine, task_specs
from evol.trajectory import TrajectoryWriter, read_trajectories

os.environ["HF_HUB_OFFLINE"] = "1"
ACTOR = "evol/MathCritique-v0"
CANDLES = generate_problem(1, "train", "mixed")  # task 1 of the train split: 68 candles, answer 22
STEPS = [
    "50% of the candles: 68 * 50 / 100 = 34 candles.",
    "The rest of the candles: 68 - 34 = 34 candles.",
    "After 28 candles are gone: 34 - 28 = 6 candles.",
    "After getting 16 more candles: 6 + 16 = 22 candles.",
]
SLIPPED = "\n".join(
    [
        STEPS[0],
        "The rest of the candles: 68 - 34 = 43 candles.",
        "After 28 candles are gone: 43 - 28 = 15 candles.",
        "After getting 16 more candles: 15 + 16 = 31 candles.",
        "The answer is 31.",
    ]
)
CHECK_2 = "Check: step 2 is wrong: 68 - 34 = 34, not 43. The right computation: 68 - 34 = 34."
CORRECTED = "\n".join([STEPS[0], SLIPPED.splitlines()[1], CHECK_2, *STEPS[1:], "The answer is 22."])


def oracle(solution: str):
    return OracleCritic(CANDLES).critique(CANDLES.question, solution)


# ---- the builder ------------------------------------------------------------------------------
def test_the_builder_writes_the_exact_reply_of_known_critique_refine_steps():
    assert CANDLES.lines == STEPS and CANDLES.answer == "22"
    # a slip at step 2: the steps up to it, the check naming it, the corrected steps, the answer
    assert self_talk_reply(SLIPPED, oracle(SLIPPED), CANDLES.solution) == CORRECTED
    # a right solution gets the short check
    assert self_talk_reply(CANDLES.solution, oracle(CANDLES.solution)) == "\n".join(
        [*STEPS, CHECK_PASSED, "The answer is 22."]
    )
    # right steps that stop early: the wrong answer is stated, then checked, then finished
    early = "\n".join([*STEPS[:3], "The answer is 6."])
    assert self_talk_reply(early, oracle(early), CANDLES.solution) == "\n".join(
        [
            *STEPS[:3],
            "The answer is 6.",
            "Check: the final answer is wrong: The steps check out, but 6 is not the answer to the "
            "question. The solution stops early; the next computation is 6 + 16 = 22.",
            STEPS[3],
            "The answer is 22.",
        ]
    )
    # a model critic's critique (the released format) and a refinement that starts over
    released = parse_critique(
        "Step sentence: 50% ...\nCorrectness of the step: Correct\nExplanation: ok.\n\n"
        "Step sentence: The rest ...\nCorrectness of the step: Wrong\nExplanation: 68 - 34\nis 34.\n\n"
        "Correctness of the final answer: Wrong\nExplanation: wrong."
    )
    over = "Half of 68 is 34.\n68 - 34 = 34 left.\n34 - 28 = 6.\n6 + 16 = 22.\nThe answer is 22."
    assert self_talk_reply(SLIPPED, released, over) == "\n".join(
        [*SLIPPED.splitlines()[:2], "Check: step 2 is wrong: 68 - 34 is 34.", *over.splitlines()]
    )


def test_steps_that_cannot_make_a_reply_give_none():
    # the builder trusts the critique (its callers check the answer): one that accepts the answer
    # of a solution but finds a wrong step makes no reply
    mixed = Critique(
        steps=[StepCritique(1, STEPS[0], True), StepCritique(2, STEPS[1], False)], answer_correct=True
    )
    assert self_talk_reply(CANDLES.solution, mixed) is None
    assert self_talk_reply(SLIPPED, Critique(raw="?", format_error="none")) is None  # an unreadable one
    # a refinement that only repeats the kept step and states the answer adds no work
    assert self_talk_reply(SLIPPED, oracle(SLIPPED), f"{STEPS[0]}\nThe answer is 22.") is None
    assert self_talk_reply(SLIPPED, oracle(SLIPPED), "I am not sure.") is None  # no final answer
    assert self_talk_reply(SLIPPED, oracle(SLIPPED)) is None  # nothing to correct with


# ---- scoring ----------------------------------------------------------------------------------
def step_candles(reply: str):
    env = MathCritiqueEnv()
    env.reset(seed=1, options={"task": 1})
    _, reward, terminated, _, info = env.step(reply)
    return reward, terminated, info


def test_the_env_scores_a_self_talk_reply_by_its_final_answer():
    reward, terminated, info = step_candles(CORRECTED)
    assert reward == 1.0 and terminated and info["answer"] == "22"
    # a wrong answer stated, flagged, then corrected: the corrected one counts
    stated_then_fixed = "\n".join([*SLIPPED.splitlines(), CHECK_2, *STEPS[1:], "The answer is 22."])
    assert step_candles(stated_then_fixed)[0] == 1.0
    # a correction that ends on a wrong answer is wrong, though the right one came before it
    right_then_wrong = "\n".join([*STEPS, "The answer is 22.", CHECK_2, "68 - 34 = 35", "The answer is 23."])
    reward, _, info = step_candles(right_then_wrong)
    assert reward == 0.0 and info["answer"] == "23" and info["correct"] is False
    # a reply that flags its answer and states none after it has no final answer
    retracted = "\n".join([*STEPS, "The answer is 22.", CHECK_2])
    reward, terminated, info = step_candles(retracted)
    assert reward == 0.0 and not terminated and info["invalid"] is True
    assert extract_answer(retracted) is None and extract_answer(retracted, fallback_last_number=False) is None
    # a passing check keeps the answer before it; Markdown around the label is read
    assert step_candles("\n".join([*STEPS, "The answer is 22.", CHECK_PASSED]))[0] == 1.0
    assert (
        extract_answer("x = 5\nThe answer is 5.\n**Check:** step 1 is wrong: x = 4\nThe answer is 4.") == "4"
    )


def test_read_self_talk_and_the_report_of_an_eval_run():
    talk = read_self_talk(CORRECTED)
    assert talk.flagged and not talk.passed and talk.flagged_step == 2 and talk.answer == "22"
    assert talk.before_flag == "\n".join(CORRECTED.splitlines()[:2])
    passed = "\n".join([*STEPS, CHECK_PASSED, "The answer is 22."])
    false_alarm = "\n".join([*STEPS[:2], "Check: step 1 is wrong: no.", *STEPS[1:], "The answer is 21."])
    task = {"seed": 1, "options": {"task": 1, "split": "train"}}
    rows = [
        {"env": ACTOR, "task": task, "actions": [reply], "error": None}
        for reply in (CORRECTED, passed, false_alarm, "no answer here", "The answer is 22.")
    ]
    report = self_talk_report(rows)
    assert report["episodes"] == 5 and report["accuracy"] == 0.6
    assert (report["checked"], report["passed"], report["flagged"]) == (0.6, 0.2, 0.4)
    assert report["right_when_flagged"] == 0.5 and report["right_when_passed"] == 1.0
    assert report["flag_precision"] == 0.5 and report["flag_step_exact"] == 0.5
    assert report["by_difficulty"]["medium"]["episodes"] == 5


# ---- records from critique-refine episodes ------------------------------------------------------
class FlawedFirst(Agent):
    """Odd tasks: a solution with a slip first, the reference after the critique; even tasks: the
    reference at once."""

    name = "flawed-first"

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        replies = []
        for item in inputs:
            problem = item.env.problem
            first = not any(m["role"] == "assistant" for m in item.messages)
            reply = flawed(problem) if first and problem.task % 2 else item.env.expert_action()
            replies.append([reply] * sampling.n)
        return replies


def flawed(problem) -> str:
    return make_flawed(problem, "slip", random.Random(problem.task)).text


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    path = tmp_path_factory.mktemp("rollout") / "episodes.jsonl"
    kwargs = {ACTOR: {"critic": "oracle", "refine_rounds": 1}}
    engine = RolloutEngine(FlawedFirst(), concurrency=4, progress=False, env_kwargs=kwargs)
    with TrajectoryWriter(path) as writer:
        engine.run(task_specs([ACTOR], 4, "train"), writer)
    return path


def test_records_from_a_critique_refine_rollout(rollout, tmp_path, capsys):
    trajectories = sorted(read_trajectories(rollout), key=lambda t: t.task["seed"])
    assert [t.turns for t in trajectories] == [1, 2, 1, 2] and all(t.success for t in trajectories)
    out = tmp_path / "self_talk.jsonl"
    assert main(["data", "self-talk", "--from", str(rollout), "--out", str(out)]) == 0
    assert "wrote 4 self-talk records (correct 2, corrected 2) to" in capsys.readouterr().out
    records = sorted(
        (json.loads(line) for line in out.read_text().splitlines()), key=lambda r: r["task"]["seed"]
    )
    env = MathCritiqueEnv()
    for record in records:
        task = record["task"]["options"]["task"]
        problem = generate_problem(task, "train", "mixed")
        observation, info = env.reset(seed=task, options={"task": task, "split": "train"})
        system, user, reply = record["messages"]
        assert (
            system == {"role": "system", "content": info["instruction"]}
            and "critique" not in info["instruction"]
        )
        assert user == {"role": "user", "content": observation}
        if task % 2:
            original = flawed(problem)
            critique = OracleCritic(problem).critique(problem.question, original)
            assert reply["content"] == self_talk_reply(original, critique, problem.solution)
            assert record["self_talk"]["kind"] == "corrected" and "is wrong:" in reply["content"]
        else:
            assert reply["content"] == "\n".join(
                [*problem.lines, CHECK_PASSED, f"The answer is {problem.answer}."]
            )
        assert record["success"] and record["actions"] == [reply["content"]]
    # the same records as a library call, and a file the trainers read as trajectories
    again, report = self_talk_from_rollouts([rollout])
    assert report.written == 4 and sorted(r["key"] for r in again) == sorted(r["key"] for r in records)
    written = [json.loads(line) for line in out.read_text().splitlines()]
    read = list(read_trajectories(out))
    assert [t.messages for t in read] == [r["messages"] for r in written] and all(t.success for t in read)


def test_bad_inputs_are_refused_naming_the_line_or_the_flag(rollout, tmp_path, capsys):
    out = tmp_path / "never.jsonl"
    lines = rollout.read_text().splitlines()
    cases = [
        ([lines[0], "{not json", lines[1]], "bad.jsonl line 2: not JSON"),
        (
            [lines[0], json.dumps({**json.loads(lines[1]), "env": "evol/Wordle-v0"})],
            "bad.jsonl line 2: `env` must be",
        ),
        ([json.dumps({**json.loads(lines[0]), "messages": "hi"})], "bad.jsonl line 1: `messages`"),
        (
            [json.dumps({**json.loads(lines[0]), "task": {"seed": 0, "options": {"task": "x"}}})],
            "bad.jsonl line 1: its task",
        ),
    ]
    for content, message in cases:
        bad = tmp_path / "bad.jsonl"
        bad.write_text("\n".join(content) + "\n")
        assert main(["data", "self-talk", "--from", str(bad), "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    # a problem that is not the one the task gives here (another data file, another difficulty)
    moved = json.loads(lines[0])
    moved["messages"][1]["content"] = "Problem: something else"
    (tmp_path / "bad.jsonl").write_text(json.dumps(moved) + "\n")
    assert main(["data", "self-talk", "--from", str(tmp_path / "bad.jsonl"), "--out", str(out)]) == 2
    assert "line 1: its problem is not the one its task gives here" in capsys.readouterr().err
    for flags, named in (
        (["--n", "0"], "--n"),
        (["--n", "4", "--correct-share", "2"], "--correct-share"),
        (["--n", "4", "--split", "dev"], "--split"),
        (["--from", str(rollout), "--seed", "3"], "--seed: applies to --n"),
        (["--from", str(tmp_path / "missing.jsonl")], "no such rollout file"),
    ):
        assert main(["data", "self-talk", *flags, "--out", str(out)]) == 2
        assert named in capsys.readouterr().err
    assert not out.exists()


# ---- SFT and eval ---------------------------------------------------------------------------------
def test_sft_on_self_talk_records_writes_a_checkpoint_that_evol_eval_scores(tmp_path, capsys):
    from agents.tiny import build_tiny_model

    data = tmp_path / "self_talk.jsonl"
    assert main(["data", "self-talk", "--n", "20", "--out", str(data)]) == 0
    assert "wrote 20 self-talk records (correct 10, corrected 10) to" in capsys.readouterr().out
    records = [json.loads(line) for line in data.read_text().splitlines()]
    base = build_tiny_model(tmp_path / "base", [m["content"] for r in records for m in r["messages"]])
    out = tmp_path / "sft"
    settings = [
        "train.batch_size=10",
        "train.learning_rate=0.002",
        "train.logging_steps=1",
        "train.progress=false",
    ]
    argv = ["train", "bc", "--model", str(base), "--data", str(data), "--output_dir", str(out)]
    assert main([*argv, *(arg for s in settings for arg in ("--set", s))]) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert (
        summary["examples"] == 20 and len(summary["losses"]) == 2 and (out / "model" / "config.json").exists()
    )
    capsys.readouterr()
    evaluation = tmp_path / "eval"
    agent = f"hf:{out / 'model'}"
    argv = ["eval", "--env", ACTOR, "--episodes", "2", "--agent", agent, "--out", str(evaluation)]
    assert main([*argv, "--max-new-tokens", "24", "--max-turns", "1"]) == 0
    results = json.loads((evaluation / "results.json").read_text())
    assert ACTOR in json.dumps(results) and "success" in capsys.readouterr().out.lower()
    # the self-talk report as `evol eval` computes an env family's report (envs.register_report)
    hook = EvalReport("self-talk", (ACTOR,), "envs.math.self_talk:self_talk_report", "self_talk.json")
    report = hook.compute(list(read_trajectories(evaluation / "trajectories.jsonl")), env_kwargs={})
    assert (
        report["episodes"] == 2
        and 0 <= report["accuracy"] <= 1
        and set(report["by_difficulty"])
        <= {
            "easy",
            "medium",
            "hard",
        }
    )
