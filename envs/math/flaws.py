"""Flawed solutions, AutoMathCritique-style: `make_flawed(problem, kind, rng)`.

An arithmetic slip, a wrong operation, a wrong operand or a dropped step at a chosen
step of a generated problem's reference solution, with its consequences carried to the
end (the problem's `Derivation` recomputes every later step).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from fractions import Fraction

from envs.math.derivation import Derivation, Operand, Step
from envs.math.problems import TRIVIAL_NUMBERS, Problem
from envs.numbers import format_number

ERROR_KINDS = ("slip", "operation", "operand", "dropped")


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
