"""Flawed solutions made from a file's reference solution: `flaw_reference(problem, kind, rng)`.

A problem read from a GSM8K- or MATH-style file has no `Derivation`, only its reference
lines. The error is injected into their text: a line's last computation (as
`envs.math.arithmetic` reads it) gets an arithmetic slip in its result, a swapped operator
or another number of the question as an operand (the result then recomputed), and the
change is carried through the later lines: every later number that stood for a changed
value is replaced, and every later computation using it is recomputed, down to the final
answer. The error must reach the final answer, and the oracle critic must place it where
it was put (else the variant is dropped). "dropped" errors are not made from text.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from fractions import Fraction

from envs.math.answers import answers_match
from envs.math.arithmetic import Computation, computations, evaluate, number_tokens
from envs.math.critics import OracleCritic, stated_values
from envs.math.flaws import OPERATORS_BY_SWAP, FlawedSolution
from envs.math.problems import TRIVIAL_NUMBERS, Problem
from envs.numbers import format_number

TEXT_ERROR_KINDS = ("slip", "operation", "operand")
MAX_PROPAGATION_PASSES = 4  # recomputations of one line (a chain is recomputed link by link)
EDITABLE_OPERATORS = frozenset("+-*/xX×÷·") | {"times"}


def flaw_reference(
    problem: Problem, kind: str, rng: random.Random, step: int | None = None
) -> FlawedSolution | None:
    """`problem`'s reference solution with a `kind` error first at `step` (1-based; by
    default a line drawn from `rng`), carried to the final answer; None if it cannot be
    placed there. Integer results throughout are preferred."""
    if kind not in TEXT_ERROR_KINDS:
        return None
    gold = evaluate(problem.answer)
    if gold is None or not problem.lines:
        return None
    oracle = OracleCritic(problem)
    # values a later line may state because the question does: never taken for a changed step's
    protected = stated_values(problem.question) | set(problem.givens) | TRIVIAL_NUMBERS
    n = len(problem.lines)
    positions = [step - 1] if step is not None else rng.sample(range(n), n)
    for integers_only in (True, False):
        for i in positions:
            if not 0 <= i < n:
                return None
            for line, old, new in _variants(kind, problem, i, rng, protected):
                if kind != "slip" and new in oracle.allowed:
                    continue  # a right computation of a value the reference has: not visibly wrong
                lines = [*problem.lines[:i], line, *problem.lines[i + 1 :]]
                changed = _carry(lines, i + 1, {old: new}, protected)
                answer = _result(lines[-1]) if _result(problem.lines[-1]) == gold else None
                if changed is None or answer is None or answer == gold:
                    continue
                if integers_only and any(v.denominator != 1 for v in changed.values()):
                    continue
                text = _format(answer, latex=False)
                if answers_match(text, problem.answer):
                    continue
                flawed = FlawedSolution(lines, text, kind, i + 1)
                critique = oracle.critique(problem.question, flawed.text)
                if critique.first_wrong_step == i + 1 and critique.answer_correct is False:
                    return flawed
    return None


def _last_computation(line: str) -> Computation | None:
    """The line's last computation, if it ends the line's arithmetic (no `=` after it), is
    judged right and claims one plain number (or fraction)."""
    found = computations(line)
    if not found:
        return None
    last = found[-1]
    if last.actual is None or not last.right or not last.single_claim or len(last.readings) > 1:
        return None
    if "=" in line[last.claim_span[1] :]:
        return None
    return last


def _variants(
    kind: str, problem: Problem, i: int, rng: random.Random, protected: set[Fraction]
) -> Iterator[tuple[str, Fraction, Fraction]]:
    """(the changed line, the value it computed, the value it computes now) for each way
    of putting a `kind` error in line i."""
    line = problem.lines[i]
    last = _last_computation(line)
    if last is None or (last.claimed in protected and i < len(problem.lines) - 1):
        return  # a later line stating this value may mean the question's number
    old = last.claimed
    if kind == "slip":
        for wrong in _slips(old, rng):
            yield _replace(line, last.claim_span, _format(wrong, _latex(line))), old, wrong
        return
    edits: list[tuple[tuple[int, int], str]] = []
    if kind == "operation":
        for start, end, symbol in last.operators:
            if line[start:end].strip().lower() not in EDITABLE_OPERATORS or symbol not in OPERATORS_BY_SWAP:
                continue
            edits += [((start, end), swapped) for swapped in OPERATORS_BY_SWAP[symbol]]
    else:
        numbers = sorted({g for g in stated_values(problem.question) if g not in TRIVIAL_NUMBERS and g > 0})
        for start, end, value in last.operands:
            if "%" in line[start:end] or not line[start:end].strip()[:1].isdigit():
                continue  # a percent, or a LaTeX number: not rewritten in place
            edits += [((start, end), _format(g, _latex(line))) for g in numbers if g != value]
    rng.shuffle(edits)
    for span, text in edits:
        edited = _replace(line, span, text)
        recomputed = _last_computation_value(edited)
        if recomputed is None or recomputed == old:
            continue
        claim = computations(edited)[-1].claim_span
        yield _replace(edited, claim, _format(recomputed, _latex(line))), old, recomputed


def _result(line: str) -> Fraction | None:
    """What a line concludes: its last computation's claim, else its last number."""
    found = computations(line)
    if found:
        return found[-1].claimed
    numbers = number_tokens(line)
    return numbers[-1].value if numbers else None


