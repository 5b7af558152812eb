"""Critic training data in MathCritique's released alpaca format, and the refiners that test critiques.

A record is one JSON object, `{"instruction", "input", "output"}` as in the released
MathCritique data (LLaMA-Factory's alpaca layout), plus an optional `meta` object of labels:

    {"instruction": "Instruction:\\n... check it step by step ...\\n\\nQuestion:\\n<question>\\n\\n"
                    "Solution:\\n<one step a line, then `The answer is N.`>\\n",
     "input": "",
     "output": "Step sentence: ...\\nCorrectness of the step: Wrong\\nExplanation: ...\\n\\n"
               "Correctness of the final answer: Wrong\\nExplanation: ...",
     "meta": {"question": ..., "solution": ..., "method": "inserted", "first_wrong_step": 2, ...}}

`alpaca_record` writes one; `read_critique_file` reads a file of them (JSONL, or a JSON list
as released) and refuses a malformed record naming its line; `prompt_parts` finds the
question and the solution in an instruction (the released layout, `Question:` then
`Solution:`, or the critic prompt of `envs.math.critics`, `Problem:` then `Solution:`).

Refiners write a revised solution from a solution and its critique, `refine(jobs, n)`:
`OracleRefiner` (no model; it trusts the critique) and `ModelRefiner` (any `Completer`, asked
in `evol/MathCritique-v0`'s conversation). `fixed_shares` is the Monte-Carlo test of
AutoMathCritique: the share of `n` refinements that reach the gold answer.
`ProblemSource` gives the problems (generated, or a GSM8K/MATH file) and the conversations
an actor and a refiner see.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from envs.counterparts import Completer, reply_action, require_completer
from envs.jsonfiles import read_json_records
from envs.math.answers import answers_match, extract_answer
from envs.math.arithmetic import computations, stated_numbers
from envs.math.critics import OracleCritic
from envs.math.critique import Critique, CritiqueFormatError, parse_critique, solution_steps
from envs.math.critique_env import MathCritiqueEnv
from envs.math.datafiles import load_problem_files
from envs.math.generator import generate_problem
from envs.math.problems import DIFFICULTIES, SPLITS, TASKS_PER_SPLIT, Problem

# ---- the released alpaca format ----------------------------------------------------------------
ALPACA_INSTRUCTION = """\
Instruction:
Below is a question and a step-by-step solution to it, one step a line. Check the solution \
step by step: repeat each step, say whether it is correct or wrong and explain why (for a \
wrong step, give the right computation). Then say whether the final answer is correct or wrong.

Your answer format should be:

Step sentence: [the step, repeated]
Correctness of the step: [Correct/Wrong]
Explanation: [your explanation]

Correctness of the final answer: [Correct/Wrong]
Explanation: [your explanation]

Question:
{question}

Solution:
{solution}
"""


def alpaca_instruction(question: str, solution: str) -> str:
    """The instruction of a critic record: the task, the answer format, the question and the solution."""
    return ALPACA_INSTRUCTION.format(question=question.strip(), solution=solution.strip())


def released_critique(critique: Critique) -> str:
    """`critique` in MathCritique's released format: a block per step, then the final answer's."""
    blocks = [
        f"Step sentence: {s.step}\nCorrectness of the step: {_word(s.correct)}\nExplanation: {s.explanation}"
        for s in critique.steps
    ]
    blocks.append(
        f"Correctness of the final answer: {_word(critique.answer_correct)}\n"
        f"Explanation: {critique.answer_explanation}"
    )
    return "\n\n".join(blocks)


def _word(correct: bool | None) -> str:
    return {True: "Correct", False: "Wrong", None: "Unknown"}[correct]


def alpaca_record(question: str, solution: str, critique: Critique, meta: dict[str, Any]) -> dict[str, Any]:
    """One critic training record: `instruction`, `input` (empty), `output` (the critique), `meta`."""
    return {
        "instruction": alpaca_instruction(question, solution),
        "input": "",
        "output": released_critique(critique),
        "meta": meta,
    }


_HEADER = re.compile(r"^[ \t]*(?P<name>question|problem|solution)[ \t]*:[ \t]*(?P<rest>.*)$", re.I | re.M)
_CRITIC_PROMPT_END = re.compile(r"\n\s*Write your critique\.?\s*$", re.IGNORECASE)


def prompt_parts(text: str) -> tuple[str, str] | None:
    """The question and the solution an instruction holds, or None: the last `Solution:` header
    and the last `Question:` (or `Problem:`) header before it; the question may follow its
    header on the same line. A numbered solution (`Step 1: ...`) comes back unnumbered."""
    headers = list(_HEADER.finditer(text))
    solution = next((h for h in reversed(headers) if h.group("name").lower() == "solution"), None)
    if solution is None:
        return None
    question = next(
        (
            h
            for h in reversed(headers)
            if h.start() < solution.start() and h.group("name").lower() != "solution"
        ),
        None,
    )
    if question is None:
        return None
    question_text = text[question.start("rest") : solution.start()].strip()
    solution_text = _CRITIC_PROMPT_END.sub("", text[solution.start("rest") :]).strip()
    if not question_text or not solution_text:
        return None
    if re.match(r"^\s*step\s*1\s*:", solution_text, re.IGNORECASE):
        steps = solution_steps(solution_text)
        answer = extract_answer(solution_text, fallback_last_number=False)
        tail = [f"The answer is {answer}."] if answer is not None else []
        solution_text = "\n".join([*steps, *tail])
    return question_text, solution_text


# ---- reading a critique file ------------------------------------------------------------------
class CritiqueFileError(ValueError):
    """A critique file that cannot be read: the message names the file and the line."""


MAX_LISTED_KEYS = 8


@dataclass
class CritiqueRecord:
    """One record of a critique file, its critique parsed; `where` is `FILE line N` (or `item N`)."""

    instruction: str
    input: str
    output: str
    critique: Critique
    where: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The prompt as the released data means it: the instruction, then the input if any."""
        return f"{self.instruction}\n{self.input}" if self.input else self.instruction

    @property
    def parts(self) -> tuple[str, str] | None:
        """(question, solution) read from the prompt, or None when it holds no such parts."""
        return prompt_parts(self.prompt)


