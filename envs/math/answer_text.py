"""An answer's text read: wrappers stripped, and the one number it states, exactly.

`normalize_answer(text)` strips an answer's wrappers (`$...$`, `\\boxed{}`, `\\text{}`,
`\\left( \\right)`, spacing commands but not a matrix's `\\\\`, `^\\circ`, currency,
`x =`, `10{,}000` and `1,\\!000` to `10,000`). `parse_number(text)` reads the number a normalised
answer states, exactly as a fraction: `1,234.5`, `.5`, `3/4`, `\\frac34`, mixed numbers (`2 1/2`,
`1\\frac{4}{5}` = 9/5), percents, a number with unit words (`5 cm`). `numbers_match` compares
two: a percent matches both its number and its hundredth (`50%` = `0.5` = `50`), a decimal of 3 or
more places the value it rounds (`0.333` = `1/3`). Every pattern runs in linear time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

MAX_NUMBER_LENGTH = 120  # a longer answer is not one number (with its unit)


# ---- normalisation --------------------------------------------------------------------
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_DELIMITERS = re.compile(r"^\\\(|\\\)$|^\\\[|\\\]$")
_TEXT_COMMANDS = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
# `\\` (a matrix row break) is kept as it is: only the spacing commands go.
_SPACING = re.compile(
    r"\\\\|\\[,;:! ]|\\(?:left|right|displaystyle|textstyle|[bB]igg?[lr]?)(?![a-zA-Z])|\\q?quad(?![a-zA-Z])|~"
)
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|°|\\degrees?(?![a-zA-Z])")
_ASSIGNMENT = re.compile(
    r"^(?:[a-zA-Z](?:_\{?\w{1,3}\}?)?|\\[a-zA-Z]{2,8})\s*(?:=|\\in(?![a-zA-Z]))\s*(?=\S)"
)
_CURRENCY = re.compile(r"\\\$|\$|€|£|\busd\b|\beur\b|\bdollars?\b|\beuros?\b", re.IGNORECASE)
_EMPTY_SET = re.compile(r"\\varnothing(?![a-zA-Z])|∅|\\\{\s*\\\}")
_SPACED_THOUSANDS = re.compile(r"^-?\d{1,3}(?: \d{3})+(?:\.\d+)?$")


def normalize_answer(answer: str) -> str:
    """An answer with its wrappers, currency signs and spacing commands removed."""
    text = answer.strip()
    for _ in range(3):  # wrappers nest: $\boxed{\text{5 cm}}$
        before = text
        text = text.strip().strip("*`").strip()
        text = _DELIMITERS.sub("", text).strip()
        if len(text) > 1 and text.startswith("$") and text.endswith("$") and text.count("$") == 2:
            text = text[1:-1]
        boxed = _BOXED.match(text)
        if boxed is not None and text[boxed.end() : boxed.end() + 1] == "{":
            content = braced_group(text, boxed.end())
            text = content if content is not None else text
        text = _TEXT_COMMANDS.sub(r" \1", text)
        if text == before:
            break
    text = _SPACING.sub(_spacing, text)
    text = _DEGREES.sub("", text)
    text = text.replace("\\%", "%").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = text.replace("\\cfrac", "\\frac").replace("π", "\\pi ")
    text = text.replace("{,}", ",").replace("∞", "\\infty").replace("−", "-")
    text = _EMPTY_SET.sub(r"\\emptyset", text)
    text = _CURRENCY.sub("", text)
    text = _ASSIGNMENT.sub("", text.strip())
    text = " ".join(text.strip().rstrip(".").split())
    if _SPACED_THOUSANDS.match(text):  # 10 000
        text = text.replace(" ", "")
    return text


def _spacing(match: re.Match) -> str:
    """A row break stays; a thin space goes (`1,\\!000` is 1,000); a word space stays a space."""
    command = match.group(0)
    if command == "\\\\":
        return command
    return " " if command in ("\\ ", "~") or command.endswith("quad") else ""


def braced_group(text: str, start: int) -> str | None:
    """The content of the balanced `{...}` opening at `text[start]`, or None if unbalanced."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return None


