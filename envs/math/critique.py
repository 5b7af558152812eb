"""Step-level critiques of math solutions (MathCritique): the format, critics, flawed solutions.

The format, one block per solution step, then one for the final answer:

    Step 1: Tom buys 3 packs of 12 pencils: 3 * 12 = 36 pencils.
    Verdict: Correct
    Explanation: 3 * 12 = 36.

    Step 2: After 5 pencils are gone: 36 - 5 = 32 pencils.
    Verdict: Wrong
    Explanation: 36 - 5 = 31, not 32. The right computation: 36 - 5 = 31.

    Final answer: 64
    Verdict: Wrong
    Explanation: 64 is not right; it follows from the error in step 2.

`Critique.render()` writes it; `parse_critique(text)` reads it back, tolerating Markdown,
other labels and missing fields. Critics share one interface, `critique(question,
solution) -> Critique`: `OracleCritic(problem)` checks every step exactly against a
problem's reference (it recomputes each line's arithmetic and follows the reference's
step values) and names the first wrong step with the right computation; `ModelCritic`
asks any object with the agent interface. `make_flawed(problem, kind, rng)` writes a
flawed solution AutoMathCritique-style: an arithmetic slip, a wrong operation, a wrong
operand or a dropped step at a chosen step, with its consequences carried to the end.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Protocol

from envs.math.answers import answers_match, extract_answer
from envs.math.problems import Derivation, Operand, Problem, Step, format_number

ERROR_KINDS = ("slip", "operation", "operand", "dropped")
TRIVIAL_NUMBERS = frozenset({Fraction(0), Fraction(1), Fraction(100)})


# ---- the format -----------------------------------------------------------------------
@dataclass
class StepCritique:
    index: int  # 1-based
    step: str
    correct: bool | None  # None: the critique gives no verdict for this step
    explanation: str = ""


@dataclass
class Critique:
    """A critique in structured form; `raw` keeps the text it was parsed from."""

    steps: list[StepCritique] = field(default_factory=list)
    answer: str | None = None
    answer_correct: bool | None = None
    answer_explanation: str = ""
    raw: str = ""

    @property
    def first_wrong_step(self) -> int | None:
        wrong = [s.index for s in self.steps if s.correct is False]
        return min(wrong) if wrong else None

    @property
    def verdict(self) -> bool | None:
        """Whether the critique judges the solution right: its final-answer verdict, else
        what its steps say (wrong if any step is), None if it says nothing."""
        if self.answer_correct is not None:
            return self.answer_correct
        if any(s.correct is False for s in self.steps):
            return False
        if self.steps and all(s.correct for s in self.steps):
            return True
        return None

    def render(self) -> str:
        blocks = [
            f"Step {s.index}: {s.step}\nVerdict: {_verdict_word(s.correct)}\nExplanation: {s.explanation}"
            for s in self.steps
        ]
        blocks.append(
            f"Final answer: {self.answer if self.answer is not None else '(none)'}\n"
            f"Verdict: {_verdict_word(self.answer_correct)}\nExplanation: {self.answer_explanation}"
        )
        return "\n\n".join(blocks)

    @property
    def text(self) -> str:
        """What to show an actor: the critic's own words, or the rendered format."""
        return self.raw or self.render()


def _verdict_word(correct: bool | None) -> str:
    return {True: "Correct", False: "Wrong", None: "Unknown"}[correct]


class CritiqueFormatError(ValueError):
    """A text with no step verdicts and no final-answer verdict."""


_BLOCK = re.compile(
    r"^[ \t>#*_-]*(?:step[ \t]*(\d{1,9})(?!\d)|(final[ \t]+answer))[ \t*_]*(?:[:.)\-–][ \t*_]*)?([^\n]*)$",
    re.IGNORECASE | re.MULTILINE,
)
_FIELD = re.compile(
    r"^[ \t*_-]*(verdict|correctness|judge?ment|assessment|explanation)[ \t*_]*[:\-][ \t*_]*([^\n]*)$",
    re.IGNORECASE | re.MULTILINE,
)
_VERDICT_WORD = re.compile(
    r"\b(incorrect|wrong|not correct|erroneous|mistaken|false|correct|valid|true)\b", re.IGNORECASE
)
_WHOLE_VERDICT = re.compile(
    r"\b(?:the\s+)?(?:final\s+)?answer\s+is\s+(incorrect|wrong|not correct|correct|right)\b", re.IGNORECASE
)


