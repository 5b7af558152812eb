"""`evol/MathCritique-v0`: solve a math word problem, then refine it from step-level critiques."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from envs.core import MAX_TASK, RENDER_MODE, TextEnv, turns_param
from envs.errors import ParamError, TaskOptionError
from envs.math.answers import DEFAULT_TIMEOUT, answers_match, extract_answer
from envs.math.critics import OracleCritic, as_critic
from envs.math.datafiles import load_problem_files, split_problems
from envs.math.generator import generate_problem
from envs.math.problems import DIFFICULTIES, TASKS_PER_SPLIT, Problem
from envs.params import Param, choice_param, task_param

GUIDANCE = ("none", "answer", "rationale", "state_reset", "interactive")
CRITIQUE_WHEN = ("wrong", "always")
MAX_CRITIQUE_LENGTH = 24_000
MAX_REFINE_ROUNDS = 16  # each round adds an attempt and a critique to the episode
MAX_ANSWER_TIMEOUT = 10.0  # seconds of one symbolic answer check
MAX_PREFIX_STEPS = 100
MAX_CRITIC_TOKENS = 8192
MAX_DEMOS = 8
ANSWER_FORMAT = (
    "Solve it step by step: one step a line, each with its computation written out "
    "(for example `3 * 12 = 36`), and end with the line `The answer is N.`"
)
INSTRUCTION = (
    "You solve math word problems. Write your solution step by step, one step a line, with each "
    "computation written out (for example `3 * 12 = 36`), and end with the line `The answer is N.`, "
    "where N is the final answer alone (a number or expression, without units)."
)


class MathCritiqueEnv(TextEnv):
    """
    MathCritique: solve a math word problem step by step; refine it from a critic's step-level critique.

    ## Description

    The actor side of MathCritique (Xi et al. 2024) with the Socratic guidance of GSI (Ding
    et al. 2024). Problems are generated (GSM8K-style multi-step arithmetic stories with
    exact reference solutions, easy/medium/hard: 2-3, 4-5 or 6-8 steps, larger numbers and
    0, 1 or 2 distractor facts) or read from a local GSM8K- or MATH-style file (`data`).
    The agent writes a solution; its final answer is checked against the gold answer
    (exactly, up to commas, units, currency, percent, fractions, decimals and LaTeX). With a
    critic configured, a wrong answer (or, with `critique_when="always"`, any answer the
    critic does not accept) is answered with the critic's critique — one block per step
    (the step, `Correct`/`Wrong`, an explanation with the right computation for the first
    wrong step), then the final answer's verdict — and the agent writes a revised solution,
    up to `refine_rounds` times.

    ## Instruction and action format

    The observation at reset is the problem and the answer format. An action is a whole
    solution: one step a line, each with its computation, ending with the line
    `The answer is N.` (`\\boxed{N}` and `#### N` are read too). A solution without a final
    answer line (or an empty one) is invalid: the observation says so, `info["invalid"]`
    is true, the turn counts, and it is not an attempt. After a critique the action is
    the complete revised solution.

    ## Rewards

    1 when the episode ends with a right final answer, else 0; 0 on the turns before.

    ## Success

    The last attempt's final answer equals the gold answer.

    ## Termination

    Terminated when an attempt is right, when no critic is configured (one attempt), when a
    critic in "always" mode accepts the answer (its final verdict is Correct), or after
    the attempt that follows the last of `refine_rounds` critiques. Truncated after
    `max_turns` turns (default 10; invalid solutions count).

    ## Task options

    `reset(seed, options={"task": k, "split": "train" | "test", "difficulty": d,
    "guidance": g, "prefix_steps": j})`. Generated problems: task `k` (below 1,000,000 in
    train, 10,000 in test; train and test use different seeds and disjoint name pools),
    `difficulty` "easy", "medium", "hard" or "mixed" (level `k mod 3`; the default is the
    constructor's). With `data`, task `k` is record `k` of the file (a path serves every
    split; a mapping `{"train": path, "test": path}` one file per split) and `difficulty`
    does not apply. `guidance` (GSI): "none" (default); "answer" gives the gold answer
    with the question; "rationale" gives the reference solution to rewrite; "state_reset"
    pre-fills the solution with its first `prefix_steps` lines (default 1, at most all
    but one), the agent writes only the rest and the env prepends the prefix when it
    checks and critiques; "interactive" makes the oracle critic a teacher that names the
    first wrong step of a wrong answer (even when no critic is configured). Every step's
    info has `task`, `split`, `difficulty` and `guidance` (what a trainer needs to
    resample the tail), and after each attempt `answer`, `correct`, `attempts` (each
    attempt's answer and correctness), `first_correct` and `fixed_by_refinement`; a
    critique's `first_wrong_step` and `verdict` go in `info["critique"]`. The last step's
    `info["outcome"]` (kept in the trajectory) has the gold answer, the difficulty, the
    critic and how many critiques were given and how many of them could not be read.

    Constructor kwargs: `data` (a local .jsonl/.json/.parquet file, or a mapping of
    split to file; default: generated problems), `critic` (None: no critic; "oracle":
    the exact step checker, for generated problems and annotated GSM8K; or an object with
    `critique(question, solution)`, or a model with `complete(conversations, ...)`, such as
    an agent, which is wrapped into a `ModelCritic`; `evol eval --refine R --critic SPEC`
    builds one from an agent spec), `critic_max_tokens` (a model critic's reply length,
    default 1024), `refine_rounds` (default 2, at most 16), `critique_when` ("wrong": the gold
    check decides, the default; "always": every attempt is critiqued and the critic's
    verdict decides), `difficulty` (default "mixed"), `answer_timeout` (seconds per
    symbolic answer check, default 2, from 0.1 to 10), `max_turns` (at most 100),
    `render_mode`, `demos` (default 0; k > 0 shows k worked train problems before the
    problem, under `# Demonstrations`, each about another topic than the problem's and than
    each other (Self-Demos' math setting: the demonstrations never show this topic); they go in
    `info["demonstrations"]` as `{question, solution, answer, topic}` and the problem's text
    in `info["question"]`; generated problems only) (`kwarg_params` and `option_params`
    declare each with its bounds). The
    expert writes the reference solution (the part after the prefix under state reset).

    ## Registered configurations

    - `evol/MathCritique-v0`: generated problems, no critic (pass `critic="oracle"` for
      the oracle critic), 2 refine rounds, 10 turns.
    """

    reward_range = (0.0, 1.0)
    max_turns = 10
    success_rule = "the last attempt's final answer equals the gold answer (reward 1)"
    splits = ("train", "test")
    max_action_length = 8192
    max_observation_length = 32768
    kwarg_params = {
        "data": Param("object", of=(str, os.PathLike, dict), server_only=True, help="a local problem file"),
        "critic": Param(
            "object", choices=("oracle",), help='None: no critic; "oracle" (locally also a critic or agent)'
        ),
        "critic_max_tokens": Param(
            "int", default=1024, minimum=1, maximum=MAX_CRITIC_TOKENS, help="a model critic's reply length"
        ),
        "refine_rounds": Param("int", default=2, minimum=0, maximum=MAX_REFINE_ROUNDS, help="critiques"),
        "critique_when": choice_param(CRITIQUE_WHEN, default="wrong", help="which attempts are critiqued"),
        "difficulty": choice_param(DIFFICULTIES, default="mixed", help="difficulty of generated problems"),
        "answer_timeout": Param(
            "float",
            default=DEFAULT_TIMEOUT,
            minimum=0.1,
            maximum=MAX_ANSWER_TIMEOUT,
            help="seconds one symbolic answer check may take",
        ),
        "max_turns": turns_param(10, maximum=100),
        "render_mode": RENDER_MODE,
        "demos": Param(
            "int", default=0, minimum=0, maximum=MAX_DEMOS, help="worked demonstrations of other topics"
        ),
    }
    option_params = {
        "task": task_param(MAX_TASK, "task index (generated: below 1,000,000 in train, 10,000 in test)"),
        "split": choice_param(splits, help='"train" (default) or "test"'),
        "difficulty": choice_param(DIFFICULTIES, help="default: the difficulty kwarg"),
        "guidance": choice_param(GUIDANCE, help='"none" (default), or how the env guides the agent'),
        "prefix_steps": Param(
            "int", minimum=1, maximum=MAX_PREFIX_STEPS, help="lines given under state_reset"
        ),
    }

    def __init__(
        self,
        data: str | Path | dict[str, str | Path] | None = None,
        critic: Any = None,
        critic_max_tokens: int = 1024,
        refine_rounds: int = 2,
        critique_when: str = "wrong",
        difficulty: str = "mixed",
        answer_timeout: float = DEFAULT_TIMEOUT,
        max_turns: int | None = None,
        render_mode: str | None = None,
        demos: int = 0,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        if demos and data is not None:
            raise ParamError("demos applies to generated problems only (they have topics); leave data out")
        self.demos = demos
        if refine_rounds + 1 > self.max_turns:
            raise ParamError(f"refine_rounds={refine_rounds} needs max_turns of at least {refine_rounds + 1}")
        self.refine_rounds = refine_rounds
        self.critique_when = critique_when
        self.difficulty = difficulty
        self.answer_timeout = float(answer_timeout)
        self.critic_name = None if critic is None else "oracle" if critic == "oracle" else "model"
        self._critic = (
            None
            if critic is None or critic == "oracle"
            else as_critic(critic, max_new_tokens=critic_max_tokens)
        )
        self._data = load_problem_files(data, self.splits)
        self._problem: Problem | None = None
        self._episode_critic: Any = None
        self._prefix: list[str] = []
        self._attempts: list[dict[str, Any]] = []
        self._critiques: list[dict[str, Any]] = []  # each critique's summary, this episode
        self._critic_used: str | None = None
        self._labels: dict[str, Any] = {}

    # ---- episode ----------------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        for key in ("split", "difficulty", "guidance", "prefix_steps"):
            if options.get(key) is None:
                options.pop(key, None)
        split = self.select_choice(options, "split", self.splits, "train")
        if self._data is not None:
            problems = split_problems(self._data, split, options)
            task = self.select_task(options, len(problems))
            problem = problems[task]
        else:
            difficulty = self.select_choice(options, "difficulty", DIFFICULTIES, self.difficulty)
            task = self.select_task(options, TASKS_PER_SPLIT[split])
            problem = generate_problem(task, split, difficulty)
        guidance = self.select_choice(options, "guidance", GUIDANCE, "none")
        self._prefix = []
        if guidance == "state_reset":
            k = options.get("prefix_steps", 1)
            self._prefix = problem.lines[: max(0, min(k, len(problem.lines) - 1))]
        elif "prefix_steps" in options:
            raise TaskOptionError("options.prefix_steps applies with guidance 'state_reset' only")
        self._problem = problem
        self._attempts = []
        self._critiques = []
        if guidance == "interactive" or self.critic_name == "oracle":
            self._episode_critic = OracleCritic(problem)
        else:
            self._episode_critic = self._critic
        self._critic_used = "oracle" if guidance == "interactive" else self.critic_name
        self._labels = {"task": task, "split": split, "difficulty": problem.difficulty, "guidance": guidance}
        info = {
            "instruction": self._instruction(guidance),
            **self._labels,
            "source": problem.source,
            "critic": self._critic_used,
            "refine_rounds": self.refine_rounds,
        }
        if guidance == "state_reset":
            info["prefix_steps"] = len(self._prefix)
        text = self._problem_text(guidance)
        if self.demos:
            shown = other_topic_demos(problem, self.demos)
            info["question"] = problem.question
            info["demonstrations"] = [
                {"question": d.question, "solution": d.solution, "answer": d.answer, "topic": d.topic}
                for d in shown
            ]
            blocks = "\n\n".join(
                f"Example {i}\nProblem: {d.question}\nSolution:\n{d.solution}" for i, d in enumerate(shown, 1)
            )
            text = f"# Demonstrations\n{blocks}\n\n# Problem\n{text}"
        return text, info

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        problem = self._problem
        if not action:
            return self._invalid("the solution is empty")
        answer = extract_answer(action, fallback_last_number=False)
        if answer is None:
            return self._invalid("it has no final answer")
        solution = "\n".join([*self._prefix, action])
        correct = answers_match(answer, problem.answer, self.answer_timeout)
        self._attempts.append({"answer": answer, "correct": correct})
        info = {**self._labels, **self._attempt_info()}
        revisions_left = self.refine_rounds - (len(self._attempts) - 1)
        critic = self._episode_critic
        interactive = self._labels["guidance"] == "interactive"
        when = "wrong" if interactive else self.critique_when
        if critic is None or revisions_left <= 0 or (when == "wrong" and correct):
            return self._end(answer, correct, info)
        critique = critic.critique(problem.question, solution)
        info["critique"] = critique.summary()
        self._critiques.append(info["critique"])
        if when == "always" and critique.verdict is True:
            return self._end(answer, correct, info)
        rest = (
            "the rest of your solution after the given lines" if self._prefix else "your corrected solution"
        )
        text = critique.text
        # A critique of a very long solution must still fit in the observation.
        if len(text) > MAX_CRITIQUE_LENGTH:
            text = text[:MAX_CRITIQUE_LENGTH] + "\n[... the rest of the critique is cut]"
        observation = (
            f"Critique of your solution:\n\n{text}\n\nRevise your solution: write {rest}, one step "
            f"a line, ending with `The answer is N.` ({revisions_left} revision{'s' if revisions_left > 1 else ''} "
            "left.)"
        )
        return observation, 0.0, False, info

    def _end(
        self, answer: str, correct: bool, info: dict[str, Any]
    ) -> tuple[str, float, bool, dict[str, Any]]:
        if correct:
            return f"Your answer {answer} is correct.", 1.0, True, info
        observation = f"Your answer {answer} is wrong. The correct answer is {self._problem.answer}."
        return observation, 0.0, True, info

    def _invalid(self, reason: str) -> tuple[str, float, bool, dict[str, Any]]:
        text, reward, terminated, info = self.invalid(
            f"Invalid solution: {reason}. Write the solution one step a line and end with the line "
            "`The answer is N.`; this turn counted, but not as an attempt."
        )
        return text, reward, terminated, {**self._labels, **info}

    def outcome(self) -> dict[str, Any]:
        """The gold answer and difficulty (for the test-time report), and what the critiques said."""
        critiques = self._critiques
        return {
            "gold_answer": self.gold_answer,
            "difficulty": self._problem.difficulty if self._problem is not None else None,
            "critic": self._critic_used,
            "critiques": len(critiques),
            "unparsable_critiques": sum(not c["parsed"] for c in critiques),
        }

    def _attempt_info(self) -> dict[str, Any]:
        attempts = [dict(a) for a in self._attempts]
        return {
            "attempt": len(attempts),
            "answer": attempts[-1]["answer"],
            "correct": attempts[-1]["correct"],
            "attempts": attempts,
            "first_correct": attempts[0]["correct"],
            "fixed_by_refinement": len(attempts) > 1
            and not attempts[0]["correct"]
            and attempts[-1]["correct"],
        }

    def _success(self) -> bool:
        return bool(self._attempts) and bool(self._attempts[-1]["correct"])

    # ---- text -------------------------------------------------------------------------
    def _instruction(self, guidance: str) -> str:
        text = INSTRUCTION
        if self._episode_critic is not None and self.refine_rounds > 0:
            judged = "wrong" if guidance == "interactive" or self.critique_when == "wrong" else "not accepted"
            text += (
                f" If your answer is {judged}, you get a critique of your solution, step by step, and write "
                f"a revised solution in the same format; you can revise up to {self.refine_rounds} times."
            )
        return text

    def _problem_text(self, guidance: str) -> str:
        problem = self._problem
        parts = [f"Problem: {problem.question}"]
        if guidance == "answer":
            parts.append(
                f"Hint: the correct answer is {problem.answer}. Write a step-by-step solution that reaches it."
            )
        elif guidance == "rationale":
            parts.append(
                f"A reference solution:\n{problem.solution}\n\nRewrite it as your own step-by-step solution."
            )
        elif guidance == "interactive":
            parts.append("If your answer is wrong, a teacher will point out the first wrong step.")
        if guidance == "state_reset" and self._prefix:
            lines = "\n".join(self._prefix)
            n = len(self._prefix)
            parts.append(
                f"Your solution already begins with these {n} line{'s' if n > 1 else ''}:\n{lines}\n\n"
                "Continue from there: write only the remaining steps, one a line, and end with the line "
                "`The answer is N.`"
            )
        else:
            parts.append(ANSWER_FORMAT)
        return "\n\n".join(parts)

    # ---- privileged -------------------------------------------------------------------
    @property
    def problem(self) -> Problem | None:
        """The current problem, with its gold answer and reference solution (privileged)."""
        return self._problem

    @property
    def gold_answer(self) -> str | None:
        return self._problem.answer if self._problem is not None else None

    def expert_action(self) -> str:
        """The reference solution (under state reset, the lines after the prefix)."""
        if self._problem is None:
            return "The answer is 0."
        lines = self._problem.lines[len(self._prefix) :]
        return "\n".join([*lines, f"The answer is {self._problem.answer}."])


def other_topic_demos(problem: Problem, k: int) -> list[Problem]:
    """`k` train problems of the problem's level, each of a topic other than the problem's and
    than each other's; always the same ones for one (split, task)."""
    rng = random.Random(f"evol-math-demos|{problem.split}|{problem.task}|{problem.difficulty}")
    level = problem.difficulty or "mixed"
    shown: list[Problem] = []
    seen = {problem.topic}
    for _ in range(500):
        candidate = generate_problem(rng.randrange(TASKS_PER_SPLIT["train"]), "train", level)
        if candidate.topic not in seen:
            seen.add(candidate.topic)
            shown.append(candidate)
            if len(shown) == k:
                break
    return shown
