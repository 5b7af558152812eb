"""Step-level critiques of math solutions (MathCritique): the `Critique` and its text formats.

The project's format, one block per solution step, then one for the final answer:

    Step 1: Tom buys 3 packs of 12 pencils: 3 * 12 = 36 pencils.
    Verdict: Correct
    Explanation: 3 * 12 = 36.

    Step 2: After 5 pencils are gone: 36 - 5 = 32 pencils.
    Verdict: Wrong
    Explanation: 36 - 5 = 31, not 32. The right computation: 36 - 5 = 31.

    Final answer: 64
    Verdict: Wrong
    Explanation: 64 is not right; it follows from the error in step 2.

The format of MathCritique's released critiques (and of critique models trained on them),
unnumbered blocks in order, then the final answer's verdict:

    Step sentence: After 5 pencils are gone: 36 - 5 = 32 pencils.
    Correctness of the step: Wrong
    Explanation: 36 - 5 = 31, not 32.

    Correctness of the final answer: Wrong
    Explanation: ...

`Critique.render()` writes the first; `parse_critique(text)` reads both, and mixtures of
them, tolerating case, Markdown (bold labels, headings, bullets, `---` rules), blank lines
inside a block, numbering (`Step 2:`, `Step 2 sentence:`, `2. Step sentence:`), other
field names (`Correctness:`, `Judgement:`, `Reason:`) and missing fields.
`solution_steps` and `numbered_solution` cut a solution into the steps a critique
numbers. The critics are in `envs.math.critics`, the arithmetic they check in
`envs.math.arithmetic`, flawed solutions in `envs.math.flaws`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from envs.math.answers import extract_answer


# ---- the format -----------------------------------------------------------------------
@dataclass
class StepCritique:
    index: int  # 1-based
    step: str
    correct: bool | None  # None: the critique gives no verdict for this step
    explanation: str = ""


@dataclass
class Critique:
    """A critique in structured form; `raw` keeps the text it was parsed from.

    `format_error` is set when a critic's reply could not be read as a critique at all:
    such a critique says nothing (no verdicts), and says so, rather than "no errors".
    """

    steps: list[StepCritique] = field(default_factory=list)
    answer: str | None = None
    answer_correct: bool | None = None
    answer_explanation: str = ""
    raw: str = ""
    format_error: str | None = None

    @property
    def first_wrong_step(self) -> int | None:
        wrong = [s.index for s in self.steps if s.correct is False]
        return min(wrong) if wrong else None

    @property
    def unparsable(self) -> bool:
        return self.format_error is not None

    @property
    def verdict(self) -> bool | None:
        """Whether the critique judges the solution right: its final-answer verdict, else
        what its steps say (wrong if any step is), None if it says nothing."""
        if self.answer_correct is not None:
            return self.answer_correct
        if any(s.correct is False for s in self.steps):
            return False
        if self.steps and all(s.correct for s in self.steps):
            return True
        return None

    def summary(self) -> dict[str, object]:
        """What an env's info reports of the critique."""
        return {
            "first_wrong_step": self.first_wrong_step,
            "verdict": self.verdict,
            "parsed": not self.unparsable,
        }

    def render(self) -> str:
        blocks = [
            f"Step {s.index}: {s.step}\nVerdict: {_verdict_word(s.correct)}\nExplanation: {s.explanation}"
            for s in self.steps
        ]
        blocks.append(
            f"Final answer: {self.answer if self.answer is not None else '(none)'}\n"
            f"Verdict: {_verdict_word(self.answer_correct)}\nExplanation: {self.answer_explanation}"
        )
        return "\n\n".join(blocks)

    @property
    def text(self) -> str:
        """What to show an actor: the critic's own words, or the rendered format."""
        if self.unparsable:
            return (
                f"(The critic's reply could not be read as a step-by-step critique.)\n\n{self.raw}".rstrip()
            )
        return self.raw or self.render()


def _verdict_word(correct: bool | None) -> str:
    return {True: "Correct", False: "Wrong", None: "Unknown"}[correct]


class CritiqueFormatError(ValueError):
    """A text with no step verdicts and no final-answer verdict."""