def _classify(text: str) -> bool | None:
    match = _VERDICT_WORD.search(text)
    if match is None:
        return None
    return match.group(1).lower() in ("correct", "valid", "true")


def parse_critique(text: str) -> Critique:
    """A critique in the format (Markdown, other field names and missing fields tolerated).

    Raises `CritiqueFormatError` when the text has neither step blocks nor a verdict on
    the final answer.
    """
    if not isinstance(text, str) or not text.strip():
        raise CritiqueFormatError("the critique is empty")
    critique = Critique(raw=text)
    headers = list(_BLOCK.finditer(text))
    for n, header in enumerate(headers):
        end = headers[n + 1].start() if n + 1 < len(headers) else len(text)
        body = text[header.end() : end]
        verdict, explanation = None, ""
        last_explanation = None  # only the last one is kept: copying each one's rest was quadratic
        for field_match in _FIELD.finditer(body):
            name, value = field_match.group(1).lower(), field_match.group(2)
            if name == "explanation":
                last_explanation = field_match
            elif verdict is None:
                verdict = _classify(value)
        if last_explanation is not None:
            explanation = (last_explanation.group(2) + body[last_explanation.end() :]).strip()
        content = header.group(3).strip()
        if verdict is None:
            verdict = _classify(body) if body.strip() else None
            if verdict is None:
                verdict = _classify(content)
        if not explanation:
            explanation = _FIELD.sub("", body).strip()
        if header.group(2):
            critique.answer = content or critique.answer
            critique.answer_correct, critique.answer_explanation = verdict, explanation
        else:
            critique.steps.append(StepCritique(int(header.group(1)), content, verdict, explanation))
    if critique.answer_correct is None:
        whole = list(_WHOLE_VERDICT.finditer(text))
        if whole:
            critique.answer_correct = whole[-1].group(1).lower() in ("correct", "right")
    if not any(s.correct is not None for s in critique.steps) and critique.answer_correct is None:
        raise CritiqueFormatError(
            "no verdict found: write a block per step (`Step 1: ...`, `Verdict: Correct` or `Wrong`, "
            "`Explanation: ...`) and a final block (`Final answer: ...`, `Verdict: ...`, `Explanation: ...`)"
        )
    return critique


# ---- solutions as steps ---------------------------------------------------------------
_STEP_PREFIX = re.compile(r"^(?:[-*•]\s+|step\s*\d+\s*[:.)]\s*|\d+[.)]\s+)", re.IGNORECASE)
_ANSWER_SENTENCE = re.compile(r"(?:^|(?<=[.!?]))\s*(?:the\s+)?(?:final\s+)?answer\s+is\b.*$", re.IGNORECASE)
_ANNOTATION = re.compile(r"<<[^<>]*>>")


def solution_steps(solution: str) -> list[str]:
    """A solution's steps: its non-empty lines without list markers and without the final
    answer sentence (`The answer is N.` or `#### N`)."""
    lines = [_STEP_PREFIX.sub("", line.strip()).strip() for line in solution.splitlines()]
    lines = [line for line in lines if line]
    if lines:
        last = re.sub(r"^####.*$", "", _ANSWER_SENTENCE.sub("", lines[-1])).strip()
        lines[-1:] = [last] if last else []
    return lines


def numbered_solution(solution: str) -> str:
    """The solution as a critic sees it: `Step i: ...` lines, then its answer line."""
    lines = [f"Step {i}: {line}" for i, line in enumerate(solution_steps(solution), 1)]
    answer = extract_answer(solution, fallback_last_number=False)
    lines.append(f"The answer is {answer}." if answer is not None else "(no final answer given)")
    return "\n".join(lines)


