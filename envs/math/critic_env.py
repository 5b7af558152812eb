"""`evol/MathCritic-v0`: critique a candidate solution step by step; find its first wrong step."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from envs.core import MAX_TASK, RENDER_MODE, TextEnv, turns_param
from envs.errors import TaskOptionError
from envs.math.critics import CRITIC_INSTRUCTION, OracleCritic, critique_prompt
from envs.math.critique import CritiqueFormatError, parse_critique
from envs.math.datafiles import load_problem_files, split_problems
from envs.math.flaws import ERROR_KINDS, FlawedSolution, correct_solution, make_flawed
from envs.math.generator import generate_problem
from envs.math.problems import DIFFICULTIES, TASKS_PER_SPLIT, Problem
from envs.math.reference_flaws import flaw_reference
from envs.params import Param, choice_param, task_param

CANDIDATE_KINDS = ("none", *ERROR_KINDS)
MAX_STEP = 100  # above the step count of every generated solution
VERDICT_REWARD = 0.5
STEP_REWARD = 0.5
ERROR_NAMES = {
    "slip": "an arithmetic slip",
    "operation": "a wrong operation",
    "operand": "a wrong operand",
    "dropped": "a dropped step",
}


class MathCriticEnv(TextEnv):
    """
    MathCritic: critique a candidate solution to a math word problem, step by step.

    ## Description

    The critic side of MathCritique (Xi et al. 2024). The observation is a math problem —
    generated GSM8K-style, or read from a local GSM8K- or MATH-style file (`data`, the
    same files as `evol/MathCritique-v0`) — and a candidate solution with numbered steps:
    the reference solution, or a flawed one made AutoMathCritique-style — an arithmetic
    slip, a wrong operation, a wrong operand or a dropped step injected at a known step,
    its consequences carried through the later steps to the final answer. From a file the
    flaw is written into the record's reference solution (`envs.math.reference_flaws`:
    slips, operations and operands, in the lines whose arithmetic can be read). The agent
    writes a critique; it is scored on its verdict on the final answer and on where it
    places the first error.

    ## Instruction and action format

    `info["instruction"]` gives the format. The action is a critique: one block per step
    (`Step i: <the step>`, `Verdict: Correct` or `Wrong`, `Explanation: ...`), then a
    final block (`Final answer: <answer>`, `Verdict: ...`, `Explanation: ...`).
    MathCritique's released format is read too (`Step sentence: ...`, `Correctness of the
    step: ...`, `Explanation: ...` per step in order, then `Correctness of the final
    answer: ...`); Markdown, numbering and missing fields are tolerated; without a final
    block the verdict is inferred from the steps (wrong if any step is). A text with no verdict at all is invalid: the
    observation says what is missing, `info["invalid"]` is true and the turn counts.

    ## Rewards

    0.5 for the right verdict (Wrong for a flawed solution, Correct for a correct one)
    plus 0.5 for the first wrong step: the critique's first step marked Wrong must be the
    injected error's step (for a correct solution: no step marked Wrong). The final step's
    info has `verdict_correct`, `step_correct`, `gold_first_wrong_step` (None for a
    correct solution), `first_wrong_step` (the critique's), `gold_verdict` and
    `error_kind`.

    ## Success

    Reward 1: the right verdict and the right first wrong step.

    ## Termination

    Terminated after the first valid critique. Truncated after `max_turns` turns (default
    5).

    ## Task options

    `reset(seed, options={"task": k, "split": "train" | "test", "difficulty": d,
    "error": e, "step": i})`. Task `k` picks the problem as in `evol/MathCritique-v0`
    (generated: difficulty "easy", "medium", "hard" or "mixed", default the
    constructor's; with `data`: record `k` of the file, and `difficulty` does not apply)
    and the candidate: `error` "none", "slip", "operation", "operand" or "dropped"
    (default: by `k mod 5` in that order; when that error cannot be placed in the
    problem, the next kind that can, and for a file's record with no readable
    computation the correct solution), at step `i` (1-based; default drawn per task). An
    error asked for by name that cannot be placed is refused. Same seed and options, same
    episode. Constructor kwargs: `data` (a local .jsonl/.json/.parquet file, or a mapping
    of split to file; every record needs a reference solution), `difficulty`,
    `max_turns`, `render_mode`. The expert writes the oracle critic's critique.

    ## Registered configurations

    - `evol/MathCritic-v0`: generated problems, mixed difficulty, 5 turns (pass
      `data=` for a file's problems).
    """

    reward_range = (0.0, 1.0)
    max_turns = 5
    success_rule = "the verdict and the first wrong step are both right (reward 1)"
    splits = ("train", "test")
    max_action_length = 8192
    max_observation_length = 32768
    kwarg_params = {
        "data": Param(
            "object",
            of=(str, os.PathLike, dict),
            server_only=True,
            help="a local GSM8K- or MATH-style problem file, or a mapping of split to file",
        ),
        "difficulty": choice_param(DIFFICULTIES, default="mixed", help="difficulty of generated problems"),
        "max_turns": turns_param(5, maximum=100),
        "render_mode": RENDER_MODE,
    }
    option_params = {
        "task": task_param(MAX_TASK, "task index (generated: below 1,000,000 in train, 10,000 in test)"),
        "split": choice_param(splits, help='"train" (default) or "test"'),
        "difficulty": choice_param(DIFFICULTIES, help="default: the difficulty kwarg"),
        "error": choice_param(CANDIDATE_KINDS, help="the candidate's error (default: by task)"),
        "step": Param("int", minimum=1, maximum=MAX_STEP, help="the step the error is placed at (1-based)"),
    }

    def __init__(
        self,
        data: str | Path | dict[str, str | Path] | None = None,
        difficulty: str = "mixed",
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.difficulty = difficulty
        self._data = load_problem_files(data, self.splits, needs_solutions=True)
        self._problem: Problem | None = None
        self._candidate: FlawedSolution | None = None
        self._labels: dict[str, Any] = {}
        self._reward = 0.0

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        for key in ("split", "difficulty", "error", "step"):
            if options.get(key) is None:
                options.pop(key, None)
        split = self.select_choice(options, "split", self.splits, "train")
        if self._data is not None:
            problems = split_problems(self._data, split, options)
            task = self.select_task(options, len(problems))
            problem, key = problems[task], f"data|{split}|{task}"
        else:
            difficulty = self.select_choice(options, "difficulty", DIFFICULTIES, self.difficulty)
            task = self.select_task(options, TASKS_PER_SPLIT[split])
            problem, key = generate_problem(task, split, difficulty), f"{split}|{difficulty}|{task}"
        named = options.get("error") is not None
        kind = self.select_choice(
            options, "error", CANDIDATE_KINDS, CANDIDATE_KINDS[task % len(CANDIDATE_KINDS)]
        )
        step = options.get("step")
        self._problem = problem
        self._candidate = self._make_candidate(problem, kind, step, key, named)
        self._labels = {"task": task, "split": split, "difficulty": problem.difficulty}
        self._reward = 0.0
        info = {"instruction": CRITIC_INSTRUCTION, **self._labels}
        return critique_prompt(problem.question, self._candidate.text), info

    @staticmethod
    def _make_candidate(
        problem: Problem, kind: str, step: int | None, key: str, named: bool = True
    ) -> FlawedSolution:
        if kind == "none":
            if step is not None:
                raise TaskOptionError(
                    "options.step applies to a flawed solution (options.error other than 'none')"
                )
            return correct_solution(problem)
        order = ERROR_KINDS[ERROR_KINDS.index(kind) :] + ERROR_KINDS[: ERROR_KINDS.index(kind)]
        if step is not None:
            order = (kind,)  # an explicit step is honoured or refused, never moved
        flaw = make_flawed if problem.derivation is not None else flaw_reference
        for candidate_kind in order:
            flawed = flaw(
                problem, candidate_kind, random.Random(f"evol-math-critic|{key}|{candidate_kind}"), step
            )
            if flawed is not None:
                return flawed
        if problem.derivation is None and not named and step is None:
            return correct_solution(problem)  # a record whose arithmetic cannot be read or changed
        where = f"at step {step} of" if step is not None else "in"
        raise TaskOptionError(f"{ERROR_NAMES[kind]} cannot be placed {where} this problem")

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        try:
            critique = parse_critique(action)
        except CritiqueFormatError as error:
            return self._invalid(str(error))
        verdict = critique.verdict
        if verdict is None:
            return self._invalid(
                "the critique gives no verdict on the final answer and no step is marked Wrong"
            )
        gold_step = self._candidate.first_wrong_step
        flawed = gold_step is not None
        verdict_correct = verdict is (not flawed)
        first_wrong = critique.first_wrong_step
        step_correct = first_wrong == gold_step
        self._reward = VERDICT_REWARD * verdict_correct + STEP_REWARD * step_correct
        if flawed:
            truth = (
                f"The solution is wrong: its first error is in step {gold_step} "
                f"({ERROR_NAMES[self._candidate.kind]})."
            )
        else:
            truth = "The solution is correct."
        found = f"step {first_wrong}" if first_wrong is not None else "no wrong step"
        observation = (
            f"{truth} Your verdict ({'Correct' if verdict else 'Wrong'}) is {'right' if verdict_correct else 'wrong'}; "
            f"you marked {found} as the first error, which is {'right' if step_correct else 'wrong'}. "
            f"Reward {self._reward:g}."
        )
        info = {
            **self._labels,
            "verdict_correct": verdict_correct,
            "step_correct": step_correct,
            "gold_first_wrong_step": gold_step,
            "first_wrong_step": first_wrong,
            "gold_verdict": "wrong" if flawed else "correct",
            "error_kind": self._candidate.kind,
        }
        return observation, self._reward, True, info

    def _invalid(self, reason: str) -> tuple[str, float, bool, dict[str, Any]]:
        text, reward, terminated, info = self.invalid(f"Invalid critique: {reason}. This turn counted.")
        return text, reward, terminated, {**self._labels, **info}

    def _success(self) -> bool:
        return self._reward >= VERDICT_REWARD + STEP_REWARD

    @property
    def candidate(self) -> FlawedSolution | None:
        """The candidate solution with its gold first wrong step (privileged)."""
        return self._candidate

    def expert_action(self) -> str:
        """The oracle critic's critique of the candidate, in the format."""
        if self._problem is None:
            return "Final answer: (none)\nVerdict: Wrong\nExplanation: no episode."
        critique = OracleCritic(self._problem).critique(self._problem.question, self._candidate.text)
        return critique.render()
