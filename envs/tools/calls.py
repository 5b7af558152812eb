"""Tool-call actions: reading them from text, writing them, and scoring them.

An action is one of
- a JSON call `{"name": ..., "arguments": {...}}` (also `"parameters"` for `"arguments"`,
  arguments as a JSON string, or OpenAI's `{"type": "function", "function": {...}}`);
- the ReAct form `Action: name` / `Action Input: {...}` (what `agents.parse_action` keeps
  of a ReAct reply is `name` / `Action Input: {...}`, also accepted);
- the call syntax of OOD-Toolset's prompts, `name(key='value', other=2)`;
- `Final Answer: ...`.

Scoring follows OOD-Toolset's evaluation: each call is written `name(key='value', n=2)`,
the strings are normalised (spaces, slashes and commas removed, double quotes made
single, lower case), and a gold call counts as present when a call made has the same
normalised string. Our one change: arguments are written in name order, so that their
order does not matter. Exact = every gold call present (1/0); partial = 1 if every gold
call is present, 0.5 if some are, else 0.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from envs.numbers import format_number

FINAL_ANSWER = re.compile(r"final\s*answer\s*:\s*(.*)\Z", re.IGNORECASE | re.DOTALL)
ACTION_INPUT = re.compile(r"action\s*input\s*:", re.IGNORECASE)
ACTION_PREFIX = re.compile(r"^\s*action\s*:\s*", re.IGNORECASE)
# `[ \t]*`, not `\s*`, after a newline: `\s*` spans the next newlines, retried at each (quadratic).
ARGUMENTS_END = re.compile(r"\n[ \t]*(observation|thought|final\s*answer)\s*:", re.IGNORECASE)
NAME = re.compile(r"[A-Za-z_][\w.\-]*")
PY_CALL = re.compile(r"[A-Za-z_]\w*\s*\(.*\)", re.DOTALL)
FENCE = re.compile(r"^[ \t]*```[\w-]*[ \t]*$", re.MULTILINE)
NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
MAX_ACTION_LENGTH = 16_384  # a longer text is refused before it is read
MAX_NESTING = 20  # lists and objects inside one another in a call's arguments
MAX_DIGITS = 100  # digits of one integer argument
FORMAT_HINT = (
    'Reply with one tool call — {"name": "<tool>", "arguments": {...}}, or Action: <tool> then '
    "Action Input: {...} — or with Final Answer: <answer>."
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
    """What an action text says: a call, a final answer, or an error explaining why neither."""

    call: Call | None = None
    answer: str | None = None
    error: str | None = None


def strip_fences(text: str) -> str:
    return FENCE.sub("", text).strip()


def parse_action(text: str) -> Action:
    """Read one action (a call or a final answer) from an agent's text."""
    if len(text) > MAX_ACTION_LENGTH:
        return Action(error=f"the action is longer than {MAX_ACTION_LENGTH} characters. " + FORMAT_HINT)
    text = strip_fences(text)
    if not text:
        return Action(error="the action is empty. " + FORMAT_HINT)
    if text.startswith("{"):
        return _json_call(text)
    final = FINAL_ANSWER.search(text)
    if final:
        if ACTION_INPUT.search(text[: final.start()]):
            return Action(error="one action per turn: either a tool call or a Final Answer, not both")
        return Action(answer=strip_fences(final.group(1)))
    marker = ACTION_INPUT.search(text)
    if marker:
        return _react(text[: marker.start()], text[marker.end() :])
    bare = ACTION_PREFIX.sub("", text, count=1).strip().strip("`'\"")
    if NAME.fullmatch(bare):
        return Action(call=Call(bare, {}))
    if PY_CALL.fullmatch(bare):
        return _python_call(bare)
    shown = text if len(text) <= 80 else text[:77] + "..."
    return Action(error=f"cannot read a tool call or a final answer in {shown!r}. " + FORMAT_HINT)


