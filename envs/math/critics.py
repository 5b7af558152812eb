"""Critics of math solutions: one interface, `critique(question, solution) -> Critique`.

`OracleCritic(problem)` checks every step exactly against a problem's reference (it
recomputes each line's arithmetic and follows the reference's step values) and names the
first wrong step with the right computation. `ModelCritic(model)` asks a model: any
object with `complete(conversations, ...)` (the `Completer` protocol of
`envs.counterparts`; `agents.Agent` provides it) gets the critique prompt; a model that
fails to answer raises `CriticError` (the episode is a fault, never a silent "no errors").
`as_critic` takes either. A model critic named by an agent spec (`hf:PATH`,
`openai:URL#MODEL`) is built by `evol`: `evol eval --refine R --critic SPEC` locally, `evol
serve --counterpart critic=SPEC` on a server (see docs/architecture.md).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Protocol

from envs.counterparts import Completer, is_completer, require_completer
from envs.math.answers import answers_match, extract_answer
from envs.math.arithmetic import Computation, computations, number_tokens, readings, stated_numbers
from envs.math.critique import (
    Critique,
    CritiqueFormatError,
    StepCritique,
    numbered_solution,
    parse_critique,
    solution_steps,
)
from envs.math.number_words import word_numbers
from envs.math.problems import TRIVIAL_NUMBERS, Problem
from envs.numbers import format_number


class Critic(Protocol):
    """Anything that critiques a solution to a question."""

    def critique(self, question: str, solution: str) -> Critique: ...


class OracleCritic:
    """Checks a solution against `reference` (a `Problem` with reference lines and values).

    Each line's arithmetic is recomputed (`envs.math.arithmetic`: a link it cannot read
    for sure is never called wrong); when the final answer is wrong, a line whose results
    (or, without a computation, whose numbers) are not among the values the reference
    computes or the question states is wrong too. For a problem from a file, those values
    are every number its reference solution and question state, in digits or in words
    ("twice", "a dozen"), and a line without a computation may also state a common
    constant (60 minutes, 12 months). The first wrong step gets the right computation: its
    own expression recomputed for an arithmetic slip, else the reference step it should
    have been (lines are matched to reference steps in order by value, so a missing step
    is named as such).
    """

    def __init__(self, reference: Problem):
        self.reference = reference
        self.allowed = (
            {v for v in reference.line_values if v is not None} | set(reference.givens) | TRIVIAL_NUMBERS
        )
        self._constants: frozenset[Fraction] = frozenset()
        if reference.derivation is None:  # a file's problem: its givens are only the digits it writes
            self.allowed |= stated_values(reference.question, *reference.lines)
            self._constants = COMMON_CONSTANTS
        self._steps_of: dict[Fraction, list[int]] = {}  # value -> the reference steps computing it
        for j, value in enumerate(reference.line_values):
            self._steps_of.setdefault(value, []).append(j)

    def critique(self, question: str, solution: str) -> Critique:
        reference = self.reference
        answer = extract_answer(solution, fallback_last_number=False)
        answer_right = answer is not None and answers_match(answer, reference.answer)
        critique = Critique(answer=answer, answer_correct=answer_right)
        pointer = 0  # the next reference step the solution has not reached
        first_wrong = None
        for index, line in enumerate(solution_steps(solution), 1):
            found = computations(line)
            slip = next((c for c in found if not c.right), None)
            values = [c.claimed for c in found] if found else stated_numbers(line)
            strays = [] if answer_right else self._strays(line, found)
            if slip is None and not strays:
                pointer = self._advance(pointer, values)
                explanation = "; ".join(
                    dict.fromkeys(f"{c.expression} = {format_number(c.claimed)}" for c in found)
                )
                critique.steps.append(
                    StepCritique(index, line, True, (explanation or "Nothing to compute") + ".")
                )
                continue
            if first_wrong is not None:
                explanation = f"It carries the error of step {first_wrong} forward."
                if slip is not None:
                    explanation = f"{_slip_text(slip)} {explanation}"
            elif slip is not None:
                own = f"{slip.expression} = {format_number(slip.actual)}"
                right = own if slip.actual in self.allowed else self._reference_line(pointer) or own
                explanation = f"{_slip_text(slip)} The right computation: {right}."
            else:
                shown = next((c for c in found if c.claimed == strays[0]), None)
                what = (
                    f"{shown.expression} = {format_number(shown.claimed)}"
                    if shown
                    else format_number(strays[0])
                )
                explanation = (
                    f"{what} does not follow from the problem: a wrong number or operation, or a "
                    "missing step."
                )
                right = self._reference_line(pointer)
                if right:
                    explanation += f" The right computation: {right}."
            first_wrong = first_wrong or index
            critique.steps.append(StepCritique(index, line, False, explanation))
        critique.answer_explanation = self._answer_explanation(answer, answer_right, first_wrong, pointer)
        return critique

    def _strays(self, line: str, found: list[Computation]) -> list[Fraction]:
        """The line's results (without a computation: its numbers) that no reading of explains."""
        if found:
            return [c.claimed for c in found if not any(v in self.allowed for v in (c.claimed, *c.readings))]
        allowed = self.allowed | self._constants
        return [t.value for t in number_tokens(line) if not any(v in allowed for v in readings(t))]

    def _advance(self, pointer: int, values: list[Fraction]) -> int:
        """The reference pointer after a correct line that computed `values`."""
        for value in values:
            later = [j for j in self._steps_of.get(value, ()) if j >= pointer]
            if later:
                pointer = later[0] + 1
        return pointer

    def _reference_line(self, pointer: int) -> str | None:
        """The computation of the next reference step with a known value."""
        reference = self.reference
        for j in range(pointer, len(reference.lines)):
            if j < len(reference.line_values) and reference.line_values[j] is not None:
                found = computations(reference.lines[j])
                if found:
                    c = found[-1]
                    return f"{c.expression} = {format_number(c.claimed)}"
                return reference.lines[j]
        return None

    def _answer_explanation(
        self, answer: str | None, right: bool, first_wrong: int | None, pointer: int
    ) -> str:
        if answer is None:
            return "The solution states no final answer; it must end with `The answer is N.`"
        if right:
            return f"{answer} is the right answer."
        if first_wrong is not None:
            return f"{answer} is not right; it follows from the error in step {first_wrong}."
        text = f"The steps check out, but {answer} is not the answer to the question."
        following = self._reference_line(pointer)
        return text + (
            f" The solution stops early; the next computation is {following}." if following else ""
        )


