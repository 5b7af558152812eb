"""Final answers of math solutions: extraction, and equivalence in a closed grammar.

`extract_answer(text)` finds a solution's final answer: the last of "The answer is ...",
`\\boxed{...}` and `#### n` (whichever comes last in the text), else (unless
`fallback_last_number=False`) the last number. `answers_match(predicted, gold)` says
whether two answers are the same value: it normalises both (commas, currency, units,
LaTeX wrappers, `\\dfrac`...), compares numbers exactly as fractions (a percent matches
both its number and its hundredth: `50%` = `0.5` = `50`; a decimal with 3 or more places
matches the value it rounds: `0.333` = `1/3`), and reads anything else (`\\sqrt{2}/2`,
`2\\pi`, `x^2+1`) with `envs.math.expressions`, a closed grammar evaluated with bounded
arithmetic: answer text never reaches `eval` or a general-purpose parser.

Answers are client text: every pattern here runs in linear time, texts longer than
`MAX_TEXT_LENGTH` are read from their last `MAX_TEXT_LENGTH` characters, and answers
longer than `MAX_SYMBOLIC_LENGTH` are compared as text only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from envs.math.expressions import equivalent

DEFAULT_TIMEOUT = 2.0  # seconds one symbolic check may take
MAX_SYMBOLIC_LENGTH = 400  # longer answers are compared as text only
MAX_TEXT_LENGTH = 32_768  # a longer solution is read from its end (where its answer is)
MAX_NUMBER_LENGTH = 120  # a longer answer is not one number (with its unit)

_ANSWER_IS = re.compile(r"\b(?:the\s+)?(?:final\s+)?answer\s+is\s*:?[ \t]*([^\n]*)", re.IGNORECASE)
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


# ---- extraction -----------------------------------------------------------------------
def extract_answer(text: str, fallback_last_number: bool = True) -> str | None:
    """The final answer of a solution, as written (None if there is none)."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text[-MAX_TEXT_LENGTH:]
    found: list[tuple[int, str]] = []
    phrase = _last_match(_ANSWER_IS, text)
    if phrase is not None:
        found.append((phrase.start(), _first_sentence(phrase.group(1))))
    boxed = last_boxed(text)
    if boxed is not None:
        found.append(boxed)
    hashes = _last_match(_HASHES, text)
    if hashes is not None:
        found.append((hashes.start(), hashes.group(1)))
    for _, answer in sorted(found, reverse=True):
        answer = answer.strip()
        if answer:
            return answer
    if fallback_last_number:
        number = _last_match(_NUMBER, text)
        if number is not None:
            return number.group(0)
    return None


def last_boxed(text: str) -> tuple[int, str] | None:
    """(position, content) of the last `\\boxed{...}` (or `\\fbox{...}`, `\\boxed 5`)."""
    match = _last_match(_BOXED, text)
    if match is None:
        return None
    start = match.end()
    if start < len(text) and text[start] == "{":
        content = braced_group(text, start)
        return (match.start(), content) if content is not None else None
    rest = re.match(r"[^\s$]+", text[start:])
    return (match.start(), rest.group(0)) if rest else None


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


def _last_match(pattern: re.Pattern, text: str) -> re.Match | None:
    last = None
    for last in pattern.finditer(text):  # noqa: B007 (the loop keeps the last match)
        pass
    return last


def _first_sentence(text: str) -> str:
    """'42. Hope that helps.' -> '42' (a decimal point is not a sentence end)."""
    end = _SENTENCE_END.search(text)
    return text[: end.start()] if end else text


# ---- normalisation --------------------------------------------------------------------
_TEXT_COMMANDS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;:! ]|\\(?:left|right|displaystyle)\b|\\q?quad\b")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?|°|\\degree\b")
_ASSIGNMENT = re.compile(r"^[a-zA-Z]\s*=\s*(?=\S)")
_CURRENCY = re.compile(r"\\\$|\$|€|£|\busd\b|\beur\b|\bdollars?\b|\beuros?\b", re.IGNORECASE)


def normalize_answer(answer: str) -> str:
    """An answer with its wrappers, currency signs and spacing commands removed."""
    text = answer.strip()
    for _ in range(3):  # wrappers nest: $\boxed{\text{5 cm}}$
        text = text.strip().strip("*`").strip()
        text = re.sub(r"^\\\(|\\\)$|^\\\[|\\\]$", "", text).strip()
        if len(text) > 1 and text.startswith("$") and text.endswith("$") and text.count("$") == 2:
            text = text[1:-1]
        boxed = last_boxed(text)
        if boxed is not None and boxed[0] == 0:
            text = boxed[1]
        text = _TEXT_COMMANDS.sub(r" \1", text)
    text = _SPACING.sub("", text)
    text = _DEGREES.sub("", text)
    text = text.replace("\\%", "%").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _CURRENCY.sub("", text)
    text = _ASSIGNMENT.sub("", text.strip())
    text = text.strip().rstrip(".").strip()
    return " ".join(text.split())


