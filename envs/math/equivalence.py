"""Whether two final answers are the same, by the project's own rules (the fast path).

`decide(answer, gold, deadline)` compares two answers normalised by
`envs.math.answer_text.normalize_answer` and says True, False, or None when these rules cannot tell
(a text outside the closed grammar of `envs.math.expressions`, e.g. `\\binom{5}{2}`): the caller
then asks math-verify (`envs.math.verify`). What the rules read:

- numbers, exactly as fractions: `1,234.5`, `10{,}000`, `.5`, `3/4`, `\\frac34`, mixed numbers
  (`2 1/2`, `1\\frac{4}{5}` = 9/5), percents (`50%` = `0.5` = `50`), a number with unit words
  (`5 cm`); a decimal of 3 or more places matches the value it rounds (`0.333` = `1/3`);
- lists: a bare list (`1, 2, 3`) and a set (`\\{1, 2\\}`) are unordered (MATH asks "enter all
  solutions, separated by commas"), `a \\pm b` is the list `a+b, a-b`; a tuple `(1, 2)` or `[1, 2]`
  is ordered and keeps its brackets;
- intervals and their unions (`(-\\infty, 3] \\cup (5, \\infty)`), in any order, open and closed
  ends distinct; `\\mathbb{R}` is `(-\\infty, \\infty)`;
- matrices (`pmatrix`, `bmatrix`, `matrix`, `array`; `vmatrix` apart), entry by entry, whatever
  the spacing around `\\\\` and `&`;
- numerals with a base subscript: `4210_5` = `4210_{5}` = `4210` (the digits asked for), never
  `4210_6`;
- words compare as words (`Monday` is not the anagram `Dynamo`), anything else as an
  expression in the closed grammar (`\\sqrt{2}/2` = `\\frac{\\sqrt2}{2}`).

Every pattern runs in linear time on texts already capped by the caller; lists hold at most
`MAX_ITEMS` items, matrices `MAX_ITEMS` entries.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from envs.math.answer_text import (
    ParsedNumber,
    compact,
    normalize_answer,
    numbers_match,
    parse_number,
    value_candidates,
)
from envs.math.expressions import OutsideGrammar, compare, parse

MAX_SYMBOLIC_LENGTH = 400  # a longer answer is compared as text only
MAX_ITEMS = 32  # items of a list, intervals of a union, entries of a matrix
MAX_DEPTH = 4  # lists of intervals of matrices...: how deep a comparison goes

Verdict = bool | None


# ---- the decision ---------------------------------------------------------------------
def decide(answer: str, gold: str, deadline: float, depth: int = 0) -> Verdict:
    """Whether two normalised answers are the same: True, False, or None when these rules
    cannot tell (see the module). `deadline` is a `time.monotonic()` time; past it, None."""
    if compact(answer) == compact(gold):
        return True
    if depth > MAX_DEPTH or time.monotonic() > deadline:
        return None
    numbers = parse_number(answer), parse_number(gold)
    if None not in numbers:  # the common case, first
        return numbers_match(*numbers)
    matrices = _matrix(answer), _matrix(gold)
    if matrices != (None, None):
        if None in matrices:
            return None
        return _same_matrices(*matrices, deadline, depth)
    unions = _intervals(answer), _intervals(gold)
    if unions != (None, None):
        return _same_unions(answer, gold, *unions, deadline, depth)
    lists = _collection(answer), _collection(gold)
    if lists != (None, None):
        return _same_collections(answer, gold, *lists, deadline, depth)
    if _BASED.match(answer) or _BASED.match(gold):
        return _same_numerals(_based(answer), _based(gold))
    return _same_value(answer, gold, numbers, deadline)


def _all(verdicts: list[Verdict]) -> Verdict:
    """False if any is False, else None if any is None, else True."""
    if False in verdicts:
        return False
    return None if None in verdicts else True


# ---- values -----------------------------------------------------------------------------
_WORDS = re.compile(r"[A-Za-z][A-Za-z .'-]*")
_WORD = re.compile(r"[A-Za-z]{3,}")
_MATH_WORDS = frozenset({"sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "sqrt"})


def _same_value(
    answer: str, gold: str, numbers: tuple[ParsedNumber | None, ParsedNumber | None], deadline: float
) -> Verdict:
    """Words as words; else, with the number of a side that is one, as expressions of the grammar."""
    if _is_words(answer) and _is_words(gold):  # letters read as a product of variables make anagrams equal
        return False
    if len(answer) > MAX_SYMBOLIC_LENGTH or len(gold) > MAX_SYMBOLIC_LENGTH:
        return False
    texts = [[answer], [gold]]
    for side, number in enumerate(numbers):  # `5 cm` against `\frac{10}{2}`: the number is read
        if number is not None:
            texts[side] = [_fraction_text(value) for value in value_candidates(number)]
    verdicts = [compare(a, g, max(0.0, deadline - time.monotonic())) for a in texts[0] for g in texts[1]]
    if True in verdicts:
        return True
    return None if None in verdicts else False


def _fraction_text(value: Fraction) -> str:
    return f"({value.numerator}/{value.denominator})"


def _is_words(text: str) -> bool:
    return bool(_WORDS.fullmatch(text)) and any(w.lower() not in _MATH_WORDS for w in _WORD.findall(text))


# ---- numerals in a base -----------------------------------------------------------------
_BASED = re.compile(r"^([0-9A-Za-z]{1,64})\s*_\s*\{?\s*\(?(\d{1,2})\)?\s*\}?$")
_NUMERAL = re.compile(r"^[0-9A-Za-z]{1,64}$")


def _based(text: str) -> tuple[str, str | None] | None:
    """(digits, base) of `4210_5`; (digits, None) of bare digits; None otherwise."""
    match = _BASED.match(text)
    if match is not None:
        return match.group(1).upper(), match.group(2)
    return (text.upper(), None) if _NUMERAL.match(text) else None


def _same_numerals(a: tuple[str, str | None] | None, b: tuple[str, str | None] | None) -> Verdict:
    """`4210_5` against `4210_{5}` or the bare digits `4210`; other digits or another base differ."""
    if a is None or b is None:
        return False  # one side is not a numeral at all (the bare digits were read by _based)
    if a[0].lstrip("0") != b[0].lstrip("0"):
        return False
    return a[1] is None or b[1] is None or int(a[1]) == int(b[1])


# ---- lists, sets, tuples ------------------------------------------------------------------
_PLUS_MINUS = re.compile(r"\\pm(?![a-zA-Z])|\\mp(?![a-zA-Z])|±|∓")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_AND_OR = re.compile(r"(?<!\s)(?:,\s*|\s+)(?:and|or)\s+", re.IGNORECASE)  # from a run's start: linear


@dataclass(frozen=True)
class _Collection:
    kind: str  # "set" (bare lists, \{...\}, a ± pair: unordered), "(" or "[" (tuples: ordered)
    items: tuple[str, ...]


def _collection(text: str) -> _Collection | None:
    """A list, set or tuple, or None for a single value (`(5)` is a value, not a tuple)."""
    if text.startswith("\\{") and text.endswith("\\}"):
        kind, inner = "set", text[2:-2]
    elif len(text) > 1 and text[0] + text[-1] in ("()", "[]") and _closes_at_end(text):
        kind, inner = text[0], text[1:-1]
    else:
        kind, inner = "set", text
    if kind == "set":  # "2 or 3", "1, 2, and 3"
        inner = _AND_OR.sub(",", inner)
    parts = split_top_level(_THOUSANDS.sub("", inner))
    if kind == "set":
        expanded: list[str] = []
        for part in parts:
            expanded.extend(_expand_plus_minus(part))
        parts = expanded
    if len(parts) > MAX_ITEMS or (len(parts) < 2 and not text.startswith("\\{")):
        return None
    return _Collection(kind, tuple(parts))


def _closes_at_end(text: str) -> bool:
    """Whether the bracket opening `text` is the one closing it (not `(1)(2)`)."""
    depth = 0
    for i, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth == 0:
            return i == len(text) - 1
    return False


def _expand_plus_minus(text: str) -> list[str]:
    """`1 \\pm \\sqrt{2}` -> [`1 + \\sqrt{2}`, `1 - \\sqrt{2}`] (two signs at most)."""
    pieces = _PLUS_MINUS.split(text)
    if len(pieces) == 1 or len(pieces) > 3:
        return [text]
    results = [pieces[0]]
    for piece in pieces[1:]:
        results = [r + sign + piece for r in results for sign in ("+", "-")]
    return [r.strip() for r in results]


def split_top_level(text: str) -> list[str]:
    """'1, (2, 3), 4' -> ['1', '(2, 3)', '4']: comma-separated items outside any brackets."""
    items, depth, current = [], 0, []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and text[i + 1 : i + 2] in ("{", "}"):  # \{ and \} bracket like { and }
            current.append(text[i : i + 2])
            depth += 1 if text[i + 1] == "{" else -1
            i += 2
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    items.append("".join(current).strip())
    return items if all(items) else [text]


def _same_collections(
    answer: str, gold: str, a: _Collection | None, b: _Collection | None, deadline: float, depth: int
) -> Verdict:
    if a is None or b is None:
        single = answer if a is None else gold
        if "\\" in single and not _in_grammar(single):
            return None  # another notation of the list (math-verify may read it)
        other = b if a is None else a
        items = split_top_level(single)  # `100,200` against `100, 200`: thousands or a list
        read = _Collection("set", tuple(items) if len(items) == len(other.items) else (single,))
        a, b = a or read, b or read
    if a.kind != b.kind or len(a.items) != len(b.items):
        return False
    if a.kind != "set":
        return _all(
            [
                decide(normalize_answer(x), normalize_answer(y), deadline, depth + 1)
                for x, y in zip(a.items, b.items)
            ]
        )
    return _same_unordered(
        a.items, b.items, lambda x, y: decide(normalize_answer(x), normalize_answer(y), deadline, depth + 1)
    )


def _same_unordered(a: tuple, b: tuple, same: Callable[[object, object], Verdict]) -> Verdict:
    """Whether some pairing of `a` with `b` matches every item (True), none can (False), or unsure."""
    if len(a) != len(b):
        return False
    in_order = [same(x, y) for x, y in zip(a, b)]
    if all(v is True for v in in_order):
        return True
    table = [[same(x, y) for y in b] for x in a]
    if _perfect_matching(table, lambda v: v is True):
        return True
    if not _perfect_matching(table, lambda v: v is not False):
        return False
    return None


def _perfect_matching(table: list[list[Verdict]], usable: Callable[[Verdict], bool]) -> bool:
    """Whether each row can take its own column through usable cells (augmenting paths)."""
    owner = [-1] * len(table)

    def augment(row: int, seen: list[bool]) -> bool:
        for column, verdict in enumerate(table[row]):
            if usable(verdict) and not seen[column]:
                seen[column] = True
                if owner[column] < 0 or augment(owner[column], seen):
                    owner[column] = row
                    return True
        return False

    return all(augment(row, [False] * len(table)) for row in range(len(table)))


def _in_grammar(text: str) -> bool:
    try:
        parse(text)
    except OutsideGrammar:
        return False
    except ValueError:
        return True
    return True


# ---- intervals --------------------------------------------------------------------------
_UNION = re.compile(r"\\cup(?![a-zA-Z])|∪")
_INFINITY = re.compile(r"^([+-]?)\s*(?:\\infty|infty|inf|oo)$")
_REALS = re.compile(r"^(?:\\mathbb\s*\{?\s*R\s*\}?|ℝ|\\R|all real numbers|all reals)$", re.IGNORECASE)


@dataclass(frozen=True)
class _Interval:
    left: str  # "(" or "["
    low: str
    high: str
    right: str  # ")" or "]"


def _intervals(text: str) -> tuple[_Interval, ...] | None:
    """A union of intervals, or None. A lone `(a, b)` or `[a, b]` is read as a tuple instead
    (the comparison reads it back as an interval against intervals)."""
    if _REALS.match(text):
        return (_Interval("(", "-\\infty", "\\infty", ")"),)
    parts = _UNION.split(text)
    if len(parts) > MAX_ITEMS:
        return None
    intervals = [_interval(part.strip()) for part in parts]
    if None in intervals:
        return None
    if len(intervals) == 1:
        only = intervals[0]
        if only.left + only.right in ("()", "[]") and not (_infinite(only.low) or _infinite(only.high)):
            return None
    return tuple(intervals)


def _interval(text: str) -> _Interval | None:
    if len(text) < 5 or text[0] not in "([" or text[-1] not in ")]" or not _closes_at_end(text):
        return None
    ends = split_top_level(text[1:-1])
    if len(ends) != 2:
        return None
    return _Interval(text[0], ends[0], ends[1], text[-1])


def _infinite(end: str) -> str | None:
    match = _INFINITY.match(end.strip())
    return None if match is None else ("-" if match.group(1) == "-" else "+")


def _same_unions(
    answer: str,
    gold: str,
    a: tuple[_Interval, ...] | None,
    b: tuple[_Interval, ...] | None,
    deadline: float,
    depth: int,
) -> Verdict:
    if a is None or b is None:  # a pair against intervals: read the pair as an interval
        single = _interval(answer if a is None else gold)
        if single is None:
            return None  # `x \ge 3` against `[3, \infty)`: math-verify reads relations
        a, b = a or (single,), b or (single,)

    def same(x: _Interval, y: _Interval) -> Verdict:
        if (x.left, x.right) != (y.left, y.right):
            return False
        return _all([_same_end(x.low, y.low, deadline, depth), _same_end(x.high, y.high, deadline, depth)])

    return _same_unordered(a, b, same)


def _same_end(a: str, b: str, deadline: float, depth: int) -> Verdict:
    infinite = _infinite(a), _infinite(b)
    if infinite != (None, None):
        return infinite[0] == infinite[1]
    return decide(normalize_answer(a), normalize_answer(b), deadline, depth + 1)


# ---- matrices ---------------------------------------------------------------------------
_MATRIX = re.compile(r"^\\begin\{([pbBvV]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}$", re.DOTALL)


def _matrix(text: str) -> tuple[str, tuple[tuple[str, ...], ...]] | None:
    """(kind, rows of entries) of a matrix environment: `vmatrix` (a determinant) is its own kind."""
    match = _MATRIX.match(text)
    if match is None:
        return None
    rows = [row.strip() for row in match.group(2).split("\\\\")]
    while rows and not rows[-1]:
        rows.pop()
    entries = tuple(tuple(entry.strip() for entry in row.split("&")) for row in rows)
    if not entries or sum(len(row) for row in entries) > MAX_ITEMS:
        return None
    kind = "determinant" if match.group(1) in ("vmatrix", "Vmatrix") else "matrix"
    return kind, entries


def _same_matrices(
    a: tuple[str, tuple[tuple[str, ...], ...]],
    b: tuple[str, tuple[tuple[str, ...], ...]],
    deadline: float,
    depth: int,
) -> Verdict:
    (kind_a, rows_a), (kind_b, rows_b) = a, b
    if kind_a != kind_b or [len(row) for row in rows_a] != [len(row) for row in rows_b]:
        return False
    return _all(
        [
            decide(normalize_answer(x), normalize_answer(y), deadline, depth + 1)
            for row_a, row_b in zip(rows_a, rows_b)
            for x, y in zip(row_a, row_b)
        ]
    )
