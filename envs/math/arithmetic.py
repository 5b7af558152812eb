"""The arithmetic in a solution line: `computations` (each `expression = number` with its true value).

`evaluate` reads `+ - * / ( )` arithmetic with a tokenizer and a recursive-descent parser
of exactly that grammar (no `eval`); `stated_numbers` lists the numbers a line states.
Lengths and nesting are capped: a line is client text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_ANNOTATION = re.compile(r"<<[^<>]*>>")  # GSM8K calculator annotations, `<<48/2=24>>`: not read


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