def read_critique_file(path: str | os.PathLike) -> list[CritiqueRecord]:
    """The records of a critique file: JSONL (one object a line, blank lines skipped) or a JSON
    list. Each needs a non-empty string `instruction` and `output` (a critique: step verdicts or
    a final-answer verdict), `input` a string if given, `meta` an object if given; other keys
    are ignored. `CritiqueFileError` names the first bad line."""
    entries = read_json_records(path, "critique file", CritiqueFileError, allow_list=True)
    if not entries:
        raise CritiqueFileError(f"{Path(path)}: no records")
    return [_record(where, item) for where, item in entries]


def _record(where: str, item: Any) -> CritiqueRecord:
    if not isinstance(item, dict):
        raise CritiqueFileError(f"{where}: a record must be a JSON object, got {type(item).__name__}")
    for key in ("instruction", "output"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            keys = sorted(item)[:MAX_LISTED_KEYS]
            raise CritiqueFileError(
                f"{where}: `{key}` must be a non-empty string (alpaca records have instruction, input, "
                f"output; this one has {keys})"
            )
    extra = item.get("input", "")
    if extra is None:
        extra = ""
    if not isinstance(extra, str):
        raise CritiqueFileError(f"{where}: `input` must be a string, got {type(extra).__name__}")
    meta = item.get("meta", {})
    if not isinstance(meta, dict):
        raise CritiqueFileError(f"{where}: `meta` must be an object, got {type(meta).__name__}")
    try:
        critique = parse_critique(item["output"])
    except CritiqueFormatError as error:
        raise CritiqueFileError(f"{where}: `output` is not a critique: {error}") from None
    return CritiqueRecord(item["instruction"], extra, item["output"], critique, where, meta)


# ---- where problems come from -----------------------------------------------------------------
class _Held:
    """A critic that gives the critique it holds: what a refiner is shown."""

    held: Critique | None = None

    def critique(self, question: str, solution: str) -> Critique:
        return self.held if self.held is not None else Critique(raw="(no critique)", format_error="none held")


class ProblemSource:
    """The problems of one split, generated (at `difficulty`) or read from a GSM8K/MATH `data`
    file, and the `evol/MathCritique-v0` conversations about them: an actor's (asked to solve,
    optionally from the first lines of the reference: `prefix_steps`) and a refiner's (asked to
    revise a solution after its critique)."""

    def __init__(
        self, split: str = "train", difficulty: str = "mixed", data: str | os.PathLike | None = None
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {list(DIFFICULTIES)}, got {difficulty!r}")
        self.split, self.difficulty, self.data = split, difficulty, data
        loaded = load_problem_files(data, SPLITS, needs_solutions=True) if data is not None else None
        self._problems = loaded[split] if loaded is not None else None
        self._actor_env: Any = None
        self._refine_env: Any = None
        self._held = _Held()

    @property
    def size(self) -> int:
        return len(self._problems) if self._problems is not None else TASKS_PER_SPLIT[self.split]

    def options(self, task: int, level: str | None = None) -> dict[str, Any]:
        """The task options of problem `task` (at `level`: a difficulty, generated problems only)."""
        options: dict[str, Any] = {"task": task, "split": self.split}
        if self._problems is None:
            options["difficulty"] = level or self.difficulty
        return options

    def problem(self, task: int, level: str | None = None) -> Problem:
        if self._problems is not None:
            return self._problems[task]
        return generate_problem(task, self.split, level or self.difficulty)

    def actor_prompt(
        self, task: int, level: str | None = None, prefix_steps: int | None = None
    ) -> tuple[list[dict[str, str]], str, list[str]]:
        """(the actor's conversation, the env's expert reply, the prefix lines it is given)."""
        if self._actor_env is None:
            self._actor_env = MathCritiqueEnv(data=self.data)
        options = self.options(task, level)
        if prefix_steps:
            options.update(guidance="state_reset", prefix_steps=prefix_steps)
        env = self._actor_env
        observation, info = env.reset(seed=task, options=options)
        messages = [
            {"role": "system", "content": info["instruction"]},
            {"role": "user", "content": observation},
        ]
        prefix = env.problem.lines[: info.get("prefix_steps", 0)]
        return messages, env.expert_action(), prefix

    def refine_prompt(
        self, task: int, level: str | None, solution: str, critique: Critique
    ) -> list[dict[str, str]] | None:
        """The actor's conversation after `solution` got `critique` (None when the env ends the
        episode instead: a right answer)."""
        if self._refine_env is None:
            self._refine_env = MathCritiqueEnv(data=self.data, critic=self._held, refine_rounds=1)
        env = self._refine_env
        observation, info = env.reset(seed=task, options=self.options(task, level))
        self._held.held = critique
        reply, _, terminated, _, step_info = env.step(solution)
        if terminated or step_info.get("invalid"):
            return None
        return [
            {"role": "system", "content": info["instruction"]},
            {"role": "user", "content": observation},
            {"role": "assistant", "content": solution},
            {"role": "user", "content": reply},
        ]


# ---- refiners and the Monte-Carlo test --------------------------------------------------------
@dataclass
class RefineJob:
    """A solution to revise after its critique; `messages` is the actor's conversation at that
    point (what a model refiner is asked; None for the oracle refiner)."""

    problem: Problem
    solution: str
    critique: Critique
    messages: list[dict[str, str]] | None = None


class OracleRefiner:
    """A refiner without a model that trusts the critique, as a careful student would.

    A critique that accepts the solution (or says nothing) leaves it unchanged. One that marks
    a step Wrong makes it keep the steps before that one and redo the rest: the reference
    steps after the last value its kept steps compute. If a kept step is itself wrong (the
    critique missed the first error) the student cannot know and keeps the error: the
    solution comes back unchanged, still wrong. A critique that rejects only the final answer
    makes it finish a solution whose steps are right but stop early, and rewrite from the
    reference one whose steps are wrong. So a critique passes the Monte-Carlo test with this
    refiner when it flags a flawed solution at or before its first error.
    """

    name = "oracle"
    needs_messages = False

    def refine(self, jobs: list[RefineJob], n: int = 1) -> list[list[str]]:
        return [[self.revise(job.problem, job.solution, job.critique)] * n for job in jobs]

    def revise(self, problem: Problem, solution: str, critique: Critique) -> str:
        if critique.unparsable or critique.verdict is not False:
            return solution
        lines = solution_steps(solution)
        truth = OracleCritic(problem).critique(problem.question, solution).first_wrong_step
        flagged = critique.first_wrong_step
        if flagged is not None:
            if truth is not None and flagged > truth:
                return solution  # the error sits in a step the critique accepted
            kept = lines[: flagged - 1]
        else:
            kept = lines if truth is None else []
        return "\n".join(
            [*kept, *problem.lines[_reached(problem, kept) :], f"The answer is {problem.answer}."]
        )


def _reached(problem: Problem, lines: list[str]) -> int:
    """How many reference steps `lines` cover: one past the last reference step whose value they compute."""
    values: set[Fraction] = set()
    for line in lines:
        found = computations(line)
        values.update([c.claimed for c in found] if found else stated_numbers(line))
    reached = 0
    for j, value in enumerate(problem.line_values):
        if value is not None and value in values:
            reached = j + 1
    return reached


class ModelRefiner:
    """A refiner behind a model (any `Completer`): asked in `evol/MathCritique-v0`'s conversation,
    after the solution and the critique, for `n` samples at `temperature`."""

    needs_messages = True

    def __init__(self, model: Completer, temperature: float = 0.7, max_new_tokens: int = 512, seed: int = 0):
        self.model = require_completer(model, "refiner")
        self.name = getattr(model, "name", type(model).__name__)
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.calls = 0

    def refine(self, jobs: list[RefineJob], n: int = 1) -> list[list[str]]:
        asked = [i for i, job in enumerate(jobs) if job.messages is not None]
        replies: list[list[str]] = [[job.solution] * n for job in jobs]  # no conversation: no revision
        if asked:
            self.calls += 1
            answers = self.model.complete(
                [jobs[i].messages for i in asked],
                temperature=self.temperature,
                max_new_tokens=self.max_new_tokens,
                n=n,
                seed=self.seed * 1_000_003 + self.calls,
            )
            for i, texts in zip(asked, answers):
                replies[i] = [reply_action(text) for text in texts]
        return replies


def is_right(problem: Problem, solution: str) -> bool:
    """Whether `solution` states `problem`'s gold answer (`The answer is N.`, `\\boxed{}`, `####`)."""
    return answers_match(extract_answer(solution, fallback_last_number=False), problem.answer)


def fixed_shares(refiner: Any, jobs: list[RefineJob], k: int) -> list[tuple[float, str | None]]:
    """Per job, the share of `k` refinements that reach the gold answer and the first that does."""
    results = []
    for job, texts in zip(jobs, refiner.refine(jobs, k)):
        right = [text for text in texts if is_right(job.problem, text)]
        results.append((len(right) / k, right[0] if right else None))
    return results