# ---- arithmetic in a line -------------------------------------------------------------
@dataclass(frozen=True)
class Computation:
    expression: str
    claimed: Fraction
    actual: Fraction | None  # None if the expression could not be evaluated

    @property
    def right(self) -> bool:
        return self.actual is None or self.actual == self.claimed


_EXPRESSION_CHARS = set("0123456789.,$ ()+-*/×÷x·")
MAX_NUMBER_LENGTH = 100  # characters of one number in a step; longer ones are not read
MAX_LINE_NUMBERS = 100  # numbers (and computations) read from one step
_RESULT = re.compile(r"\s*(-?)\$?(\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)")
_TOKEN = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+|[-+*/()])")


def computations(line: str) -> list[Computation]:
    """Every `expression = number` in a line, e.g. `3 * 12 = 36`, with its true value."""
    line = _ANNOTATION.sub("", line)[:2000]
    found = []
    for equals in (i for i, char in enumerate(line) if char == "="):
        if len(found) >= MAX_LINE_NUMBERS:
            break
        start = equals
        while start > 0 and line[start - 1] in _EXPRESSION_CHARS:
            start -= 1
        expression = line[start:equals].strip().lstrip("x×·*/+,.) ").strip()
        result = _RESULT.match(line, equals + 1)
        if result is None or not re.search(r"\d\s*[-+*/×÷x·]\s*[($]*\d", expression):
            continue
        if len(result.group(2)) > MAX_NUMBER_LENGTH:
            continue
        claimed = Fraction(result.group(2).replace(",", ""))
        found.append(Computation(expression, -claimed if result.group(1) else claimed, evaluate(expression)))
    return found


MAX_EXPRESSION_TOKENS = 200  # a longer `expression = number` is not checked
MAX_NESTING = 20  # parentheses and signs inside one another


def evaluate(expression: str) -> Fraction | None:
    """The exact value of `+ - * / ( )` arithmetic (`x`, `×`, `·`, `÷` allowed), or None.

    Read by a tokenizer and a recursive-descent parser of exactly that grammar (no `eval`),
    with at most `MAX_EXPRESSION_TOKENS` tokens nested at most `MAX_NESTING` deep.
    """
    text = expression.replace(",", "").replace("$", "")
    text = text.replace("×", "*").replace("·", "*").replace("÷", "/").replace("x", "*")
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position:].strip():
                return None
            break
        tokens.append(match.group(1))
        position = match.end()
        if len(tokens) > MAX_EXPRESSION_TOKENS:
            return None
    try:
        value, rest = _sum(tokens, 0, 0)
    except (IndexError, ValueError, ZeroDivisionError):
        return None
    return value if rest == len(tokens) else None


def _sum(tokens: list[str], i: int, depth: int) -> tuple[Fraction, int]:
    value, i = _product(tokens, i, depth)
    while i < len(tokens) and tokens[i] in "+-":
        op = tokens[i]
        right, i = _product(tokens, i + 1, depth)
        value = value + right if op == "+" else value - right
    return value, i


def _product(tokens: list[str], i: int, depth: int) -> tuple[Fraction, int]:
    value, i = _factor(tokens, i, depth)
    while i < len(tokens) and tokens[i] in "*/":
        op = tokens[i]
        right, i = _factor(tokens, i + 1, depth)
        value = value * right if op == "*" else value / right
    return value, i


def _factor(tokens: list[str], i: int, depth: int) -> tuple[Fraction, int]:
    if depth > MAX_NESTING:
        raise ValueError("nested too deeply")
    token = tokens[i]
    if token == "-":
        value, i = _factor(tokens, i + 1, depth + 1)
        return -value, i
    if token == "(":
        value, i = _sum(tokens, i + 1, depth + 1)
        if tokens[i] != ")":
            raise ValueError("unclosed parenthesis")
        return value, i + 1
    if token in "+*/)":
        raise ValueError(f"unexpected {token!r}")
    return Fraction(token), i + 1


_LINE_NUMBER = re.compile(r"(?<![\d.])\d+(?:,\d{3})*(?:\.\d+)?")