def _compact(text: str) -> str:
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
_MIXED = re.compile(r"^(\d+)\s+(\d+)\s*/\s*(\d+)$")
_LATEX_FRAC = re.compile(r"^([+-]?)\\frac\s*(?:\{\s*(\d+)\s*\}|(\d))\s*(?:\{\s*(\d+)\s*\}|(\d))$")
# The number stops at its first letter (bar `\frac`) or space, so the unit's start is unambiguous:
# a lazy number part here made the match quadratic in the answer's length.
_WITH_UNIT = re.compile(
    r"^((?:\\frac|[^\s\\a-zA-Z])+)\s*([a-zA-Z]+(?:\^?\d|\.)?(?:[\s/]+[a-zA-Z]+(?:\^?\d|\.)?)*)$"
)


def parse_number(answer: str) -> ParsedNumber | None:
    """The number an (already normalised) answer states, or None if it is not one number.

    Reads `1,234.5`, `-3`, `.5`, `3/4`, `\\frac{3}{4}`, `\\frac34`, `2 1/2` (mixed), `50%`,
    `50 percent`, and a number followed by unit words (`36 pencils`, `5 cm`, `12 m^2`).
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
    for pattern in (_SLASH, _LATEX_FRAC):
        match = pattern.match(text)
        if match is None:
            continue
        if pattern is _SLASH:
            numerator, denominator = int(match.group(1)), int(match.group(2))
        else:
            sign = -1 if match.group(1) == "-" else 1
            numerator = sign * int(match.group(2) or match.group(3))
            denominator = int(match.group(4) or match.group(5))
        return ParsedNumber(Fraction(numerator, denominator)) if denominator else None
    mixed = _MIXED.match(text)
    if mixed is not None and int(mixed.group(3)):
        whole, numerator, denominator = (int(g) for g in mixed.groups())
        return ParsedNumber(whole + Fraction(numerator, denominator))
    return None


def numbers_match(a: ParsedNumber, b: ParsedNumber) -> bool:
    """Equal values; a percent may stand for its hundredth; a decimal of 3+ places for what it rounds."""
    candidates_a = {a.value} | ({a.value / 100} if a.percent else set())
    candidates_b = {b.value} | ({b.value / 100} if b.percent else set())
    if candidates_a & candidates_b:
        return True
    places = [n.decimals for n in (a, b) if n.decimals is not None and n.decimals >= 3]
    if not places:
        return False
    tolerance = Fraction(1, 2 * 10 ** min(places))
    return any(abs(x - y) <= tolerance for x in candidates_a for y in candidates_b)


# ---- equivalence ----------------------------------------------------------------------
def answers_match(predicted: str | None, gold: str | None, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether `predicted` states the same answer as `gold` (see the module docstring)."""
    if predicted is None or gold is None:
        return False
    p, g = normalize_answer(str(predicted)), normalize_answer(str(gold))
    if not p or not g:
        return False
    if _compact(p) == _compact(g):
        return True
    p_items, g_items = split_top_level(_THOUSANDS.sub("", p)), split_top_level(_THOUSANDS.sub("", g))
    if len(p_items) > 1 or len(g_items) > 1:
        return (
            len(p_items) == len(g_items)
            and _brackets(p) == _brackets(g)
            and all(answers_match(x, y, timeout) for x, y in zip(p_items, g_items))
        )
    p_number, g_number = parse_number(p), parse_number(g)
    if p_number is not None and g_number is not None:
        return numbers_match(p_number, g_number)
    if len(p) > MAX_SYMBOLIC_LENGTH or len(g) > MAX_SYMBOLIC_LENGTH:
        return False
    return symbolic_match(p, g, timeout)


def split_top_level(text: str) -> list[str]:
    """'(1, 2)' -> ['1', '2']: comma-separated items outside any brackets (a thousands
    comma, as in 1,234, is not a separator)."""
    inner = text
    if len(text) > 1 and text[0] in "([{" and text[-1] in ")]}":
        inner = text[1:-1]
    elif text.startswith("\\{") and text.endswith("\\}"):
        inner = text[2:-2]
    if _PLAIN.match(inner.strip()):
        return [text]
    items, depth, current = [], 0, []
    for char in inner:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return items if len(items) > 1 and all(items) else [text]


def _brackets(text: str) -> str:
    return (text[:1] + text[-1:]) if text[:1] in "([{" else ""


def symbolic_match(a: str, b: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether two expressions have the same value, read by the closed grammar of
    `envs.math.expressions` (never `eval` or a general parser), within `timeout` seconds."""
    return equivalent(a, b, timeout)
