"""The arithmetic in a solution line: `computations(line)` reads every `=` of it and checks it.

Real solutions write arithmetic inside prose: `so she received .50*2 = $1.00`,
`9 hours * 2/3 = 6 hours`, `30 - 8 * 3 = 30 - 24 = 6`, `1 - 3/5 = 2/5`, `2 1/2 * 4 = 10`,
`3/5 * 100 = 60%`, `$\\frac{1}{4} + \\frac{1}{4} = \\frac{1}{2}$`. The line is read as
tokens (`envs.math.line_tokens`: annotations dropped, LaTeX and unicode rewritten, numbers
with their `$`, `%`, commas and mixed parts); around each `=` the expression on either side
is the longest run of numbers and operators, skipping the unit words that follow a number
(`9 hours * 2/3`). Every link of a chain is checked, also read as a running total
(`5 + 3 = 8 + 2 = 10`).

Values come from the closed grammar of `envs.math.expressions` (nothing is evaluated as
code). A link is wrong only when every reading of it disagrees: a percent as a hundredth
or as a number, a result rounded or cut to the places it is written with (`5 / 30 =
0.17`, `10 / 3 = 3`), operands that were rounded fractions (`0.33 * 300 = 100`). When
unsure the reader says nothing: a link with a variable, a clock time or a command it
cannot compute, with words like "of the" between its expression and its `=` (`1/3 of
the students = 20`), or whose sides name different units a conversion apart (`50 cents
* 4 = $2`) is not judged (`actual` is None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

from envs.math.expressions import ExpressionError, parse, variables
from envs.math.expressions import evaluate as evaluate_tree
from envs.math.line_tokens import MAX_UNIT_WORDS, ReadLine, Token, number_tokens, read_line, readings
from envs.math.number_words import MULTIPLES, ORDINALS, SCALES

__all__ = ["Computation", "computations", "evaluate", "number_tokens", "readings", "stated_numbers"]

MAX_LINE_NUMBERS = 100  # computations read from one line
MAX_EXPRESSION_TOKENS = 200  # a longer expression is not checked


@dataclass(frozen=True)
class Computation:
    """One `=` link of a line: `expression` (as written) claimed to equal `claimed`.

    `actual` is the expression's value, None when the link is not judged (a variable, a
    clock time, an unsure reading); `right` is False only for a link that disagrees in
    every reading. `readings` are the values the claim may stand for (a percent is its
    hundredth and its number). The spans locate the claim and the expression's numbers
    and operators in the line, for tools that rewrite it.
    """

    expression: str
    claimed: Fraction
    actual: Fraction | None
    right: bool = True
    readings: tuple[Fraction, ...] = ()
    claim_span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)
    operands: tuple[tuple[int, int, Fraction], ...] = field(default=(), compare=False, repr=False)
    operators: tuple[tuple[int, int, str], ...] = field(default=(), compare=False, repr=False)
    single_claim: bool = field(default=True, compare=False, repr=False)  # the claim is one number or a/b


# ---- pass 3: the expressions around each `=` --------------------------------------------
POISON = ("var", "unknown", "time")  # next to an expression, the reader cannot compute it
UNREADABLE = "unreadable"


@dataclass
class Side:
    start: int  # token range
    end: int
    operators: int
    units: frozenset[str]
    loose: bool = False  # words stand between the expression and its `=`


def _operand_start(read: ReadLine, i: int, floor: int) -> int | None:
    """The first token of the operand that ends at token `i` (going backwards)."""
    tokens = read.tokens
    if tokens[i].kind == "num":
        return i
    if tokens[i].kind != "close":
        return None
    start = read.pairs.get(i)
    if start is None or start < floor:
        return None
    while start - 1 >= floor and not tokens[start].spaced:  # implicit product: 2(3 + 4), (1)(2)
        before = tokens[start - 1]
        if before.kind == "num":
            return start - 1
        if before.kind in ("word", *POISON):
            return None  # f(x), a(1), sqrt(4): not arithmetic the reader computes
        if before.kind != "close" or read.pairs.get(start - 1, -1) < floor:
            break
        start = read.pairs[start - 1]
    return start


def _operand_end(read: ReadLine, i: int, ceiling: int) -> int | None:
    """One past the last token of the operand that starts at token `i`."""
    tokens = read.tokens
    if tokens[i].kind == "num":
        end = i + 1
    elif tokens[i].kind == "open":
        close = read.pairs.get(i)
        if close is None or close >= ceiling:
            return None
        end = close + 1
    else:
        return None
    while end < ceiling and tokens[end].kind == "open" and not tokens[end].spaced:
        close = read.pairs.get(end)
        if close is None or close >= ceiling:
            return None
        end = close + 1
    return end


SCALE_WORDS = frozenset({*MULTIPLES, *ORDINALS, *SCALES})  # `2 dozen`, `2 and a half`, `3 million`


def _scales(tokens: list[Token], indices: list[int]) -> bool:
    """Whether words after a number change its value (`dozen`, `half`, `million`)."""
    return any(tokens[i].text.lower() in SCALE_WORDS for i in indices)


def _units(tokens: list[Token], indices: list[int], side: tuple[int, int] = (0, 0)) -> set[str]:
    """The unit words among `indices`, and "dollar" when the side's numbers are amounts (`$5`)."""
    units = {_unit(tokens[i].text) for i in indices} - NOT_UNITS
    if any(t.money for t in tokens[side[0] : side[1]]):
        units.add("dollar")
    return units


