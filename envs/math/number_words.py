"""Numbers a text writes in words: `word_numbers("three dozen eggs, half of them")`.

Word problems state many of their numbers in words ("twice", "half", "a dozen", "three",
"twenty-five", "two thirds", "one and a half"). A critic that asks whether a solution's
number is explained by the question must count them. `word_numbers` returns every value
such words may stand for: each word's own value (`half` is 1/2 and 2, `third` 1/3 and 3),
and the values of the phrases they build (`twenty-five` 25, `two thousand five hundred`
2500, `three dozen` 36, `two thirds` 2/3, `one and a half` 3/2, `twenty percent` 1/5).
"""

from __future__ import annotations

import re
from fractions import Fraction

MAX_TEXT_LENGTH = 20_000  # characters of a text that are read

UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}  # fmt: skip
SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
MULTIPLES = {
    "twice": 2, "double": 2, "doubled": 2, "doubles": 2, "pair": 2, "pairs": 2, "couple": 2, "triple": 3,
    "tripled": 3, "triples": 3, "thrice": 3, "quadruple": 4, "quadrupled": 4, "dozen": 12, "dozens": 12,
}  # fmt: skip
ORDINALS = {  # the denominator a fraction word names
    "half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4, "fourth": 4, "fourths": 4,
    "fifth": 5, "fifths": 5, "sixth": 6, "sixths": 6, "seventh": 7, "sevenths": 7, "eighth": 8, "eighths": 8,
    "ninth": 9, "ninths": 9, "tenth": 10, "tenths": 10, "hundredth": 100, "hundredths": 100,
}  # fmt: skip
_WORD = re.compile(r"[a-z]+")


def word_numbers(text: str) -> set[Fraction]:
    """Every value the number words of `text` (its first `MAX_TEXT_LENGTH` characters) may stand for."""
    words = _WORD.findall(text[:MAX_TEXT_LENGTH].lower())
    found: set[Fraction] = set()
    i = 0
    while i < len(words):
        word = words[i]
        if word in MULTIPLES:
            found.add(Fraction(MULTIPLES[word]))
        if word in ORDINALS:
            found.update({Fraction(1, ORDINALS[word]), Fraction(ORDINALS[word])})
        if word in UNITS or word in TENS or (word in SCALES and i > 0 and words[i - 1] == "a"):
            value, i = _cardinal(words, i)
            found.update(_phrase_values(words, i, value))
            continue
        i += 1
    return found


def _cardinal(words: list[str], i: int) -> tuple[int, int]:
    """The cardinal starting at words[i] ("twenty five", "two thousand five hundred", "a hundred"),
    and the index after it."""
    total, current = 0, 0
    while i < len(words):
        word = words[i]
        if word in UNITS:
            current += UNITS[word]
        elif word in TENS:
            current += TENS[word]
        elif word in SCALES:
            scale = SCALES[word]
            if scale == 100:
                current = (current or 1) * 100
            else:
                total += (current or 1) * scale
                current = 0
        elif word == "and" and i + 1 < len(words) and (words[i + 1] in UNITS or words[i + 1] in TENS):
            pass  # "one hundred and five"
        else:
            break
        i += 1
    return total + current, i


def _phrase_values(words: list[str], i: int, value: int) -> set[Fraction]:
    """`value` and what the words after it make of it: a fraction, a multiple, a half more, a percent."""
    values = {Fraction(value)}
    following = words[i] if i < len(words) else ""
    if following in ORDINALS and value:
        values.update({Fraction(value, ORDINALS[following]), Fraction(ORDINALS[following])})
    elif following in MULTIPLES and MULTIPLES[following] > 2:
        values.add(Fraction(value * MULTIPLES[following]))
    elif following in ("percent", "per"):
        values.add(Fraction(value, 100))
    elif words[i : i + 3] in (["and", "a", "half"], ["and", "one", "half"]):
        values.add(value + Fraction(1, 2))
    elif words[i : i + 3] in (["and", "a", "quarter"],):
        values.add(value + Fraction(1, 4))
    return values