def _react(head: str, tail: str) -> Action:
    lines = [line for line in head.strip().splitlines() if line.strip()]
    name = ACTION_PREFIX.sub("", lines[-1]).strip().strip("`'\"") if lines else ""
    if not NAME.fullmatch(name):
        return Action(error="write the tool's name on the line before 'Action Input:' (Action: <tool>)")
    end = ARGUMENTS_END.search(tail)
    body = strip_fences(tail[: end.start()] if end else tail)
    if not body:
        return Action(call=Call(name, {}))
    arguments, error = _json_object(body, f"the Action Input of {name}")
    if error:
        return Action(error=error)
    return Action(call=Call(name, arguments))


def _json_object(text: str, what: str) -> tuple[Any, str | None]:
    try:
        value, end = _DECODER.raw_decode(text)
    except json.JSONDecodeError as error:
        return None, f"{what} is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
    except (ValueError, RecursionError) as error:  # NaN/Infinity, or nesting past the recursion limit
        return None, f"{what} is not valid JSON ({error})"
    if _depth(value) > MAX_NESTING:
        return None, f"{what} nests lists and objects more than {MAX_NESTING} levels deep"
    if text[end:].strip():
        return None, f"{what} has text after its JSON value: {text[end:].strip()[:40]!r} (one call per turn)"
    return value, None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"an integer of more than {MAX_DIGITS} digits")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of a number's range")
    return value


_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_int=_bounded_int, parse_float=_finite_float
)


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a JSON value (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            if depth <= MAX_NESTING:
                stack.extend((child, depth + 1) for child in children)
    return deepest


def _json_call(text: str) -> Action:
    value, error = _json_object(text, "the tool call")
    if error:
        return Action(error=error)
    if not isinstance(value, dict):
        return Action(error='a JSON tool call is an object: {"name": "<tool>", "arguments": {...}}')
    if isinstance(value.get("function"), dict):  # OpenAI's {"type": "function", "function": {...}}
        value = value["function"]
    name = value.get("name")
    if not isinstance(name, str) or not name:
        keys = ", ".join(repr(k) for k in value) or "none"
        return Action(
            error=f'a JSON tool call needs a "name" (a string) and "arguments" (an object); got keys {keys}'
        )
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        if not arguments.strip():
            arguments = {}
        else:
            arguments, error = _json_object(arguments, f'the "arguments" string of {name}')
            if error:
                return Action(error=error)
    return Action(call=Call(name, arguments if arguments is not None else {}))


def _python_call(text: str) -> Action:
    """`name(key=value, ...)` read from Python's syntax tree: only literal values (no `eval`)."""
    try:
        node = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):  # also too long a number, nesting
        return Action(error=f"cannot parse the call {text[:80]!r}. " + FORMAT_HINT)
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return Action(error=f"cannot parse the call {text[:80]!r}. " + FORMAT_HINT)
    if node.args:
        return Action(error=f"pass the arguments of {node.func.id} by name: {node.func.id}(key=value, ...)")
    arguments = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            return Action(
                error=f"pass the arguments of {node.func.id} by name: {node.func.id}(key=value, ...)"
            )
        try:
            arguments[keyword.arg] = json_literal(keyword.value)
        except ValueError as error:
            return Action(
                error=f"the value of {keyword.arg!r} in {node.func.id}(...) must be a literal ({error})"
            )
    return Action(call=Call(node.func.id, arguments))


def json_literal(node: ast.AST, depth: int = 0) -> Any:
    """The JSON value a Python literal's syntax tree writes: a string, a finite number, a
    boolean, None, a list (or tuple) or a dict with string keys, at most `MAX_NESTING` deep.
    Anything else (names, calls, operators, sets, bytes...) is a ValueError; nothing is evaluated."""
    if depth > MAX_NESTING:
        raise ValueError(f"nested more than {MAX_NESTING} levels deep")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = json_literal(node.operand, depth + 1)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("a sign applies to a number only")
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**MAX_DIGITS:
            raise ValueError(f"an integer of more than {MAX_DIGITS} digits")
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        raise ValueError(f"{type(value).__name__} is not a JSON value")
    if isinstance(node, (ast.List, ast.Tuple)):
        return [json_literal(item, depth + 1) for item in node.elts]
    if isinstance(node, ast.Dict):
        result = {}
        for key, item in zip(node.keys, node.values):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                raise ValueError("the keys of a dict must be strings")
            result[key.value] = json_literal(item, depth + 1)
        return result
    raise ValueError(f"{type(node).__name__} is not a literal")


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
