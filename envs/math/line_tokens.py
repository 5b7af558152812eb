"""A solution line as tokens: `read_line(line)` normalises it and cuts it into numbers, operators and words.

Pass 1 normalises: GSM8K calculator annotations (`<<48/2=24>>`) are dropped; unicode
operators and fractions (`×`, `÷`, `½`) and LaTeX (`\\frac{a}{b}`, `\\cdot`, `\\boxed{}`,
`10{,}000`) are rewritten as plain arithmetic, keeping where each character came from, so
every token's span is in the line as given. Pass 2 cuts tokens: numbers (`$1,200`, `.50`,
`25%`, `25 percent`, `2 1/2`), operators (also `x`, `times`, `plus`, `divided by` between
two numbers), brackets, `=`, words (units, `miles/day`), variables (`x`, `3a`), clock times
(`9:30`) and commands the reader cannot compute. `envs.math.arithmetic` reads the
computations from them. Lengths are capped: a line is client text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

MAX_LINE_LENGTH = 2000  # characters of a line that are read
MAX_NUMBER_LENGTH = 100  # characters of one number; longer ones are not read
MAX_LINE_TOKENS = 800  # tokens read from one line
MAX_NUMBERS = 100  # numbers `number_tokens` lists
MAX_UNIT_WORDS = 3  # words that may follow a number as its unit (`$5 per hour * 8`)
MAX_LATEX_PASSES = 8  # nesting of `\frac` and `\boxed` that is unwrapped


# ---- pass 1: normalising, with the origin of every character ------------------------------
Piece = str | int  # a literal, or a group of the match


def _rewrite(
    text: str, origin: list[int], pattern: re.Pattern, pieces: Callable[[re.Match], list[Piece]]
) -> tuple[str, list[int]]:
    """`pattern.sub` that keeps `origin` (each character's offset in the line) in step."""
    out: list[str] = []
    out_origin: list[int] = []
    last = 0
    for match in pattern.finditer(text):
        out.append(text[last : match.start()])
        out_origin.extend(origin[last : match.start()])
        seen_group = False
        for piece in pieces(match):
            if isinstance(piece, int):
                start, end = match.span(piece)
                if start >= 0:
                    out.append(text[start:end])
                    out_origin.extend(origin[start:end])
                seen_group = True
            elif piece:
                at = origin[match.end() - 1] if seen_group else origin[match.start()]
                out.append(piece)
                out_origin.extend([at] * len(piece))
        last = match.end()
    out.append(text[last:])
    out_origin.extend(origin[last:])
    return "".join(out), out_origin


def _literal(replacement: str) -> Callable[[re.Match], list[Piece]]:
    return lambda match: [replacement]


_ANNOTATION = re.compile(r"<<[^<>]*>>")  # GSM8K calculator annotations: the calculator's, not the text's
_FRAC = re.compile(r"\\[dtc]?frac\s*(?:\{([^{}]*)\}|(\d))\s*(?:\{([^{}]*)\}|(\d))")
_WRAPPER = re.compile(
    r"\\(?:boxed|fbox|text|textbf|textit|textrm|mathrm|mathbf|mbox|hbox|operatorname)\s*\{([^{}]*)\}"
)
_LATEX_LITERALS = [
    (re.compile(r"\\\$"), "$"),
    (re.compile(r"\\%"), "%"),
    (re.compile(r"\{,\}"), ""),
    (re.compile(r"\^\s*\{?\s*\\circ\s*\}?"), " degrees"),
    (re.compile(r"\\(?:cdot|times|ast)(?![A-Za-z])"), " * "),
    (re.compile(r"\\div(?![A-Za-z])"), " / "),
    (re.compile(r"\\(?:left|right|[bB]igg?[lr]?|displaystyle|textstyle)(?![A-Za-z])|\\[,;:! ]"), " "),
    (
        re.compile(
            r"\\(?:quad|qquad|implies|impliedby|[lL]ong(?:right|left)arrow|[rR]ightarrow|[lL]eftarrow|"
            r"[lL]eftrightarrow|iff|to|le|leq|ge|geq|lt|gt|ne|neq|approx|sim|simeq|equiv|pm|mp|[lcv]?dots|"
            r"therefore|because|in|mid|and|or|text)(?![A-Za-z])|\\\\|&"
        ),
        " ; ",
    ),
    (re.compile(r"\\[A-Za-z]+|\\"), "\ue000"),  # any other command: a value the reader cannot compute
    (re.compile(r"\{"), "("),
    (re.compile(r"\}"), ")"),
]
_UNICODE = [
    (re.compile(r"[×·∙]"), " * "),
    (re.compile(r"÷"), " / "),
    (re.compile(r"[−–]"), "-"),
    (re.compile(r"[—≈≠≤≥<>]"), " ; "),
]
_VULGAR = {"½": "1/2", "⅓": "1/3", "⅔": "2/3", "¼": "1/4", "¾": "3/4", "⅕": "1/5", "⅛": "1/8"}
_VULGAR_PATTERN = re.compile(f"[{''.join(_VULGAR)}]")


def _normalise(line: str) -> tuple[str, list[int]]:
    text, origin = line, list(range(len(line)))
    text, origin = _rewrite(text, origin, _ANNOTATION, _literal(""))
    if "\\" in text:
        for _ in range(MAX_LATEX_PASSES):
            before = text
            text, origin = _rewrite(text, origin, _FRAC, _fraction_pieces)
            text, origin = _rewrite(text, origin, _WRAPPER, lambda m: [" ", 1, " "])
            if text == before:
                break
    if "\\" in text or "{" in text or "&" in text:
        for pattern, replacement in _LATEX_LITERALS:
            text, origin = _rewrite(text, origin, pattern, _literal(replacement))
    for pattern, replacement in _UNICODE:
        text, origin = _rewrite(text, origin, pattern, _literal(replacement))
    text, origin = _rewrite(text, origin, _VULGAR_PATTERN, lambda m: [" " + _VULGAR[m.group(0)]])
    return text, origin


def _fraction_pieces(match: re.Match) -> list[Piece]:
    numerator = 1 if match.group(1) is not None else 2
    denominator = 3 if match.group(3) is not None else 4
    return ["((", numerator, ")/(", denominator, "))"]


# ---- pass 2: tokens ---------------------------------------------------------------------
@dataclass
class Token:
    """One token; read it, never change it (a line's tokens are cached and shared)."""

    kind: str  # num, op, open, close, eq, word, var, unknown, time, stop
    text: str  # as in the normalised line
    start: int  # span in the original line
    end: int
    spaced: bool  # whitespace before it
    value: Fraction | None = None
    places: int = 0  # decimals written
    percent: bool = False
    money: bool = False
    mixed: bool = False
    symbol: str = ""  # an operator's ASCII form


_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<time>\d{1,2}:\d{2}(?::\d{2})?(?!\d))"
    r"|(?P<mixed>(?P<whole>\d+)[ \t]+(?P<numerator>\d+)/(?P<denominator>\d+)(?!\d|/|[.,]\d))"
    r"|(?P<num>(?:\d{1,3}(?:,\d{3})+(?!\d|,\d)|\d+)(?:\.\d+)?|\.\d+)"
    r"|(?P<op>\*\*|[-+*/^])"
    r"|(?P<open>[(\[])|(?P<close>[)\]])"
    r"|(?P<eq>=)"
    r"|(?P<dollar>\$)"
    r"|(?P<percent>%)"
    r"|(?P<unknown>\ue000)"
    r"|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)"
    r"|(?P<stop>.)",
    re.DOTALL,
)
_NUMBER = re.compile(r"(?:\d{1,3}(?:,\d{3})+(?!\d|,\d)|\d+)(?:\.\d+)?|\.\d+")
ATTACHED_UNITS = frozenset(
    "kg g mg km m cm mm l ml lb lbs oz ft in yd yds mi mph kph am pm st nd rd th h hr hrs min mins s sec secs "
    "k".split()
)
WORD_OPERATORS = {"x": "*", "times": "*", "plus": "+", "minus": "-"}
TWO_WORD_OPERATORS = {("multiplied", "by"): "*", ("divided", "by"): "/"}
ARTICLES = frozenset({"a", "A", "I"})


