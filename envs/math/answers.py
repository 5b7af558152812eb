"""Final answers of math solutions: extraction, and equivalence.

`extract_answer(text)` finds a solution's final answer: the last of "The answer is ...",
`\\boxed{...}` and `#### n` (whichever comes last in the text), else (unless
`fallback_last_number=False`) the last number. A self-talk reply (`envs.math.self_talk`) checks
itself on `Check:` lines; a line that flags a mistake (`Check: step 3 is wrong: ...`, `Check:
the answer 64 is wrong: ...`) retracts everything before it, so such a reply is read after its
last flagging line: its final answer is the one its correction states, and a reply that flags
a mistake and states no answer after it has none. A phrase that only comments on the answer
("so our answer is correct", "the answer is indeed right") is not an answer and does not
override a `\\boxed{}` before it; boxes side by side in one closing line (`\\boxed{2}, \\boxed{-2}`)
make one list.

`answers_match(predicted, gold)` says whether two answers are the same value. Both are
normalised (`envs.math.answer_text.normalize_answer`), then compared by the project's own rules
(`envs.math.equivalence.decide`: exact numbers, mixed numbers, percents, unordered lists and
`\\pm`, intervals, matrices, base subscripts, and expressions in the closed grammar of
`envs.math.expressions`: no `eval`, bounded arithmetic). Only when those rules cannot read a
pair where one side is LaTeX (`\\binom{5}{2}`, `\\log_2 8`, `x \\ge 3`...) does math-verify
decide, in a child process bounded by the same time limit (`envs.math.verify`); a pair of
plain-text answers never goes there.

Answers are client text: every pattern here runs in linear time, texts longer than
`MAX_TEXT_LENGTH` are read from their last `MAX_TEXT_LENGTH` characters, and answers
longer than `MAX_SYMBOLIC_LENGTH` are compared as text only.
"""

from __future__ import annotations

import re
import time

from envs.math.answer_text import (
    MAX_NUMBER_LENGTH,
    ParsedNumber,
    braced_group,
    compact,
    normalize_answer,
    numbers_match,
    parse_number,
)
from envs.math.equivalence import MAX_SYMBOLIC_LENGTH, decide, split_top_level
from envs.math.expressions import equivalent
from envs.math.verify import latex_equivalent, start

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_NUMBER_LENGTH",
    "MAX_SYMBOLIC_LENGTH",
    "MAX_TEXT_LENGTH",
    "SELF_CHECK_FLAG",
    "ParsedNumber",
    "answers_match",
    "braced_group",
    "extract_answer",
    "last_boxed",
    "normalize_answer",
    "numbers_match",
    "parse_number",
    "split_top_level",
    "symbolic_match",
]

DEFAULT_TIMEOUT = 2.0  # seconds one answer check may take
MAX_TEXT_LENGTH = 32_768  # a longer solution is read from its end (where its answer is)

_ANSWER_IS = re.compile(r"\b(?:the\s+)?(?:final\s+)?answer\s+is\s*:?[ \t]*([^\n]*)", re.IGNORECASE)
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_BARE_BOX = re.compile(r"[^\s$]+")  # \boxed 5
# A self-check line that flags a mistake (the self-talk format of `envs.math.self_talk`).
SELF_CHECK_FLAG = re.compile(
    r"^[ \t>*_#-]*check[ \t*_]*:[ \t*_]*(?:step[ \t]*\d{1,9}|the[ \t]+(?:final[ \t]+)?answer(?:[ \t]+[^\s]{1,64})?)"
    r"[ \t]+(?:is|was)[ \t]+(?:wrong|incorrect|missing)\b[^\n]*",
    re.IGNORECASE | re.MULTILINE,
)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
# Where a phrase's answer ends and its comment starts: "44, which is correct", "5 because ...".
# The lookbehind lets a run of spaces be tried once, from its start (linear time).
_COMMENT = re.compile(
    r"(?<![\s,;])[,;]?\s+(?:which|since|because|as|so|but|where|hence|thus|therefore|when|if|and\s(?:this|that|it))\b",
    re.IGNORECASE,
)
MAX_BOXES = 16  # boxes joined into one list answer
# Between boxes of one answer: "\boxed{2}, \boxed{-2}", "$\boxed{1}$ and $\boxed{3}$".
_BETWEEN_BOXES = re.compile(r"[\s$,;]*(?:(?:and|or|\\text\{\s*(?:and|or)\s*\}|\\quad|\\qquad)[\s$,;]*)?")
_FILLER = re.compile(
    r"^(?:(?:indeed|also|still|clearly|surely|thus|therefore|hence|so|then|now|just|exactly|precisely|"
    r"definitely|actually|really|again|both|simply|certainly|obviously|the|our|my|this|that|its?)\b[\s,]*)*",
    re.IGNORECASE,
)
_VERDICT = re.compile(
    r"^(?:correct|incorrect|right|wrong|consistent|inconsistent|verified|valid|invalid|confirmed|accurate|"
    r"reasonable|plausible|sound|unchanged|same|above|below|as|not|what|obtained|found|given|shown|boxed|"
    r"in|at|clear|obvious|satisfied|checked|value|result|number|solution|answer|we|you)\b|^$",
    re.IGNORECASE,
)