# Constants a line may state without a computation: units of time, dozens, percent, metric.
COMMON_CONSTANTS = frozenset(
    Fraction(n) for n in (2, 4, 7, 10, 12, 16, 24, 30, 31, 52, 60, 100, 365, 1000, 3600)
)


def stated_values(*texts: str) -> set[Fraction]:
    """Every value the texts state: their numbers (a percent also as its hundredth, `3/4` also
    as a fraction), the results of their computations, and their numbers in words."""
    values: set[Fraction] = set()
    for text in texts:
        for line in text.splitlines() or [""]:
            tokens = number_tokens(line)
            for token in tokens:
                values.update(readings(token))
            for a, b in zip(tokens, tokens[1:]):
                if line[a.end : b.start].strip() == "/" and b.value:
                    values.add(a.value / b.value)
            for computation in computations(line):
                values.update({computation.claimed, *computation.readings})
                if computation.actual is not None:
                    values.add(computation.actual)
        values |= word_numbers(text)
    return values


def _slip_text(slip: Computation) -> str:
    return f"{slip.expression} = {format_number(slip.actual)}, not {format_number(slip.claimed)}."


CRITIC_INSTRUCTION = """\
You are a careful math teacher. You check a student's step-by-step solution to a math \
problem, step by step, and then its final answer.

Write one block per step of the solution, in order, then one block for the final answer, \
exactly in this format:

Step 1: <the step, as written>
Verdict: Correct
Explanation: <why it is right>

Step 2: <the step, as written>
Verdict: Wrong
Explanation: <what is wrong, and the right computation>

Final answer: <the solution's final answer>
Verdict: Wrong
Explanation: <why the final answer is right or wrong>

A step is Wrong if its arithmetic is wrong, or if it uses a wrong number or operation or \
builds on an earlier mistake. For the first wrong step, give the right computation."""


def critique_prompt(question: str, solution: str) -> str:
    """The user message that asks for a critique of `solution`."""
    return f"Problem: {question}\n\nSolution:\n{numbered_solution(solution)}\n\nWrite your critique."


def critique_messages(question: str, solution: str) -> list[dict[str, str]]:
    """The conversation that asks a model critic for a critique (also the SFT prompt)."""
    return [
        {"role": "system", "content": CRITIC_INSTRUCTION},
        {"role": "user", "content": critique_prompt(question, solution)},
    ]


class CriticError(RuntimeError):
    """A model critic could not answer (its server unreachable, its model failing)."""


class ModelCritic:
    """A critic behind a model: any `Completer` (a local model, an OpenAI-compatible
    endpoint...) gets the critique prompt; its reply is parsed in the project's format or
    MathCritique's released one (a model trained on either). A reply that is neither is
    reported as such: a `Critique` with `format_error` set (`unparsable`), no verdicts, and
    the reply kept as `raw`, never read as "no errors"."""

    def __init__(self, model: Completer, temperature: float = 0.0, max_new_tokens: int = 1024):
        self.model = require_completer(model, "model critic")
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens

    def critique(self, question: str, solution: str) -> Critique:
        try:
            (replies,) = self.model.complete(
                [critique_messages(question, solution)],
                temperature=self.temperature,
                max_new_tokens=self.max_new_tokens,
            )
        except Exception as error:
            raise CriticError(f"the critic model failed: {type(error).__name__}: {error}") from error
        text = replies[0] if replies else ""
        try:
            return parse_critique(text)
        except CritiqueFormatError as error:
            return Critique(raw=text, format_error=str(error))


def as_critic(critic: Any, max_new_tokens: int = 1024) -> Any:
    """An object with `critique(question, solution)` as is; one with `complete` as a `ModelCritic`
    (replies of at most `max_new_tokens`)."""
    if hasattr(critic, "critique"):
        return critic
    if is_completer(critic):
        return ModelCritic(critic, max_new_tokens=max_new_tokens)
    if isinstance(critic, str):
        raise TypeError(
            f"critic {critic!r}: an env takes 'oracle' or a critic object; a model critic named by an "
            "agent spec is built by evol (evol eval --refine R --critic SPEC, or evol serve "
            "--counterpart critic=SPEC)"
        )
    raise TypeError(
        "critic must be 'oracle', an object with critique(question, solution), or a model with "
        f"complete(conversations, ...); got {type(critic).__name__}"
    )
