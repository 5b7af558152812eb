"""Math self-improvement in the loop: critique-in-the-loop (`explore: critique_refine`) and Guided
Self-Improvement (`explore: guided`), on `evol/MathCritique-v0` with scripted solvers whose
answers are known, and end to end on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import envs
from agents.base import Agent, AgentInput, SamplingParams
from agents.scripted import ExpertAgent
from agents.tiny import build_tiny_model
from envs.math.critics import OracleCritic
from evol.rollout import RolloutEngine
from evol.runs import run_specs
from evol.trainers.config import from_mapping
from evol.trainers.explore import EXPLORERS
from evol.trainers.explore.math_common import copies_answer, count_numbers
from evol.trainers.loop import LoopConfig, SelfImproveTrainer, phase_specs
from evol.trajectory import read_trajectories
from tests.conftest import ROOT, ServerProcess

os.environ["HF_HUB_OFFLINE"] = "1"
MATH = "evol/MathCritique-v0"
SMALL = {"difficulty": "easy", "max_turns": 2, "refine_rounds": 1}  # short episodes for the tiny model
QUICK = {"epochs": 1.0, "batch_size": 4, "progress": False, "logging_steps": 1, "warmup_ratio": 0.0}


# ---- a solver whose answers the tests know -------------------------------------------------------
class ScriptedSolver(Agent):
    """Writes the env's reference solution, right or spoiled, by a plan per task index:
    `first` for an unguided first attempt, `revised` after a critique, `guided` under guidance.
    A plan entry is "right", "wrong" (the reference with a wrong final answer), "copy" (the
    final answer line alone) or "once" (right the first time the task is met, then wrong)."""

    needs_env = True
    name = "scripted"

    def __init__(self, first: dict, revised: dict | None = None, guided: dict | None = None):
        self.first, self.revised, self.guided = first, revised or {}, guided or {}
        self.seen: dict[int, int] = {}
        self.attempts = 0  # first attempts asked for

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        replies = []
        for item in inputs:
            task, guidance = item.info["task"], item.info.get("guidance", "none")
            critiqued = any(m["role"] == "assistant" for m in item.messages)
            if critiqued:
                plan = self.guided if guidance == "interactive" else self.revised
            else:
                self.attempts += 1
                plan = self.guided if guidance not in ("none", "interactive") else self.first
            how = plan.get(task, "wrong")
            if how == "once":
                self.seen[task] = self.seen.get(task, 0) + 1
                how = "right" if self.seen[task] == 1 else "wrong"
            replies.append([self.solution(item.env.expert_action(), how, critiqued)] * sampling.n)
        return replies

    @staticmethod
    def solution(reference: str, how: str, critiqued: bool) -> str:
        lines = reference.splitlines()
        if how == "copy":
            return lines[-1]
        if how == "wrong":
            return "\n".join([*lines[:-1], "The answer is 999999."])
        return "\n".join((["Checking each step again."] if critiqued else []) + lines)


class ScriptedLoop(SelfImproveTrainer):
    """The loop with a scripted policy in place of a checkpoint."""

    def __init__(self, config: LoopConfig, agent: Agent):
        super().__init__(config, log=lambda _: None)
        self.agent = agent
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def policy(self, model_dir: Path) -> Agent:
        return self.agent


def plain_prompt(task: int, kwargs: dict | None = None) -> tuple[list[dict], object]:
    """The unguided prompt of train task `task` as evaluation shows it, and the problem."""
    env = envs.make(MATH, **(kwargs or {}))
    observation, info = env.reset(seed=task, options={"task": task, "split": "train"})
    return [
        {"role": "system", "content": info["instruction"]},
        {"role": "user", "content": observation},
    ], env.problem


def config(tmp_path: Path, **overrides) -> LoopConfig:
    settings = {"run_dir": str(tmp_path / "run"), "envs": [MATH], "explore_tasks": 4, "progress": False,
                "explore_temperature": 0.0, "concurrency": 8, **overrides}  # fmt: skip
    return from_mapping(LoopConfig, settings)


@pytest.fixture(scope="module")
def start(tmp_path_factory) -> dict:
    """Expert solutions and a tiny model whose tokenizer learnt their text: a shared start for the runs."""
    root = tmp_path_factory.mktemp("start")
    engine = RolloutEngine(ExpertAgent(), env_kwargs={MATH: SMALL}, progress=False)
    run_specs(engine, phase_specs(MATH, 6, "train", SMALL), root / "expert.jsonl")
    corpus = [m["content"] for t in read_trajectories(root / "expert.jsonl") for m in t.messages]
    return {
        "expert_data": [str(root / "expert.jsonl")],
        "base_model": str(build_tiny_model(root / "base", corpus)),
    }


@pytest.fixture(scope="module")
def server():
    """One server of the math env (default kwargs) for the guided runs."""
    served = ServerProcess([MATH])
    yield served
    served.stop()


@pytest.fixture(scope="module")
def small_server():
    """One server of the math env with the short episodes of the tiny runs."""
    served = ServerProcess([MATH], "--env-kwargs", json.dumps({MATH: SMALL}))
    yield served
    served.stop()


# ---- the copy filter -------------------------------------------------------------------------------
def test_the_copy_filter_rejects_refinements_with_far_fewer_numbers_than_the_reference():
    reference = "Tom buys 3 packs of 12 pencils: 3 * 12 = 36 pencils.\nHe gives away 5: 36 - 5 = 31.\nThe answer is 31."
    assert count_numbers(reference) == 10
    assert count_numbers("He has 1,200 pencils.") == 1  # a number with a thousands comma is one number
    copied = "The answer is 31."
    terse = "3 * 12 = 36\nThe answer is 31."  # 4 numbers: under half of 10
    rewritten = "3 packs of 12: 3 * 12 = 36.\n36 - 5 = 31.\nThe answer is 31."  # 9 numbers
    assert copies_answer(copied, reference, 0.5) and copies_answer(terse, reference, 0.5)
    assert not copies_answer(rewritten, reference, 0.5) and not copies_answer(reference, reference, 1.0)
    assert not copies_answer(terse, reference, 0.4) and not copies_answer(copied, reference, 0.0)


# ---- critique-in-the-loop -------------------------------------------------------------------------
def test_critique_in_the_loop_keeps_exactly_the_correct_originals_and_refinements(tmp_path):
    solver = ScriptedSolver(first={0: "right", 1: "wrong", 2: "wrong", 3: "wrong"},
                            revised={1: "right", 2: "copy", 3: "wrong"})  # fmt: skip
    loop = ScriptedLoop(config(tmp_path, explore="critique_refine", samples_per_task=2), solver)
    iteration = loop.run_dir / "iter_1"
    iteration.mkdir()
    EXPLORERS["critique_refine"].explore(loop, Path("unused"), iteration)

    episodes = list(read_trajectories(iteration / "episodes.jsonl"))
    # the env counts the copied answers of task 2 right too: the copy filter drops them
    assert len(episodes) == 8 and sorted(t.task["options"]["task"] for t in episodes if t.success) == [
        0,
        0,
        1,
        1,
        2,
        2,
    ]
    kept = sorted(read_trajectories(iteration / "explore.jsonl"), key=lambda t: t.key)
    assert [(t.task["options"]["task"], t.outcome["kept"]) for t in kept] == [
        (0, "original"), (0, "original"), (1, "refinement"), (1, "refinement")
    ]  # fmt: skip
    for sample in kept:
        prompt, problem = plain_prompt(sample.task["options"]["task"])
        assert sample.messages[:2] == prompt and "critique" not in prompt[0]["content"]
        fixed = "Checking each step again.\n" if sample.outcome["kept"] == "refinement" else ""
        assert sample.messages[2] == {"role": "assistant", "content": fixed + problem.solution}
        assert sample.success and sample.task["options"] == {
            "task": sample.task["options"]["task"],
            "split": "train",
        }
    summary = json.loads((iteration / "explore_summary.json").read_text())["envs"][MATH]
    assert (
        summary["originals_kept"],
        summary["refinements_kept"],
        summary["refinements_rejected_as_copies"],
    ) == (2, 2, 2)
    assert (
        summary["refined"] == 6
        and summary["coverage"] == 0.5
        and summary["correct_counts"] == {"0": 2, "1": 0, "2": 2}
    )
    assert summary["distinct_correct_per_question"] == 1.0  # the scripted solver writes one text per task
    tokens = sum(t.tokens for t in episodes)
    assert summary["kept_per_1k_tokens"] == (1000 * 4 / tokens if tokens else 0.0)
    assert (iteration / "correct_counts.png").exists()


def test_a_critic_model_named_by_spec_critiques_the_wrong_samples(tmp_path, start):
    critic = start["base_model"]  # an untrained tiny model: its critiques cannot be read, and say so
    solver = ScriptedSolver(first={0: "wrong", 1: "right"}, revised={0: "right"})
    settings = {"explore": "critique_refine", "samples_per_task": 1, "explore_tasks": 2,
                "critic": f"hf:{critic}", "critic_max_new_tokens": 6, "device": "cpu"}  # fmt: skip
    loop = ScriptedLoop(config(tmp_path, **settings), solver)
    iteration = loop.run_dir / "iter_1"
    iteration.mkdir()
    EXPLORERS["critique_refine"].explore(loop, Path("unused"), iteration)
    (refined,) = [t for t in read_trajectories(iteration / "episodes.jsonl") if t.turns == 2]
    critique = refined.messages[3]["content"]
    _, problem = plain_prompt(0)
    oracle = OracleCritic(problem).critique(problem.question, refined.actions[0]).text
    assert critique.startswith("Critique of your solution") and oracle not in critique
    kept = list(read_trajectories(iteration / "explore.jsonl"))
    assert sorted(t.outcome["kept"] for t in kept) == ["original", "refinement"]


# ---- Guided Self-Improvement ----------------------------------------------------------------------
def test_gsi_resamples_only_questions_under_the_threshold_stops_at_r_rounds_and_resumes(tmp_path, server):
    plan = {
        "first": {0: "right", 1: "wrong", 2: "wrong", 3: "once"},
        "guided": {1: "right", 2: "copy", 3: "right"},
    }
    settings = {"explore": "guided", "samples_per_task": 2, "resample_threshold": 2, "resample_rounds": 2,
                "guidance": "answer", "urls": [server.url]}  # fmt: skip
    loop = ScriptedLoop(config(tmp_path, **settings), ScriptedSolver(**plan))
    iteration = loop.run_dir / "iter_1"
    iteration.mkdir()
    EXPLORERS["guided"].explore(loop, Path("unused"), iteration)

    def tasks_of(round_: int) -> list[int]:
        return sorted(
            t.task["options"]["task"] for t in read_trajectories(iteration / f"round_{round_}.jsonl")
        )

    # round 0: every question; task 3 keeps 1 < 2 samples and is resampled with task 1 and 2
    assert tasks_of(0) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert tasks_of(1) == [1, 1, 2, 2, 3, 3] and tasks_of(2) == [2, 2]  # task 2 copies: never kept
    assert not (iteration / "round_3.jsonl").exists()
    guided = [t for t in read_trajectories(iteration / "round_1.jsonl")]
    assert {t.task["options"]["guidance"] for t in guided} == {"answer"}
    assert "Hint: the correct answer is" in guided[0].messages[1]["content"]
    kept = sorted(read_trajectories(iteration / "explore.jsonl"), key=lambda t: t.key)
    assert sorted((t.task["options"]["task"], t.outcome["kept"]) for t in kept) == [
        (0, "original"), (0, "original"), (1, "guided"), (1, "guided"), (3, "guided"), (3, "guided"), (3, "original")
    ]  # fmt: skip
    for sample in kept:  # stored without the hint: the plain question and the solution alone
        prompt, problem = plain_prompt(sample.task["options"]["task"])
        assert sample.messages == [*prompt, {"role": "assistant", "content": problem.solution}]
    summary = json.loads((iteration / "explore_summary.json").read_text())["envs"][MATH]
    assert summary["coverage_before_resampling"] == 0.5 and summary["coverage"] == 0.75
    assert summary["correct_counts_before"] == {"0": 2, "1": 1, "2": 1}
    assert summary["correct_counts"] == {"0": 1, "1": 0, "2": 2, "3": 1}
    assert [(r["questions"], r["episodes"], r["kept"]) for r in summary["rounds"]] == [
        (4, 8, 3),
        (3, 6, 4),
        (1, 2, 0),
    ]
    assert summary["episodes"] == 16 and (iteration / "correct_counts.png").exists()

    # killed in round 1: the rerun runs only the missing episodes and keeps the same samples
    lines = (iteration / "round_1.jsonl").read_text().splitlines(keepends=True)
    (iteration / "round_1.jsonl").write_text(lines[0] + lines[1][:20])
    (iteration / "round_2.jsonl").unlink()
    (iteration / "explore.jsonl").unlink()
    again = ScriptedSolver(**plan)
    loop.agent = again
    EXPLORERS["guided"].explore(loop, Path("unused"), iteration)
    assert again.attempts == 5 + 2
    rerun = sorted(read_trajectories(iteration / "explore.jsonl"), key=lambda t: t.key)
    assert [(t.key, t.messages) for t in rerun] == [(t.key, t.messages) for t in kept]


def test_state_reset_trains_the_gold_prefix_with_the_continuation_and_k_cycles(tmp_path, server):
    settings = {"explore": "guided", "samples_per_task": 1, "resample_threshold": 1, "resample_rounds": 3,
                "guidance": "state_reset", "explore_tasks": 2, "urls": [server.url]}  # fmt: skip
    loop = ScriptedLoop(config(tmp_path, **settings), ScriptedSolver(first={}, guided={0: "right"}))
    iteration = loop.run_dir / "iter_1"
    iteration.mkdir()
    EXPLORERS["guided"].explore(loop, Path("unused"), iteration)
    (sample,) = read_trajectories(iteration / "explore.jsonl")
    prompt, problem = plain_prompt(0)
    first_try = next(read_trajectories(iteration / "round_1.jsonl"))
    assert "already begins with these 1 line" in first_try.messages[1]["content"]
    assert first_try.actions[0] == "\n".join([*problem.lines[1:], f"The answer is {problem.answer}."])
    assert sample.messages == [
        *prompt,
        {"role": "assistant", "content": problem.solution},
    ]  # prefix + continuation
    assert "already begins" not in sample.messages[1]["content"]
    # task 1 is never right: k = 1, 2, ... over its solution's lines but the last, round by round
    _, hard = plain_prompt(1)
    ks = [next(t for t in read_trajectories(iteration / f"round_{r}.jsonl") if t.task["options"]["task"] == 1)
          .task["options"]["prefix_steps"] for r in (1, 2, 3)]  # fmt: skip
    assert ks == {2: [1, 1, 1], 3: [1, 2, 1], 4: [1, 2, 3], 5: [1, 2, 3]}[len(hard.lines)]


# ---- configs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, field",
    [
        ({"explore": "guided", "envs": ["evol/BabyAI-v0"]}, "envs"),
        ({"explore": "critique_refine", "critic": "gpt-4"}, "critic"),
        ({"explore": "critique_refine", "critic": "hf:/no/such/model"}, "critic"),
        ({"explore": "guided", "guidance": "none"}, "guidance"),
        ({"explore": "guided", "guidance": "hint"}, "guidance"),
        ({"explore": "guided", "resample": "sometimes"}, "resample"),
        ({"explore": "guided", "learn": "dpo", "samples_per_task": 2}, "learn"),
        ({"resample_threshold": 0}, "resample_threshold"),
        ({"resample_rounds": -1}, "resample_rounds"),
        ({"min_number_ratio": 1.5}, "min_number_ratio"),
        ({"refine_rounds": 0}, "refine_rounds"),
        ({"held_in_tasks": -2}, "held_in_tasks"),
        ({"explore": "guided", "samples_per_task": 0}, "samples_per_task"),
    ],
)
def test_bad_math_loop_configs_are_refused_before_any_work_naming_the_field(tmp_path, capsys, change, field):
    from evol.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "envs": [MATH], **change}))
    assert main(["train", "loop", "--config", str(path)]) == 2
    stderr = capsys.readouterr().err
    assert "bad config" in stderr and field in stderr, stderr
    assert not (tmp_path / "run").exists(), "nothing may start before the config is checked"


def test_null_fields_take_the_strategys_defaults_from_the_papers():
    guided = LoopConfig(envs=[MATH], explore="guided", eval_tasks=7)
    assert (guided.samples_per_task, guided.keep_per_task, guided.held_in_tasks) == (8, "all", 7)
    assert (guided.resample_threshold, guided.resample_rounds, guided.learn_from) == (4, 8, "base")
    plain = LoopConfig(envs=[MATH])
    assert (plain.samples_per_task, plain.keep_per_task, plain.held_in_tasks) == (1, "one", 0)
    assert LoopConfig(envs=[MATH], explore="critique_refine", samples_per_task=3).samples_per_task == 3


# ---- end to end on the tiny model ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "explore, extra",
    [
        ("critique_refine", {"held_in_tasks": 1}),
        (
            "guided",
            {"guidance": "state_reset", "resample_rounds": 1, "resample_threshold": 1, "held_in_tasks": 0},
        ),
    ],
)
def test_each_strategy_runs_two_tiny_iterations_and_resumes_after_a_kill(
    start, small_server, tmp_path, explore, extra
):
    run_dir = tmp_path / "run"
    settings = {"run_dir": str(run_dir), "envs": [MATH], "explore": explore, "env_kwargs": {MATH: SMALL},
                "urls": [small_server.url],
                **start, "explore_tasks": 2, "eval_tasks": 2, "samples_per_task": 2, "iterations": 2,
                "eval_untrained": False, "max_new_tokens": 8, "progress": False,
                "bc_train": QUICK, "train": QUICK, **extra}  # fmt: skip
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(settings))
    command = [sys.executable, "-m", "evol.cli", "train", "loop", "--config", str(path)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run_dir / "state.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if state.exists() and "iter_1/explore" in json.loads(state.read_text())["done"]:
            break
        time.sleep(0.2)
    process.kill()
    process.wait()
    done_before = json.loads(state.read_text())["done"]
    assert "iter_1/explore" in done_before and "iter_2/eval" not in done_before
    explored = (run_dir / "iter_1" / "explore_summary.json").read_text()

    logs: list[str] = []  # resumed in this process (the CLI's resume is tested in test_trainers.py)
    table = SelfImproveTrainer(from_mapping(LoopConfig, settings), log=logs.append).train()
    assert "[loop] iter_1/explore: done earlier, skipped" in logs
    assert list(table) == ["bc", "iter_1", "iter_2"]
    assert json.loads(state.read_text())["done"][-1] == "iter_2/eval"
    assert (run_dir / "iter_1" / "explore_summary.json").read_text() == explored
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summaries = {m["stage"]: m for m in metrics if m.get("explore") == explore}
    assert set(summaries) == {"iter_1", "iter_2"}
    for row in summaries.values():
        assert row["questions"] == 2 and row["episodes"] >= 4 and row["generated_tokens"] > 0
        assert {"coverage", "kept_per_1k_tokens", "correct_counts", "distinct_correct_per_question"} <= set(
            row
        )
    accuracy = {m["stage"]: m["accuracy_by_difficulty"] for m in metrics if "accuracy_by_difficulty" in m}
    assert set(accuracy) == {"bc", "iter_1", "iter_2"}
    splits = {"held_out", "held_in"} if settings["held_in_tasks"] else {"held_out"}
    assert set(accuracy["iter_2"]) == splits and "easy" in accuracy["iter_2"]["held_out"]
    assert (run_dir / "eval/iter_2/held_in/results.json").exists() == bool(settings["held_in_tasks"])
    for artifact in ("iter_2/model/model.safetensors", "iter_2/correct_counts.png", "correct_counts.png",
                     "accuracy_by_difficulty.png", "learning_curve.png"):  # fmt: skip
        assert (run_dir / artifact).exists(), artifact