MAX_CRITIQUE_LINES = 4000  # lines of a critique that are read
_LABEL = re.compile(
    r"^[ \t>#*_~•·\-]*(?:\(?(?P<list>\d{1,9})[.)][ \t]+[*_ \t]*)?(?:"
    r"(?P<final_verdict>correctness\s+of\s+(?:the\s+)?final\s+answer|(?:final|overall)\s+verdict|"
    r"final\s+answer\s+(?:correctness|verdict))"
    r"|(?P<final>final\s+answer)"
    r"|(?P<verdict>(?:correctness|verdict|judge?ment|assessment|evaluation)(?:\s+of\s+(?:the\s+|this\s+)?step"
    r"(?:\s*\d{1,9})?)?|step\s+(?:correctness|verdict))"
    r"|(?P<explanation>explanation|reason(?:ing)?|rationale)"
    r"|(?P<step>step(?:[ \t]*(?P<number>\d{1,9}))?(?:[ \t]+(?P<sentence>sentence)(?:[ \t]*(?P<after>\d{1,9}))?)?)"
    r")(?![A-Za-z0-9])[*_ \t]*(?P<separator>[:.)\-–—]|(?=\S)|$)[*_ \t]*(?P<rest>.*)$",
    re.IGNORECASE,
)
_KINDS = ("final_verdict", "final", "verdict", "explanation", "step")
_RULE = re.compile(r"^[ \t]*(?:[-*_=][ \t]*){3,}$")
_NEGATIVE = re.compile(
    r"\b(?:incorrect|wrong|not\s+(?:correct|right)|erroneous|mistaken|false|invalid|flawed)\b", re.IGNORECASE
)
_POSITIVE = re.compile(r"\b(?:correct|right|valid|true)\b", re.IGNORECASE)
_VERDICT_WORD = re.compile(
    r"\b(incorrect|wrong|not correct|erroneous|mistaken|false|correct|valid|true)\b", re.IGNORECASE
)
_WHOLE_VERDICT = re.compile(
    r"\b(?:the\s+)?(?:final\s+)?answer\s+is\s+(incorrect|wrong|not correct|correct|right)\b", re.IGNORECASE
)


def _classify(text: str) -> bool | None:
    """The first verdict word of free text."""
    match = _VERDICT_WORD.search(text)
    if match is None:
        return None
    return match.group(1).lower() in ("correct", "valid", "true")


def _classify_field(value: str) -> bool | None:
    """A verdict field's value: any negative word makes it Wrong (`Correct for the equation
    but wrong in context`), else a positive one makes it Correct."""
    if _NEGATIVE.search(value):
        return False
    if _POSITIVE.search(value):
        return True
    return None


@dataclass
class _Block:
    final: bool
    index: int | None = None
    content: str = ""
    verdict: bool | None = None
    explanation: list[str] | None = None
    body: list[str] = field(default_factory=list)


def _label(line: str) -> tuple[str, re.Match] | None:
    """The label a line starts with (its kind and match), or None for a line of text."""
    match = _LABEL.match(line)
    if match is None:
        return None
    kind = next(k for k in _KINDS if match.group(k))
    separator = match.group("separator")
    if kind != "step" and not separator:
        return None  # a field needs its `:` (prose that begins with "Explanation of ..." is not one)
    numbered = match.group("number") or match.group("after") or match.group("sentence")
    if kind == "step" and not numbered and separator != ":":
        return None  # an unnumbered "Step" heads a block only as `Step: ...`
    return kind, match