def _unit(word: str) -> str:
    word = word.lower()
    if word in ("dollar", "dollars", "usd", "bucks", "buck"):
        return "dollar"
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


NOT_UNITS = frozenset(
    "a an the of per each on in for at to and is are was were so that this it total all his her their its "
    "more less left every".split()
)


def _left(read: ReadLine, eq: int, floor: int) -> Side | str | None:
    """The expression that ends at the `=` at token `eq`; None if there is none."""
    tokens = read.tokens
    i, words = eq - 1, []
    while i >= floor and tokens[i].kind == "word" and len(words) < MAX_UNIT_WORDS:
        words.append(i)
        i -= 1
    if i < floor or (words and tokens[i].kind not in ("num", "close")):
        return None
    if _scales(tokens, words):
        return UNREADABLE
    if tokens[i].kind in POISON:
        return UNREADABLE
    start = _operand_start(read, i, floor)
    if start is None:
        return None
    end, operators, unit_words = i + 1, 0, list(words)
    while start - 1 >= floor:
        k = start - 1
        operator = tokens[k]
        if operator.kind in POISON:
            return UNREADABLE
        if operator.kind != "op":
            break
        m, skipped = k - 1, []
        while m >= floor and tokens[m].kind == "word" and len(skipped) < MAX_UNIT_WORDS:
            skipped.append(m)
            m -= 1
        if m >= floor and tokens[m].kind in ("num", "close"):
            operand = _operand_start(read, m, floor)
            if operand is None or _scales(tokens, skipped):
                return UNREADABLE
            start, operators = operand, operators + 1
            unit_words += skipped
            continue
        before = tokens[k - 1] if k - 1 >= floor else None
        if operator.symbol in "+-" and (
            before is None or before.kind in ("word", "stop", "eq", "open", "op")
        ):
            start = k  # a sign
            if before is not None and before.kind == "op":
                continue
            break
        return UNREADABLE
    loose = any(tokens[k].text.lower() in NOT_UNITS for k in words)  # `1/3 of the students =`
    return Side(start, end, operators, frozenset(_units(tokens, unit_words, (start, end))), loose=loose)


def _right(read: ReadLine, eq: int, ceiling: int) -> tuple[Side, Side] | str | None:
    """The expression that starts after the `=` at token `eq`: all of it, and its first operand."""
    tokens = read.tokens
    start = i = eq + 1
    if i < ceiling and tokens[i].kind == "op" and tokens[i].symbol in "+-":
        i += 1
    if i >= ceiling:
        return None
    if tokens[i].kind in POISON:
        return UNREADABLE
    end = _operand_end(read, i, ceiling)
    if end is None:
        return None
    if end < ceiling and tokens[end].kind in POISON:
        return UNREADABLE
    first_end, operators, unit_words, first_units = end, 0, [], None
    while True:
        m, skipped = end, []
        while m < ceiling and tokens[m].kind == "word" and len(skipped) < MAX_UNIT_WORDS:
            skipped.append(m)
            m += 1
        if _scales(tokens, skipped):
            return UNREADABLE
        if first_units is None:
            first_units = list(skipped)
        if m < ceiling and tokens[m].kind == "op":
            n = m + 1
            if n < ceiling and tokens[n].kind == "op" and tokens[n].symbol in "+-":
                n += 1
            if n < ceiling and tokens[n].kind in POISON:
                return UNREADABLE
            operand_end = _operand_end(read, n, ceiling) if n < ceiling else None
            if operand_end is not None:
                if operand_end < ceiling and tokens[operand_end].kind in POISON:
                    return UNREADABLE
                unit_words += skipped
                end, operators = operand_end, operators + 1
                continue
        unit_words += skipped
        break
    full = Side(start, end, operators, frozenset(_units(tokens, unit_words, (start, end))))
    first = Side(start, first_end, 0, frozenset(_units(tokens, first_units or [], (start, first_end))))
    return full, first