def stated_numbers(line: str) -> list[Fraction]:
    """The numbers a line states (its first `MAX_LINE_NUMBERS`)."""
    numbers = [n for n in _LINE_NUMBER.findall(_ANNOTATION.sub("", line)) if len(n) <= MAX_NUMBER_LENGTH]
    return [Fraction(n.replace(",", "")) for n in numbers[:MAX_LINE_NUMBERS]]


# ---- critics --------------------------------------------------------------------------
class Critic(Protocol):
    """Anything that critiques a solution to a question."""

    def critique(self, question: str, solution: str) -> Critique: ...


class OracleCritic:
    """Checks a solution against `reference` (a `Problem` with reference lines and values).

    Each line's arithmetic is recomputed; when the final answer is wrong, a line whose
    results (or, without a computation, whose numbers) are not among the values the
    reference computes or the question states is wrong too. The first wrong step gets the
    right computation: its own expression recomputed for an arithmetic slip, else the
    reference step it should have been (lines are matched to reference steps in order by
    value, so a missing step is named as such).
    """

    def __init__(self, reference: Problem):
        self.reference = reference
        self.allowed = (
            {v for v in reference.line_values if v is not None} | set(reference.givens) | TRIVIAL_NUMBERS
        )
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
            strays = [] if answer_right else [v for v in values if v not in self.allowed]
            if slip is None and not strays:
                pointer = self._advance(pointer, values)
                explanation = "; ".join(f"{c.expression} = {format_number(c.claimed)}" for c in found)
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
                shown = next((c for c in found if c.claimed in strays), None)
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


class ModelCritic:
    """A critic behind the agent interface: any object with `act(inputs, sampling)` (a local
    model, an OpenAI-compatible endpoint...) gets the critique prompt; its reply is parsed
    (an unparseable reply is kept as `raw`, with no verdicts)."""

    def __init__(self, agent: Any, sampling: Any = None):
        if not hasattr(agent, "act"):
            raise TypeError(
                f"a model critic needs an object with the agent interface, got {type(agent).__name__}"
            )
        self.agent = agent
        self.sampling = sampling

    def critique(self, question: str, solution: str) -> Critique:
        from agents.base import AgentInput, SamplingParams  # the interface, never a backend

        sampling = self.sampling or SamplingParams(temperature=0.0, max_new_tokens=1024)
        output = self.agent.act([AgentInput(messages=critique_messages(question, solution))], sampling)[0]
        text = getattr(output, "text", str(output))
        try:
            return parse_critique(text)
        except CritiqueFormatError:
            return Critique(raw=text)


def as_critic(critic: Any, sampling: Any = None) -> Any:
    """An object with `critique(question, solution)` as is; one with `act` as a `ModelCritic`."""
    if hasattr(critic, "critique"):
        return critic
    if hasattr(critic, "act"):
        return ModelCritic(critic, sampling)
    raise TypeError(
        "critic must be 'oracle', an object with critique(question, solution), or an object with the "
        f"agent interface (act); got {type(critic).__name__}"
    )


# ---- flawed solutions -----------------------------------------------------------------
@dataclass
class FlawedSolution:
    """A solution with its first error at `first_wrong_step` (1-based; None if correct)."""

    lines: list[str]
    answer: str
    kind: str  # "none" or one of ERROR_KINDS
    first_wrong_step: int | None

    @property
    def text(self) -> str:
        return "\n".join([*self.lines, f"The answer is {self.answer}."])


def correct_solution(problem: Problem) -> FlawedSolution:
    return FlawedSolution(list(problem.lines), problem.answer, "none", None)


