"""Step-level critiques of math solutions (MathCritique): the `Critique` and its text format.

The format, one block per solution step, then one for the final answer:

    Step 1: Tom buys 3 packs of 12 pencils: 3 * 12 = 36 pencils.
    Verdict: Correct
    Explanation: 3 * 12 = 36.

    Step 2: After 5 pencils are gone: 36 - 5 = 32 pencils.
    Verdict: Wrong
    Explanation: 36 - 5 = 31, not 32. The right computation: 36 - 5 = 31.

    Final answer: 64
    Verdict: Wrong
    Explanation: 64 is not right; it follows from the error in step 2.

`Critique.render()` writes it; `parse_critique(text)` reads it back, tolerating Markdown,
other labels and missing fields. `solution_steps` and `numbered_solution` cut a solution
into the steps a critique numbers. The critics are in `envs.math.critics`, the arithmetic
they check in `envs.math.arithmetic`, flawed solutions in `envs.math.flaws`.
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
    """A critique in structured form; `raw` keeps the text it was parsed from."""

    steps: list[StepCritique] = field(default_factory=list)
    answer: str | None = None
    answer_correct: bool | None = None
    answer_explanation: str = ""
    raw: str = ""

    @property
    def first_wrong_step(self) -> int | None:
        wrong = [s.index for s in self.steps if s.correct is False]
        return min(wrong) if wrong else None

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
        return self.raw or self.render()


def _verdict_word(correct: bool | None) -> str:
    return {True: "Correct", False: "Wrong", None: "Unknown"}[correct]


class CritiqueFormatError(ValueError):
    """A text with no step verdicts and no final-answer verdict."""


_BLOCK = re.compile(
    r"^[ \t>#*_-]*(?:step[ \t]*(\d{1,9})(?!\d)|(final[ \t]+answer))[ \t*_]*(?:[:.)\-–][ \t*_]*)?([^\n]*)$",
    re.IGNORECASE | re.MULTILINE,
)
_FIELD = re.compile(
    r"^[ \t*_-]*(verdict|correctness|judge?ment|assessment|explanation)[ \t*_]*[:\-][ \t*_]*([^\n]*)$",
    re.IGNORECASE | re.MULTILINE,
)
_VERDICT_WORD = re.compile(
    r"\b(incorrect|wrong|not correct|erroneous|mistaken|false|correct|valid|true)\b", re.IGNORECASE
)
_WHOLE_VERDICT = re.compile(
    r"\b(?:the\s+)?(?:final\s+)?answer\s+is\s+(incorrect|wrong|not correct|correct|right)\b", re.IGNORECASE
)


def _classify(text: str) -> bool | None:
    match = _VERDICT_WORD.search(text)
    if match is None:
        return None
    return match.group(1).lower() in ("correct", "valid", "true")


def parse_critique(text: str) -> Critique:
    """A critique in the format (Markdown, other field names and missing fields tolerated).

    Raises `CritiqueFormatError` when the text has neither step blocks nor a verdict on
    the final answer.
    """
    if not isinstance(text, str) or not text.strip():
        raise CritiqueFormatError("the critique is empty")
    critique = Critique(raw=text)
    headers = list(_BLOCK.finditer(text))
    for n, header in enumerate(headers):
        end = headers[n + 1].start() if n + 1 < len(headers) else len(text)
        body = text[header.end() : end]
        verdict, explanation = None, ""
        last_explanation = None  # only the last one is kept: copying each one's rest was quadratic
        for field_match in _FIELD.finditer(body):
            name, value = field_match.group(1).lower(), field_match.group(2)
            if name == "explanation":
                last_explanation = field_match
            elif verdict is None:
                verdict = _classify(value)
        if last_explanation is not None:
            explanation = (last_explanation.group(2) + body[last_explanation.end() :]).strip()
        content = header.group(3).strip()
        if verdict is None:
            verdict = _classify(body) if body.strip() else None
            if verdict is None:
                verdict = _classify(content)
        if not explanation:
            explanation = _FIELD.sub("", body).strip()
        if header.group(2):
            critique.answer = content or critique.answer
            critique.answer_correct, critique.answer_explanation = verdict, explanation
        else:
            critique.steps.append(StepCritique(int(header.group(1)), content, verdict, explanation))
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