# ---- values -----------------------------------------------------------------------------
def _values(read: ReadLine, side: Side) -> list[Fraction] | None:
    """The side's values: one, or two when it has a percent (as a hundredth, then as a number)."""
    tokens = read.tokens[side.start : side.end]
    if len(tokens) > MAX_EXPRESSION_TOKENS:
        return None
    percent = any(t.kind == "num" and t.percent for t in tokens)
    values = []
    for plain in (False, True) if percent else (False,):
        parts = []
        for token in tokens:
            if token.kind == "num":
                number = f"({token.value.numerator}/{token.value.denominator})"
                parts.append(number + ("%" if token.percent and not plain else ""))
            elif token.kind == "op":
                parts.append(token.symbol)
            elif token.kind in ("open", "close"):
                parts.append("(" if token.kind == "open" else ")")
            elif token.kind != "word":
                return None
        value = _value(" ".join(parts))
        if value is None:
            return None
        values.append(value)
    return values


def _value(text: str) -> Fraction | None:
    try:
        tree = parse(text)
        if variables(tree):
            return None
        value = evaluate_tree(tree)
    except (ExpressionError, ArithmeticError, ValueError, RecursionError):
        return None
    return value if isinstance(value, Fraction) else None


def _agrees(actual: Fraction, claimed: Fraction, claim: list[Token], left: list[Token], plain: bool) -> bool:
    """Whether `claimed` states `actual`, up to the rounding its digits and the left's allow."""
    if actual == claimed:
        return True
    difference = abs(actual - claimed)
    numbers = [t for t in claim if t.kind == "num"]
    signs = [t for t in claim if t.kind == "op"]
    if len(numbers) == 1 and not numbers[0].mixed and len(signs) <= 1 and claim[0].kind in ("num", "op"):
        places = numbers[0].places + (2 if numbers[0].percent and not plain else 0)
        if places and difference < Fraction(1, 10**places):
            return True  # rounded or cut to the places written
        whole = not places and (actual * 100).denominator != 1  # a value with no short decimal
        if whole and (difference <= Fraction(1, 2) or claimed == actual.__floor__()):
            return True  # rounded or cut to a whole number: 10 / 3 = 3, 20 / 3 = 7
    tolerance = sum(  # operands that were rounded: `0.33 * 300 = 100`
        (Fraction(1, 10**t.places) / abs(t.value) for t in left if t.kind == "num" and _rounded(t)),
        Fraction(0),
    )
    return bool(tolerance) and difference <= abs(claimed) * tolerance


def _rounded(token: Token) -> bool:
    """Whether a decimal may be a rounded simple fraction (`0.33`, `3.33`, `0.17`, `0.14`):
    within its last place of a p/q (q up to 12) that has no decimal of that length. An
    exact amount (`2.75`, `0.5`) is not."""
    if token.places < 2 or token.value is None:
        return False
    unit = Fraction(1, 10**token.places)
    for q in range(3, 13):
        near = Fraction(round(token.value * q), q)
        if near != token.value and abs(near - token.value) < unit and (near / unit).denominator != 1:
            return True
    return False


def _text(line: str, read: ReadLine, side: Side) -> str:
    """The side as the line writes it (with the `$` of a leading amount)."""
    tokens = read.tokens
    start = tokens[side.start].start
    if tokens[side.start].money and line[max(0, start - 2) : start].strip().endswith("$"):
        start = line.rindex("$", 0, start)
    return line[start : tokens[side.end - 1].end].strip()