def _last_computation_value(line: str) -> Fraction | None:
    found = computations(line)
    return found[-1].actual if found and found[-1].single_claim else None


def _slips(value: Fraction, rng: random.Random) -> list[Fraction]:
    candidates = [value + 1, value - 1, value + 2, value - 2, value + 10, value - 10, value * 10]
    digits = str(value.numerator) if value.denominator == 1 and value > 0 else ""
    if len(digits) > 1 and digits[-1] != digits[-2]:
        candidates.append(Fraction(int(digits[:-2] + digits[-1] + digits[-2])))  # transposed digits
    rng.shuffle(candidates)
    return [c for c in candidates if c != value and (c > 0 or value < 0)]


def _carry(
    lines: list[str], first: int, changed: dict[Fraction, Fraction], protected: set[Fraction]
) -> dict[Fraction, Fraction] | None:
    """Rewrite `lines[first:]` in place with the changed values carried through; returns
    every value changed (old -> new), or None when a line cannot be rewritten."""
    for j in range(first, len(lines)):
        line = lines[j]
        claims = {c.claim_span for c in computations(line)}
        edits = [
            ((t.start, t.end), _format(changed[t.value], _latex(line)))
            for t in number_tokens(line)
            if t.value in changed and not t.percent and (t.start, t.end) not in claims
        ]
        line = _replace_all(line, edits)
        for _ in range(MAX_PROPAGATION_PASSES):
            stale = next((c for c in computations(line) if not c.right and c.single_claim), None)
            if stale is None or stale.actual is None or len(stale.readings) > 1:
                break
            line = _replace(line, stale.claim_span, _format(stale.actual, _latex(line)))
            if stale.claimed not in protected or stale.claimed in changed:
                changed[stale.claimed] = stale.actual
        else:
            return None
        lines[j] = line
    return changed


def _replace(line: str, span: tuple[int, int], text: str) -> str:
    return line[: span[0]] + text + line[span[1] :]


def _replace_all(line: str, edits: list[tuple[tuple[int, int], str]]) -> str:
    for span, text in sorted(edits, reverse=True):
        line = _replace(line, span, text)
    return line


def _latex(line: str) -> bool:
    return "\\" in line


def _format(value: Fraction, latex: bool) -> str:
    text = format_number(value)
    if "/" in text and latex:
        sign = "-" if value < 0 else ""
        return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"
    return text
