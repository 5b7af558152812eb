"""Numbers as text, the one way every env family writes them (see docs/architecture.md)."""

from __future__ import annotations

from fractions import Fraction

MAX_EXACT_PLACES = 12  # a Fraction whose finite decimal is longer is written as `p/q`


def format_number(value: int | float | Fraction, decimals: int = 10) -> str:
    """`value` as short plain text: `3`, `2.5`, `0.000741`; no trailing zeros, no `-0`.

    An int is written whole. A float is rounded to `decimals` places first (charts show 2).
    A Fraction is exact: its finite decimal when one of at most 12 places exists, else `7/3`.
    """
    if isinstance(value, Fraction):
        return _exact_decimal(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = f"{round(float(value), decimals):.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _exact_decimal(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator == 1:
        places = 0
        while (value * 10**places).denominator != 1:
            places += 1
        if places <= MAX_EXACT_PLACES:
            return f"{float(value):.{places}f}"
    return f"{value.numerator}/{value.denominator}"