# ---- extraction -----------------------------------------------------------------------
def extract_answer(text: str, fallback_last_number: bool = True) -> str | None:
    """The final answer of a solution, as written (None if there is none)."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text[-MAX_TEXT_LENGTH:]
    retraction = _last_match(SELF_CHECK_FLAG, text)
    if retraction is not None:
        text = text[retraction.end() :]  # a self-talk reply: what it states after its last correction
    found: list[tuple[int, str]] = []
    phrase = _last_answer_phrase(text)
    if phrase is not None:
        found.append(phrase)
    boxed = _last_boxes(text)
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


def _last_answer_phrase(text: str) -> tuple[int, str] | None:
    """(position, answer) of the last "the answer is X" whose X is an answer, not a comment on one."""
    for match in reversed(list(_ANSWER_IS.finditer(text))):
        answer = _first_sentence(match.group(1))
        if not _is_comment(answer):
            return match.start(), answer
    return None


def _is_comment(answer: str) -> bool:
    """Whether a phrase is words about the answer ("correct", "indeed right", "the same"), not one."""
    if re.search(r"[\d\\$={}]", answer):
        return False
    rest = _FILLER.sub("", answer.strip(" \t,;:-"))
    return bool(_VERDICT.match(rest))


def _last_boxes(text: str) -> tuple[int, str] | None:
    """(position, content) of the last `\\boxed{}` that closes, joined with the boxes right
    before it in one list: `\\boxed{2}, \\boxed{-2}` -> `2, -2`."""
    closing = _closing_braces(text)
    boxes = []
    for match in _BOXED.finditer(text):
        content, end = _box_content(text, match.end(), closing)
        if content is not None:
            boxes.append((match.start(), end, content))
    if not boxes:
        return None
    start, _, content = boxes[-1]
    contents = [content]
    for previous_start, previous_end, previous in reversed(boxes[-MAX_BOXES:-1]):
        between = text[previous_end:start] if previous_end <= start else "x"
        if not between.strip(" $") or not _BETWEEN_BOXES.fullmatch(between):
            break
        start = previous_start
        contents.insert(0, previous)
    return start, ", ".join(contents)


def last_boxed(text: str) -> tuple[int, str] | None:
    """(position, content) of the last `\\boxed{...}` (or `\\fbox{...}`, `\\boxed 5`)."""
    match = _last_match(_BOXED, text)
    if match is None:
        return None
    content, _ = _box_content(text, match.end())
    return (match.start(), content) if content is not None else None


def _closing_braces(text: str) -> dict[int, int]:
    """Where each `{` of `text` closes (one pass; an unclosed one is absent)."""
    closing, opened = {}, []
    for i, char in enumerate(text):
        if char == "{":
            opened.append(i)
        elif char == "}" and opened:
            closing[opened.pop()] = i
    return closing


def _box_content(text: str, start: int, closing: dict[int, int] | None = None) -> tuple[str | None, int]:
    """The content of a box whose command ends at `start`, and where the box ends."""
    if start < len(text) and text[start] == "{":
        if closing is None:
            content = braced_group(text, start)
            return (content, start + len(content) + 2) if content is not None else (None, start)
        end = closing.get(start)
        return (text[start + 1 : end], end + 1) if end is not None else (None, start)
    rest = _BARE_BOX.match(text, start)
    return (rest.group(0), rest.end()) if rest else (None, start)


def _last_match(pattern: re.Pattern, text: str) -> re.Match | None:
    last = None
    for last in pattern.finditer(text):  # noqa: B007 (the loop keeps the last match)
        pass
    return last


def _first_sentence(text: str) -> str:
    """'42. Hope that helps.' -> '42' (a decimal point is not a sentence end); '44, which is
    correct' -> '44'."""
    end = _SENTENCE_END.search(text)
    text = text[: end.start()] if end else text
    comment = _COMMENT.search(text)
    return text[: comment.start()] if comment else text


# ---- equivalence ----------------------------------------------------------------------
_LATEX = re.compile(r"[\\{}_]")
# What math-verify may be shown: LaTeX math's characters (no quotes, colons, backticks: not code).
_MATH_TEXT = re.compile(r"[A-Za-z0-9\s.,;+\-*/^()\[\]{}\\!|<>=%&_πθ√≤≥±∓∞∪∩°]*")


def answers_match(predicted: str | None, gold: str | None, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether `predicted` states the same answer as `gold` (see the module docstring), decided
    within `timeout` seconds from any thread."""
    if predicted is None or gold is None:
        return False
    deadline = time.monotonic() + timeout
    predicted, gold = str(predicted), str(gold)
    p, g = normalize_answer(predicted), normalize_answer(gold)
    if not p or not g:
        return False
    if compact(p) == compact(g):
        return True
    if len(p) > MAX_SYMBOLIC_LENGTH or len(g) > MAX_SYMBOLIC_LENGTH:
        return False
    latex = bool(_LATEX.search(predicted) or _LATEX.search(gold))
    if latex:
        start()  # math-verify's children warm up while the rules below decide (a no-op once started)
    verdict = decide(p, g, deadline)
    if verdict is not None:
        return verdict
    left = deadline - time.monotonic()
    if not latex or left <= 0 or not (_MATH_TEXT.fullmatch(p) and _MATH_TEXT.fullmatch(g)):
        return False  # a pair of plain answers is read by the closed grammar only
    return latex_equivalent(p, g, left) is True


def symbolic_match(a: str, b: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether two expressions have the same value, read by the closed grammar of
    `envs.math.expressions` (never `eval` or a general parser), within `timeout` seconds."""
    return equivalent(a, b, timeout)
