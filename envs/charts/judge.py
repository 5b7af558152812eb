"""A model judge for free-text chart answers, as ReachQA grades them.

ReachQA's answers are often sentences ("TikTok holds 25%, more than Twitter and Snapchat
together, 19%"): exact match rejects right answers worded another way. `AnswerJudge(model)`
asks a model counterpart (any `envs.counterparts.Completer`: a local model, an
OpenAI-compatible endpoint; `evol serve --counterpart judge=SPEC` wires one into a server)
whether an answer states what the reference states. The prompt shows the question, the
reference and the answer (no chart); the reply's last `Verdict:` line (or ReachQA's
`Correctness:`) says Correct/Wrong (Yes/No, True/False are read too), and the text before
that line is the judge's reason (`judge_reason`: ReachQA's `Analysis:` label is dropped). A
reply without a verdict line is unreadable: the answer, which exact match already rejected,
counts as wrong and the reason says the reply held no verdict.

Grading order in the env: exact/numeric match first (a match never asks the judge), then,
for free-text answers only, the judge.
"""

from __future__ import annotations

import re
from typing import Any

from envs.counterparts import Completer, is_completer, plays_scripted, require_completer

JUDGE_PROMPT = """\
You grade an answer to a question about a chart. You do not see the chart: compare the \
answer with the reference answer only. The answer is right when it states what the \
reference states: the same names and the same numbers (rounding that keeps the meaning is \
fine, and so is other wording or extra explanation). It is wrong when it contradicts the \
reference, leaves out part of what the reference answers, or names several answers without \
choosing.

Question: {question}
Reference answer: {gold}
Answer to grade: {given}

Write one or two sentences of reasoning, then a last line that is exactly `Verdict: Correct` \
or `Verdict: Wrong`."""

MAX_JUDGED_REPLY = 4096  # characters of a judge's reply that are read
# `[ \t]*(?:\*+[ \t]*)?`, not `[ \t]*\**[ \t]*`: two `[ \t]*` side by side split a run of spaces every way.
_VERDICT = re.compile(
    r"^[ \t>#*-]*(?:final[ \t]+)?(?:verdict|correctness|judge?ment)\**[ \t]*[:=][ \t]*(?:\*+[ \t]*)?"
    r"(incorrect|correct|wrong|right|yes|no|true|false)\b",
    re.IGNORECASE | re.MULTILINE,
)
_RIGHT = {"correct", "right", "yes", "true"}
_REASON_LABEL = re.compile(r"^[ \t>#*-]*(?:analysis|reason(?:ing)?|explanation)\**[ \t]*:\**[ \t]*", re.I)
MAX_REASON = 500  # characters of a judge's reason kept
UNREADABLE = "the judge's reply holds no `Verdict: Correct|Wrong` line, so the answer counts as wrong"


def parse_verdict(reply: str) -> bool | None:
    """The verdict of a judge's reply (its last verdict line): True right, False wrong, None none."""
    found = _VERDICT.findall(reply[:MAX_JUDGED_REPLY])
    if not found:
        return None
    return found[-1].lower() in _RIGHT


def judge_reason(reply: str) -> str:
    """Why the judge decided: the reply's text before its last verdict line (a leading
    `Analysis:`/`Reason:` label dropped, at most `MAX_REASON` characters); for a reply with
    no verdict line, `UNREADABLE`."""
    text = reply[:MAX_JUDGED_REPLY]
    found = list(_VERDICT.finditer(text))
    if not found:
        return UNREADABLE
    before = text[: found[-1].start()].strip()
    reason = " ".join(_REASON_LABEL.sub("", line).strip() for line in before.splitlines() if line.strip())
    return reason[:MAX_REASON]


class AnswerJudge:
    """Grades free-text answers with a model counterpart (greedy, one reply per answer)."""

    def __init__(self, model: Completer, max_new_tokens: int = 256):
        self.model = require_completer(model, "chart answer judge")
        self.max_new_tokens = max_new_tokens

    @staticmethod
    def prompt(question: str, gold: str, given: str) -> str:
        return JUDGE_PROMPT.format(question=question.strip(), gold=gold.strip(), given=given.strip())

    def judge(self, question: str, gold: str, given: str) -> tuple[bool | None, str]:
        """(the verdict, or None when the reply holds none; the reply)."""
        conversation = [{"role": "user", "content": self.prompt(question, gold, given)}]
        replies = self.model.complete([conversation], temperature=0.0, max_new_tokens=self.max_new_tokens)
        reply = replies[0][0] if replies and replies[0] else ""
        return parse_verdict(reply), reply


def as_answer_judge(spec: Any, max_new_tokens: int = 256) -> AnswerJudge | None:
    """The judge a `judge` kwarg names: None or "exact" (exact match only, also for the
    `expert` agent, which stands for the env's own rules), an `AnswerJudge`, or a model
    (judging with replies of at most `max_new_tokens` tokens)."""
    if spec is None or spec == "exact" or plays_scripted(spec):
        return None
    if isinstance(spec, AnswerJudge):
        return spec
    if is_completer(spec):
        return AnswerJudge(spec, max_new_tokens=max_new_tokens)
    raise TypeError(
        'judge must be None, "exact", or a model with complete(conversations, ...) (any agent); '
        f"got {type(spec).__name__}"
    )


__all__ = ["JUDGE_PROMPT", "UNREADABLE", "AnswerJudge", "as_answer_judge", "judge_reason", "parse_verdict"]
