"""A reference solution as a `Derivation`: steps whose operands are given numbers or earlier results.

A step can be changed and its consequences propagated (`Derivation.values(overrides)`,
`Derivation.lines(overrides)`): `envs.math.flaws` injects errors this way. Arithmetic is
exact (`Fraction`), lines are written as `{label}: 3 * 12 = 36 pencils.`
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from envs.numbers import format_number


@dataclass(frozen=True)
class Operand:
    """A number given in the problem (`given`) or the result of an earlier step (`step`)."""

    given: Fraction | None = None
    step: int | None = None


@dataclass(frozen=True)
class Step:
    """One solution line: `{label}: {operand} {op} {operand} ... = {result}.`"""

    label: str
    operands: tuple[Operand, ...]
    ops: tuple[str, ...]
    unit: str  # a plural noun ("pencils"), or "$" for money


def apply(ops: tuple[str, ...], values: list[Fraction]) -> Fraction:
    """`values[0] ops[0] values[1] ...` with the usual precedence (`*` `/` before `+` `-`)."""
    terms, signs = [values[0]], []
    for op, value in zip(ops, values[1:]):
        if op == "*":
            terms[-1] *= value
        elif op == "/":
            terms[-1] /= value
        else:
            terms.append(value)
            signs.append(op)
    total = terms[0]
    for sign, term in zip(signs, terms[1:]):
        total = total + term if sign == "+" else total - term
    return total


def format_quantity(value: Fraction, unit: str) -> str:
    if unit == "$":
        return f"-${format_number(-value)}" if value < 0 else f"${format_number(value)}"
    return f"{format_number(value)} {unit}".rstrip()


@dataclass
class Derivation:
    """Reference steps; `values()` computes every step's result, with changes if asked."""

    steps: list[Step]

    def values(
        self, overrides: dict[int, Fraction] | None = None, steps: list[Step] | None = None
    ) -> list[Fraction]:
        """Each step's result; `overrides[i]` replaces step i's result (a slip), and later
        steps use it; `steps` replaces the steps themselves (same length)."""
        overrides = overrides or {}
        results: list[Fraction] = []
        for i, step in enumerate(steps or self.steps):
            if i in overrides:
                results.append(overrides[i])
                continue
            results.append(apply(step.ops, self.operand_values(step, results)))
        return results

    @staticmethod
    def operand_values(step: Step, results: list[Fraction]) -> list[Fraction]:
        return [results[o.step] if o.step is not None else o.given for o in step.operands]

    def render_line(self, step: Step, results: list[Fraction], value: Fraction) -> str:
        operands = self.operand_values(step, results)
        expression = format_number(operands[0])
        for op, operand in zip(step.ops, operands[1:]):
            expression += f" {op} {format_number(operand)}"
        return f"{step.label}: {expression} = {format_quantity(value, step.unit)}."

    def lines(self, overrides: dict[int, Fraction] | None = None) -> list[str]:
        results = self.values(overrides)
        return [self.render_line(step, results, results[i]) for i, step in enumerate(self.steps)]
