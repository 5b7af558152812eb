"""Tool-call actions: reading them from text, writing them, and scoring them.

An action is one of
- one or more calls: JSON call objects `{"name": ..., "arguments": {...}}` (also
  `"parameters"` for `"arguments"`, arguments as a JSON string, or OpenAI's
  `{"type": "function", "function": {...}}`), the call syntax of OOD-Toolset's prompts
  `name(key='value', other=2)`, or lists of either, as `envs.tools.call_syntax` reads them;
- the ReAct form `Action: name` / `Action Input: {...}`, once or several times (what
  `agents.parse_action` keeps of a ReAct reply is `name` / `Action Input: {...}`, also accepted);
- `Final Answer: ...`.

Scoring follows OOD-Toolset's evaluation: each call is written `name(key='value', n=2)`,
the strings are normalised (spaces, slashes and commas removed, double quotes made
single, lower case), and a gold call counts as present when a call made has the same
normalised string. Our one change: arguments are written in name order, so that their
order does not matter. Exact = every gold call present (1/0); partial = 1 if every gold
call is present, 0.5 if some are, else 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from envs.numbers import format_number
from envs.tools.call_syntax import (
    MAX_CALLS,
    NAME,
    CallSyntaxError,
    read_calls,
    read_value_at,
    strip_fences,
)

FINAL_ANSWER = re.compile(r"final\s*answer\s*:\s*(.*)\Z", re.IGNORECASE | re.DOTALL)
ACTION_INPUT = re.compile(r"action\s*input\s*:", re.IGNORECASE)
ACTION_PREFIX = re.compile(r"^\s*action\s*:\s*", re.IGNORECASE)
# What may follow an empty Action Input: the next line's label.
NEXT_LABEL = re.compile(r"(?:observation|thought|final\s*answer|action)\s*:", re.IGNORECASE)
SPACE = re.compile(r"\s*")
NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
MAX_ACTION_LENGTH = 16_384  # a longer text is refused before it is read
FORMAT_HINT = (
    'Reply with tool calls — {"name": "<tool>", "arguments": {...}}, <tool>(<argument>=<value>, ...), '
    "or Action: <tool> then Action Input: {...}; several run in order — or with Final Answer: <answer>."
)


@dataclass(frozen=True)
class Call:
    """A tool call: the function's name and its arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "arguments": self.arguments})

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": dict(self.arguments)}


@dataclass(frozen=True)
class Action:
    """What an action text says: calls (run in order), a final answer, or an error explaining why neither."""

    calls: tuple[Call, ...] = ()
    answer: str | None = None
    error: str | None = None

    @property
    def call(self) -> Call | None:
        """The first call, if any."""
        return self.calls[0] if self.calls else None


def parse_action(text: str) -> Action:
    """Read one action (calls or a final answer) from an agent's text."""
    if len(text) > MAX_ACTION_LENGTH:
        return Action(error=f"the action is longer than {MAX_ACTION_LENGTH} characters. " + FORMAT_HINT)
    text = strip_fences(text)
    if not text:
        return Action(error="the action is empty. " + FORMAT_HINT)
    if not text.startswith(("{", "[")):
        final = FINAL_ANSWER.search(text)
        if final:
            if ACTION_INPUT.search(text[: final.start()]):
                return Action(error="one action per turn: either tool calls or a Final Answer, not both")
            return Action(answer=strip_fences(final.group(1)))
        if ACTION_INPUT.search(text):
            return _react(text)
        bare = ACTION_PREFIX.sub("", text, count=1).strip().strip("`'\"")
        if NAME.fullmatch(bare):
            return Action(calls=(Call(bare, {}),))
    try:
        found = read_calls(text)
    except CallSyntaxError as error:
        return Action(error=f"{error}. " + FORMAT_HINT)
    if not found:
        shown = text if len(text) <= 80 else text[:77] + "..."
        return Action(error=f"cannot read a tool call or a final answer in {shown!r}. " + FORMAT_HINT)
    return Action(calls=tuple(Call(name, arguments) for name, arguments in found))


def _react(text: str) -> Action:
    """One or more `Action: <tool>` / `Action Input: {...}` pairs, in order."""
    markers = list(ACTION_INPUT.finditer(text))
    if len(markers) > MAX_CALLS:
        return Action(error=f"at most {MAX_CALLS} calls in one reply")
    calls, head_start = [], 0
    for number, marker in enumerate(markers):
        lines = [line for line in text[head_start : marker.start()].strip().splitlines() if line.strip()]
        name = ACTION_PREFIX.sub("", lines[-1]).strip().strip("`'\"") if lines else ""
        if not NAME.fullmatch(name):
            return Action(error="write the tool's name on the line before 'Action Input:' (Action: <tool>)")
        region_end = markers[number + 1].start() if number + 1 < len(markers) else len(text)
        start = SPACE.match(text, marker.end(), region_end).end()
        if start == region_end or NEXT_LABEL.match(text, start, region_end):
            calls.append(Call(name, {}))  # no arguments written
            head_start = start
            continue
        try:
            arguments, head_start = read_value_at(text, start, f"the Action Input of {name}")
        except CallSyntaxError as error:
            return Action(error=str(error))
        if not isinstance(arguments, dict):
            return Action(error=f"the Action Input of {name} must be a JSON object of named values")
        calls.append(Call(name, arguments))
    return Action(calls=tuple(calls))


# ---- OOD-Toolset's call strings and metrics ----------------------------------------------
def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return format_number(value)
    if value is None:
        return "none"
    return json.dumps(value, sort_keys=True)


def call_string(call: Call) -> str:
    """OOD-Toolset's `name(key='value', n=2)` form of a call (arguments in name order)."""
    inner = ", ".join(f"{key}={_value_text(call.arguments[key])}" for key in sorted(call.arguments))
    return f"{call.name}({inner})"


def normalise_call_string(text: str) -> str:
    """OOD-Toolset's normalisation: no spaces, slashes or commas; single quotes; lower case."""
    return text.replace(" ", "").replace('"', "'").replace("/", "").replace(",", "").lower()


def call_match(made: list[Call], gold: list[Call]) -> tuple[float, float]:
    """(exact, partial) of the calls made against the gold calls: exact 1/0, partial 1/0.5/0."""
    if not gold:
        return 0.0, 0.0
    made_strings = {normalise_call_string(call_string(c)) for c in made}
    present = [normalise_call_string(call_string(g)) in made_strings for g in gold]
    if all(present):
        return 1.0, 1.0
    return 0.0, (0.5 if any(present) else 0.0)


# ---- final answers ------------------------------------------------------------------------
def normalise_answer(text: str) -> str:
    return " ".join(str(text).lower().split()).strip(" \t`'\".!")


def first_number(text: str) -> float | None:
    match = NUMBER.search(text)
    if match is None:
        return None
    try:
        return float(match.group(0).replace(",", ""))
    except ValueError:
        return None


def answer_correct(text: str, gold: Any) -> bool:
    """The answer rule: a numeric gold needs the answer's first number within 0.1% of it;
    a text gold needs the same text up to case, spacing, quotes and final punctuation."""
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        value = first_number(text)
        return value is not None and abs(value - gold) <= max(1e-3 * abs(gold), 1e-9)
    return normalise_answer(text) == normalise_answer(gold)


def format_answer(value: Any) -> str:
    return (
        format_number(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else str(value)
    )