def compact(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


# ---- numbers --------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedNumber:
    """A number read from an answer: its exact value, whether it was a percent, and how
    many decimal places it was written with (None for integers and fractions)."""

    value: Fraction
    percent: bool = False
    decimals: int | None = None


_PLAIN = re.compile(r"^([+-]?)(\d{1,3}(?:,\d{3})+|\d+|(?=\.\d))(?:\.(\d+))?$")
_SLASH = re.compile(r"^([+-]?\d+)\s*/\s*(\d+)$")
_MIXED = re.compile(r"^([+-]?)(\d+)\s+(\d+)\s*/\s*(\d+)$")
_FRAC = r"\\frac\s*(?:\{\s*(\d+)\s*\}|(\d))\s*(?:\{\s*(\d+)\s*\}|(\d))"
_LATEX_FRAC = re.compile(rf"^([+-]?){_FRAC}$")
_LATEX_MIXED = re.compile(rf"^([+-]?)(\d+)\s*{_FRAC}$")  # 1\frac{4}{5} is 9/5, not 1 times 4/5
# The number stops at its first letter (bar `\frac`) or space, so the unit's start is unambiguous:
# a lazy number part here made the match quadratic in the answer's length.
_WITH_UNIT = re.compile(
    r"^((?:\\frac|[^\s\\a-zA-Z])+)\s*([a-zA-Z]+(?:\^?\d|\.)?(?:[\s/]+[a-zA-Z]+(?:\^?\d|\.)?)*)$"
)


def parse_number(answer: str) -> ParsedNumber | None:
    """The number an (already normalised) answer states, or None if it is not one number.

    Reads `1,234.5`, `-3`, `.5`, `3/4`, `\\frac{3}{4}`, `\\frac34`, `2 1/2` and `2\\frac{1}{2}`
    (mixed), `50%`, `50 percent`, and a number followed by unit words (`36 pencils`, `5 cm`, `12 m^2`).
    """
    text = answer.strip()
    if len(text) > MAX_NUMBER_LENGTH:
        return None
    percent = False
    if text.endswith("%"):
        percent, text = True, text[:-1].strip()
    elif text.lower().endswith("percent"):
        percent, text = True, text[: -len("percent")].strip()
    number = _exact_number(text)
    if number is None:
        unit = _WITH_UNIT.match(text)
        if unit is not None and _is_unit(unit.group(2), spaced=text[len(unit.group(1)) :][:1].isspace()):
            number = _exact_number(unit.group(1))
    if number is None:
        return None
    return ParsedNumber(number.value, percent, number.decimals)


def _is_unit(unit: str, spaced: bool) -> bool:
    letters = sum(c.isalpha() for c in unit)
    return letters >= 2 or (letters == 1 and spaced)


def _exact_number(text: str) -> ParsedNumber | None:
    if len(text) > 100:
        return None
    plain = _PLAIN.match(text)
    if plain is not None:
        sign, whole, decimals = plain.groups()
        value = Fraction(int(whole.replace(",", "") or 0))
        if decimals:
            value += Fraction(int(decimals), 10 ** len(decimals))
        value = -value if sign == "-" else value
        return ParsedNumber(value, decimals=len(decimals) if decimals else None)
    slash = _SLASH.match(text)
    if slash is not None:
        numerator, denominator = int(slash.group(1)), int(slash.group(2))
        return ParsedNumber(Fraction(numerator, denominator)) if denominator else None
    frac = _LATEX_FRAC.match(text)
    if frac is not None:
        numerator, denominator = int(frac.group(2) or frac.group(3)), int(frac.group(4) or frac.group(5))
        sign = -1 if frac.group(1) == "-" else 1
        return ParsedNumber(sign * Fraction(numerator, denominator)) if denominator else None
    for pattern, groups in ((_MIXED, (2, 3, None, 4, None)), (_LATEX_MIXED, (2, 3, 4, 5, 6))):
        mixed = pattern.match(text)
        if mixed is None:
            continue
        whole = int(mixed.group(groups[0]))
        numerator = int(mixed.group(groups[1]) or mixed.group(groups[2] or groups[1]))
        denominator = int(mixed.group(groups[3]) or mixed.group(groups[4] or groups[3]))
        if not 0 < numerator < denominator:  # 2\frac{5}{3} is not a mixed number: a product
            return None
        value = whole + Fraction(numerator, denominator)
        return ParsedNumber(-value if mixed.group(1) == "-" else value)
    return None


def numbers_match(a: ParsedNumber, b: ParsedNumber) -> bool:
    """Equal values; a percent may stand for its hundredth; a decimal of 3+ places for what it rounds."""
    candidates_a, candidates_b = value_candidates(a), value_candidates(b)
    if candidates_a & candidates_b:
        return True
    places = [n.decimals for n in (a, b) if n.decimals is not None and n.decimals >= 3]
    if not places:
        return False
    tolerance = Fraction(1, 2 * 10 ** min(places))
    return any(abs(x - y) <= tolerance for x in candidates_a for y in candidates_b)


def value_candidates(number: ParsedNumber) -> set[Fraction]:
    """The values a number may stand for: itself, and its hundredth if it was a percent."""
    return {number.value} | ({number.value / 100} if number.percent else set())