@dataclass
class ReadLine:
    """A line's tokens, with each bracket's partner."""

    tokens: list[Token]
    pairs: dict[int, int]  # bracket index -> its partner


@lru_cache(maxsize=4096)
def read_line(line: str) -> ReadLine:
    """The tokens of a line (spans in the line as given), with its brackets paired."""
    text, origin = _normalise(line[:MAX_LINE_LENGTH])
    raw: list[Token] = []
    position, spaced = 0, True
    while position < len(text) and len(raw) < MAX_LINE_TOKENS:
        match = _TOKEN.match(text, position)
        kind = match.lastgroup
        if kind == "mixed" and not 0 < int(match.group("numerator")) < int(match.group("denominator")):
            match, kind = _NUMBER.match(text, position), "num"
        position = match.end()
        if kind == "space":
            spaced = True
            continue
        token = Token(kind, match.group(0), origin[match.start()], origin[match.end() - 1] + 1, spaced)
        spaced = False
        if kind in ("num", "mixed"):
            _set_number(token, match)
        raw.append(token)
    tokens = _combine(raw)
    return ReadLine(tokens, _pair_brackets(tokens))


def _set_number(token: Token, match: re.Match) -> None:
    text = match.group(0)
    if len(text) > MAX_NUMBER_LENGTH:
        token.kind = "stop"
        return
    if token.kind == "mixed":
        whole, numerator, denominator = (int(match.group(k)) for k in ("whole", "numerator", "denominator"))
        token.kind, token.mixed, token.value = "num", True, whole + Fraction(numerator, denominator)
        return
    token.value = Fraction(text.replace(",", ""))
    token.places = len(text.split(".", 1)[1]) if "." in text else 0