def make_flawed(
    problem: Problem, kind: str, rng: random.Random, step: int | None = None
) -> FlawedSolution | None:
    """`problem`'s reference solution with a `kind` error first at `step` (1-based; by
    default a step drawn from `rng`) and its consequences propagated; None if that error
    cannot be placed there (a flawed line must compute a value the reference never does,
    and the final answer must change). Integer values throughout are preferred."""
    if kind not in ERROR_KINDS:
        raise ValueError(f"kind must be one of {ERROR_KINDS}, got {kind!r}")
    derivation = problem.derivation
    if derivation is None:
        raise ValueError("errors are injected into generated problems (with a derivation) only")
    n = len(derivation.steps)
    positions = [step - 1] if step is not None else rng.sample(range(n), n)
    allowed = set(problem.line_values) | set(problem.givens) | TRIVIAL_NUMBERS
    true_values = derivation.values()
    for integers_only in (True, False):
        for i in positions:
            if not 0 <= i < n:
                return None
            for variant in _VARIANTS[kind](problem, derivation, i, true_values, rng):
                steps, overrides, bad_index = variant
                flawed = Derivation(steps)
                values = flawed.values(overrides)
                if values[bad_index] in allowed or values[-1] == true_values[-1]:
                    continue
                if any(v <= 0 for v in values) or (integers_only and any(v.denominator != 1 for v in values)):
                    continue
                return FlawedSolution(flawed.lines(overrides), format_number(values[-1]), kind, bad_index + 1)
    return None


def _slips(problem: Problem, d: Derivation, i: int, true: list[Fraction], rng: random.Random):
    value = true[i]
    digits = str(value.numerator)
    candidates = [value + 1, value - 1, value + 2, value - 2, value + 10, value - 10, value * 10]
    if len(digits) > 1 and digits[-1] != digits[-2]:
        candidates.append(Fraction(int(digits[:-2] + digits[-1] + digits[-2])))  # transposed digits
    rng.shuffle(candidates)
    for wrong in candidates:
        if wrong != value:
            yield d.steps, {i: wrong}, i


def _operations(problem: Problem, d: Derivation, i: int, true: list[Fraction], rng: random.Random):
    step = d.steps[i]
    for k in rng.sample(range(len(step.ops)), len(step.ops)):
        for op in rng.sample(OPERATORS_BY_SWAP[step.ops[k]], len(OPERATORS_BY_SWAP[step.ops[k]])):
            ops = step.ops[:k] + (op,) + step.ops[k + 1 :]
            yield _with_step(d, i, replace(step, ops=ops)), {}, i


OPERATORS_BY_SWAP = {"+": ("-", "*"), "-": ("+",), "*": ("+", "/"), "/": ("*", "-")}


def _operands(problem: Problem, d: Derivation, i: int, true: list[Fraction], rng: random.Random):
    step = d.steps[i]
    numbers = sorted({g for g in problem.givens if g not in TRIVIAL_NUMBERS})
    for k in rng.sample(range(len(step.operands)), len(step.operands)):
        operand = step.operands[k]
        if operand.step is not None:
            choices = [Operand(step=j) for j in range(i) if j != operand.step]
            choices += [Operand(given=g) for g in numbers]
        else:
            choices = [Operand(given=g) for g in numbers if g != operand.given]
        for choice in rng.sample(choices, len(choices)):
            operands = step.operands[:k] + (choice,) + step.operands[k + 1 :]
            yield _with_step(d, i, replace(step, operands=operands)), {}, i


def _dropped(problem: Problem, d: Derivation, i: int, true: list[Fraction], rng: random.Random):
    if i >= len(d.steps) - 1:
        return  # dropping the last step leaves no flawed line
    dropped = d.steps[i]
    carry = dropped.operands[0]  # what the later steps use instead: the step's starting quantity

    def moved(operand: Operand) -> Operand:
        if operand.step is None or operand.step < i:
            return operand
        if operand.step == i:
            return carry
        return Operand(step=operand.step - 1)

    steps = [
        step if j < i else replace(step, operands=tuple(moved(o) for o in step.operands))
        for j, step in enumerate(d.steps)
        if j != i
    ]
    yield steps, {}, i


_VARIANTS = {"slip": _slips, "operation": _operations, "operand": _operands, "dropped": _dropped}


def _with_step(d: Derivation, i: int, step: Step) -> list[Step]:
    return [*d.steps[:i], step, *d.steps[i + 1 :]]