def parse_critique(text: str) -> Critique:
    """A critique in the project's format or MathCritique's released one (Markdown, other
    field names, numbering and missing fields tolerated).

    Raises `CritiqueFormatError` when the text has neither step verdicts nor a verdict on
    the final answer.
    """
    if not isinstance(text, str) or not text.strip():
        raise CritiqueFormatError("the critique is empty")
    blocks: list[_Block] = []
    current: _Block | None = None
    for line in text.splitlines()[:MAX_CRITIQUE_LINES]:
        if _RULE.match(line):
            continue
        label = _label(line)
        if label is None:
            if current is not None:
                (current.explanation if current.explanation is not None else current.body).append(line)
            continue
        kind, match = label
        rest = match.group("rest").strip().strip("*_").strip()
        if kind == "step":
            number = match.group("number") or match.group("after") or match.group("list")
            current = _Block(False, int(number) if number else None, rest)
            blocks.append(current)
        elif kind == "final":
            current = _Block(True, content=rest)
            blocks.append(current)
        elif kind == "final_verdict":
            if current is None or not current.final or current.verdict is not None:
                current = _Block(True)
                blocks.append(current)
            current.verdict = _classify_field(rest)
        elif current is None:
            continue  # a field before any block: nothing to attach it to
        elif kind == "verdict":
            if current.verdict is None:
                current.verdict = _classify_field(rest)
        else:
            current.explanation = [rest]
    return _critique(text, blocks)


def _critique(text: str, blocks: list[_Block]) -> Critique:
    critique = Critique(raw=text)
    index = 0
    for block in blocks:
        body = "\n".join(block.body).strip()
        explanation = "\n".join(block.explanation).strip() if block.explanation is not None else body
        verdict = block.verdict
        if verdict is None and block.explanation is None:
            verdict = _classify(body) if body else None
        if verdict is None:
            verdict = _inline_verdict(block.content)
        if block.final:
            answer = re.split(r"\s*[—–-]*\s*\bverdict\b", block.content, maxsplit=1, flags=re.IGNORECASE)[0]
            critique.answer = answer.strip() or critique.answer
            critique.answer_correct, critique.answer_explanation = verdict, explanation
            continue
        index = block.index if block.index is not None else index + 1
        critique.steps.append(StepCritique(index, block.content, verdict, explanation))
    if critique.answer_correct is None:
        whole = list(_WHOLE_VERDICT.finditer(text))
        if whole:
            critique.answer_correct = whole[-1].group(1).lower() in ("correct", "right")
    if not any(s.correct is not None for s in critique.steps) and critique.answer_correct is None:
        raise CritiqueFormatError(
            "no verdict found: write a block per step (`Step 1: ...`, `Verdict: Correct` or `Wrong`, "
            "`Explanation: ...`) and a final block (`Final answer: ...`, `Verdict: ...`, `Explanation: ...`)"
        )
    return critique


_INLINE_VERDICT = re.compile(r"\bverdict\s*[:\-]\s*(\w+(?:\s+\w+)?)", re.IGNORECASE)


def _inline_verdict(content: str) -> bool | None:
    """A verdict written on the header line: `Final answer: 64 — Verdict: Wrong`, `32 * 2 = 64 (wrong)`."""
    match = _INLINE_VERDICT.search(content)
    if match is not None:
        return _classify_field(match.group(1))
    return _classify(content)


# ---- solutions as steps ---------------------------------------------------------------
_STEP_PREFIX = re.compile(r"^(?:[-*•]\s+|step\s*\d+\s*[:.)]\s*|\d+[.)]\s+)", re.IGNORECASE)
_ANSWER_SENTENCE = re.compile(r"(?:^|(?<=[.!?]))\s*(?:the\s+)?(?:final\s+)?answer\s+is\b.*$", re.IGNORECASE)


def solution_steps(solution: str) -> list[str]:
    """A solution's steps: its non-empty lines without list markers and without the final
    answer sentence (`The answer is N.` or `#### N`)."""
    lines = [_STEP_PREFIX.sub("", line.strip()).strip() for line in solution.splitlines()]
    lines = [line for line in lines if line]
    if lines:
        last = re.sub(r"^####.*$", "", _ANSWER_SENTENCE.sub("", lines[-1])).strip()
        lines[-1:] = [last] if last else []
    return lines


def numbered_solution(solution: str) -> str:
    """The solution as a critic sees it: `Step i: ...` lines, then its answer line."""
    lines = [f"Step {i}: {line}" for i, line in enumerate(solution_steps(solution), 1)]
    answer = extract_answer(solution, fallback_last_number=False)
    lines.append(f"The answer is {answer}." if answer is not None else "(no final answer given)")
    return "\n".join(lines)