def _combine(raw: list[Token]) -> list[Token]:
    """Percents, money and word operators joined to their numbers; words classified."""
    tokens: list[Token] = []
    i = 0
    while i < len(raw):
        token = raw[i]
        previous = tokens[-1] if tokens else None
        lower = token.text.lower()
        if token.kind == "percent" or (token.kind == "word" and lower in ("percent", "per", "pct")):
            if previous is not None and previous.kind == "num" and not previous.percent:
                if lower == "per":
                    if i + 1 < len(raw) and raw[i + 1].text.lower() == "cent":
                        previous.percent, previous.end = True, raw[i + 1].end
                        i += 2
                        continue
                else:
                    previous.percent, previous.end = True, token.end
                    i += 1
                    continue
            if token.kind == "percent":
                token.kind = "stop"
        if token.kind == "dollar":
            if i + 1 < len(raw) and raw[i + 1].kind == "num":
                raw[i + 1].money = True
                raw[i + 1].spaced = token.spaced or raw[i + 1].spaced
            i += 1
            continue
        if token.kind == "word":
            operator, width = _word_operator(raw, i)
            if operator and _after_operand(tokens):
                following = raw[i + width] if i + width < len(raw) else None
                if following is not None and following.kind in ("num", "open", "dollar"):
                    end = raw[i + width - 1].end
                    tokens.append(Token("op", token.text, token.start, end, token.spaced, symbol=operator))
                    i += width
                    continue
            token.kind = _word_kind(token, previous, raw[i + 1] if i + 1 < len(raw) else None)
        elif token.kind == "op":
            following = raw[i + 1] if i + 1 < len(raw) else None
            if (
                token.text == "/"
                and previous is not None
                and previous.kind == "word"
                and following is not None
                and following.kind == "word"
            ):  # a compound unit, `miles/day`, is one word
                previous.text, previous.end = f"{previous.text}/{following.text}", following.end
                i += 2
                continue
            token.symbol = "^" if token.text in ("**", "^") else token.text
        tokens.append(token)
        i += 1
    return tokens


def _after_operand(tokens: list[Token]) -> bool:
    """Whether the tokens so far end with an operand, maybe followed by unit words (`5 apples`)."""
    for token in reversed(tokens[-MAX_UNIT_WORDS - 1 :]):
        if token.kind != "word":
            return token.kind in ("num", "close")
    return False


def _word_operator(raw: list[Token], i: int) -> tuple[str | None, int]:
    lower = raw[i].text.lower()
    if lower in WORD_OPERATORS:
        return WORD_OPERATORS[lower], 1
    if i + 1 < len(raw) and raw[i + 1].kind == "word":
        pair = (lower, raw[i + 1].text.lower())
        if pair in TWO_WORD_OPERATORS:
            return TWO_WORD_OPERATORS[pair], 2
    return None, 1


def _word_kind(token: Token, previous: Token | None, following: Token | None) -> str:
    attached = previous is not None and previous.kind == "num" and not token.spaced
    if attached:
        return "word" if token.text.lower() in ATTACHED_UNITS else "var"  # 3kg is a unit, 3a a product
    if len(token.text) == 1:  # a variable, unless an article or "I" before a word: `$5 a day`
        article = token.text in ARTICLES and following is not None and following.kind == "word"
        return "word" if article and following.spaced else "var"
    return "word"


def _pair_brackets(tokens: list[Token]) -> dict[int, int]:
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for i, token in enumerate(tokens):
        if token.kind == "open":
            stack.append(i)
        elif token.kind == "close" and stack:
            j = stack.pop()
            pairs[i], pairs[j] = j, i
    return pairs


def number_tokens(line: str) -> list[Token]:
    """The numbers a line states (its first `MAX_NUMBERS`), as tokens with their spans."""
    return [t for t in read_line(line).tokens if t.kind == "num"][:MAX_NUMBERS]


def readings(token: Token) -> tuple[Fraction, ...]:
    """What a number may stand for: itself, and for a percent also its hundredth."""
    return (token.value, token.value / 100) if token.percent else (token.value,)