@lru_cache(maxsize=4096)
def _computations(line: str) -> tuple[Computation, ...]:
    read = read_line(line)
    tokens = read.tokens
    equals = [i for i, t in enumerate(tokens) if t.kind == "eq"]
    found: list[Computation] = []
    for n, eq in enumerate(equals[: MAX_LINE_NUMBERS * 2]):
        if len(found) >= MAX_LINE_NUMBERS:
            break
        floor = equals[n - 1] + 1 if n else 0
        ceiling = equals[n + 1] if n + 1 < len(equals) else len(tokens)
        left, right = _left(read, eq, floor), _right(read, eq, ceiling)
        if left is None or right is None or right == UNREADABLE:
            continue
        full, first = right
        full_values, first_values = _values(read, full), _values(read, first)
        if full_values is None or first_values is None:
            continue
        chain = full.end == ceiling and ceiling < len(tokens)
        if left == UNREADABLE:
            if full.operators:
                found.append(_computation(line, read, full, full, full_values, None, full_values[-1], True))
            continue
        if not (_computes(read, left) or _computes(read, full)):
            continue  # `600 cents = $6`: not a computation
        left_values = _values(read, left)
        if left_values is None:  # undefined (`3 / 0`) or too long: not judged
            found.append(_computation(line, read, left, full, full_values, None, full_values[-1], True))
            continue
        match = _agreeing(read, left, left_values, ((full, full_values), (first, first_values)))
        if match is not None:
            side, values, claimed, actual = match
            found.append(_computation(line, read, left, side, values, actual, claimed, True))
            continue
        claim = full if (chain or full.operators == 0 or first.end == full.end) else first
        values = full_values if claim is full else first_values
        converted = bool(left.units and claim.units and not left.units & claim.units) and _conversion(
            left_values[0], values[-1]
        )
        unsure = left.loose or converted
        actual = None if unsure else left_values[0]
        found.append(_computation(line, read, left, claim, values, actual, values[-1], right=unsure))
    return tuple(found)


CONVERSIONS = frozenset(
    Fraction(n) for n in (7, 10, 12, 16, 24, 30, 36, 52, 60, 100, 365, 1000, 1760, 3600, 5280)
)


def _conversion(actual: Fraction, claimed: Fraction) -> bool:
    """Whether two values differ by a unit conversion (`50 cents * 4 = $2`: 100)."""
    if not actual or not claimed:
        return False
    ratio = abs(actual / claimed)
    return ratio in CONVERSIONS or (1 / ratio) in CONVERSIONS


def _computes(read: ReadLine, side: Side) -> bool:
    """Whether a side has an operator (a sign in front aside): `2/4`, `\\frac{2}{4}`, `3 * 4`."""
    return any(t.kind == "op" for t in read.tokens[side.start + 1 : side.end])


def _agreeing(
    read: ReadLine, left: Side, left_values: list[Fraction], claims: tuple[tuple[Side, list[Fraction]], ...]
) -> tuple[Side, list[Fraction], Fraction, Fraction] | None:
    """The first reading in which the claim states the left's value: (claim, its values,
    the claimed value, the left's value), or None."""
    left_tokens = read.tokens[left.start : left.end]
    for side, values in claims:
        claim_tokens = read.tokens[side.start : side.end]
        for k, claimed in enumerate(values):
            for actual in left_values:
                if _agrees(actual, claimed, claim_tokens, left_tokens, plain=k == 1):
                    return side, values, claimed, actual
    return None


def _computation(
    line: str,
    read: ReadLine,
    left: Side,
    claim: Side,
    values: list[Fraction],
    actual: Fraction | None,
    claimed: Fraction,
    right: bool,
) -> Computation:
    """`values` are the claim's readings; a percent claim that agrees with nothing is read
    as the number written (`70%` is 70)."""
    tokens = read.tokens
    claim_tokens = tokens[claim.start : claim.end]
    left_tokens = tokens[left.start : left.end]
    return Computation(
        expression=_text(line, read, left),
        claimed=claimed,
        actual=actual,
        right=right,
        readings=tuple(dict.fromkeys(values)),
        claim_span=(claim_tokens[0].start, claim_tokens[-1].end),
        operands=tuple((t.start, t.end, t.value) for t in left_tokens if t.kind == "num"),
        operators=tuple((t.start, t.end, t.symbol) for t in left_tokens if t.kind == "op"),
        single_claim=claim.operators == 0
        or [t.symbol or t.kind for t in claim_tokens] == ["num", "/", "num"],
    )


def computations(line: str) -> list[Computation]:
    """Every `=` link of a line that computes something (`3 * 12 = 36`, each link of
    `30 - 8 * 3 = 30 - 24 = 6`), with its value and whether it holds."""
    return list(_computations(line))


def evaluate(expression: str) -> Fraction | None:
    """The exact value of plain arithmetic (`+ - * / ^ ( )`, `x`, `×`, `÷`, `$`, `,`, `%`),
    or None when it is anything else, undefined, or longer than `MAX_EXPRESSION_TOKENS`."""
    read = read_line(expression)
    if not read.tokens or any(t.kind not in ("num", "op", "open", "close") for t in read.tokens):
        return None
    values = _values(read, Side(0, len(read.tokens), 0, frozenset()))
    return values[0] if values else None


def stated_numbers(line: str) -> list[Fraction]:
    """The numbers a line states, as written (`25%` is 25)."""
    return [t.value for t in number_tokens(line)]
