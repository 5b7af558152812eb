"""Tool calls and JSON in a local model's replies: the formats chat templates use for tool
calls, reading calls back out of a reply, and the grammars that hold a reply to a format.

A chat template that supports tools (transformers' `apply_chat_template(..., tools=...)`)
teaches the model one way to write a call. Two are read here:

| format | a call in the reply | templates |
|---|---|---|
| `hermes` | `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>` | Qwen2.5/3, Hermes, `agents.tiny` |
| `llama` | `{"name": ..., "parameters": {...}}` | Llama 3.1/3.2 |

`Constraint` says what a reply must be: any JSON object, JSON matching a schema, or tool
calls (`tool_choice` "auto": text, and any call the model starts matches its tool's
schema; "required": one or more calls and nothing else; a named function: one call of
it). `GrammarCache` compiles a constraint to an xgrammar grammar for a tokenizer.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

# Consecutive whitespace characters a constrained reply may write: pretty-printed JSON fits,
# and a model that keeps choosing whitespace cannot run on without writing the value.
MAX_WHITESPACE = 16


@dataclass(frozen=True)
class ToolCallFormat:
    """How a template's model writes a call: `begin(name)` + JSON arguments + `end`."""

    name: str
    trigger: str  # text that starts a call (held back from a streamed reply until it is read)
    arguments_key: str  # the key of the arguments in the call's JSON object

    def begin(self, function: str) -> str:
        head = '<tool_call>\n{"name": ' if self.name == "hermes" else '{"name": '
        return f'{head}{json.dumps(function)}, "{self.arguments_key}": '

    @property
    def end(self) -> str:
        return "}\n</tool_call>" if self.name == "hermes" else "}"


HERMES = ToolCallFormat("hermes", trigger="<tool_call>", arguments_key="arguments")
LLAMA = ToolCallFormat("llama", trigger='{"name"', arguments_key="parameters")
FORMATS = {f.name: f for f in (HERMES, LLAMA)}

PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "probe_function_name",
        "description": "probe",
        "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
    },
}


def detect_tool_format(without_tools: str, with_tools: str) -> ToolCallFormat | None:
    """The call format a template teaches, from one prompt rendered without and with `PROBE_TOOL`.

    None when the tools do not reach the prompt (the template has no tool support) or the
    template writes calls in a format not read here."""
    if with_tools == without_tools or PROBE_TOOL["function"]["name"] not in with_tools:
        return None
    if "<tool_call>" in with_tools:
        return HERMES
    if '"parameters"' in with_tools and '"name"' in with_tools:
        return LLAMA
    return None


# ---- reading calls ----------------------------------------------------------------------
@dataclass
class ParsedReply:
    """A reply split into its text (`content`, None when there is none) and its tool calls."""

    content: str | None
    calls: list[dict[str, Any]] = field(default_factory=list)  # {"name": str, "arguments": dict}


_DECODER = json.JSONDecoder()
_HERMES_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL)


def _call(value: Any, fmt: ToolCallFormat, names: set[str]) -> dict[str, Any] | None:
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get(fmt.arguments_key, value.get("arguments", value.get("parameters", {})))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return {"name": value["name"], "arguments": arguments}


def parse_tool_calls(text: str, fmt: ToolCallFormat, names: set[str]) -> ParsedReply:
    """The calls of `names` written in `fmt` in `text`, and the text around them.

    A block that is not a call of a known tool with JSON-object arguments stays in the text."""
    calls: list[dict[str, Any]] = []
    kept: list[str] = []
    position = 0
    if fmt is HERMES:
        for match in _HERMES_BLOCK.finditer(text):
            try:
                value, end = _DECODER.raw_decode(match.group(1))
            except ValueError:
                continue
            call = _call(value, fmt, names) if not match.group(1)[end:].strip() else None
            if call is not None:
                calls.append(call)
                kept.append(text[position : match.start()])
                position = match.end()
    else:
        index = text.find("{")
        while index >= 0:
            try:
                value, end = _DECODER.raw_decode(text, index)
            except ValueError:
                index = text.find("{", index + 1)
                continue
            call = _call(value, fmt, names)
            if call is not None:
                calls.append(call)
                kept.append(text[position:index])
                position = end
            index = text.find("{", end)  # past this value: a call nested in other JSON is not one
    kept.append(text[position:])
    content = "".join(kept).strip() if calls else text
    if calls:
        content = content.strip(";").strip()  # Llama separates several calls with ';'
    return ParsedReply(content or None, calls)


def held_back(text: str, markers: list[str]) -> int:
    """How much of `text` may be shown before the whole reply is read: up to the first
    marker, and short of a tail that could still become one."""
    cut = len(text)
    for marker in markers:
        if not marker:
            continue
        found = text.find(marker)
        if found >= 0:
            cut = min(cut, found)
            continue
        for size in range(min(len(marker) - 1, len(text)), 0, -1):
            if text.endswith(marker[:size]):
                cut = min(cut, len(text) - size)
                break
    return cut


# ---- constraints and their grammars ------------------------------------------------------
@dataclass(frozen=True)
class Constraint:
    """What a reply must be.

    `kind` "json_object": a JSON object; "json_schema": JSON matching `schema`; "tools":
    calls of `tools` written in `fmt`, as `choice` says ("auto", "required" or a function's
    name), several in a row unless `parallel` is False.
    """

    kind: str
    schema: str = ""  # the JSON schema, as JSON text (hashable)
    tools: str = ""  # the OpenAI tools list, as JSON text
    fmt: str = ""
    choice: str = "auto"
    parallel: bool = True

    @staticmethod
    def json_object() -> Constraint:
        return Constraint("json_object")

    @staticmethod
    def json_schema(schema: dict[str, Any]) -> Constraint:
        return Constraint("json_schema", schema=json.dumps(schema))  # key order kept: it orders properties

    @staticmethod
    def tool_calls(
        tools: list[dict[str, Any]], fmt: ToolCallFormat, choice: str = "auto", parallel: bool = True
    ) -> Constraint:
        return Constraint("tools", tools=json.dumps(tools), fmt=fmt.name, choice=choice, parallel=parallel)


def _schema_format(schema: Any) -> Any:
    from xgrammar.structural_tag import JSONSchemaFormat

    return JSONSchemaFormat(json_schema=schema, max_whitespace_cnt=MAX_WHITESPACE)


def structural_format(constraint: Constraint) -> Any:
    """The xgrammar structural-tag format of `constraint`."""
    from xgrammar.structural_tag import TagFormat, TagsWithSeparatorFormat, TriggeredTagsFormat

    if constraint.kind == "json_object":
        return _schema_format({"type": "object"})
    if constraint.kind == "json_schema":
        return _schema_format(json.loads(constraint.schema))
    if constraint.kind != "tools":
        raise ValueError(f"unknown constraint kind {constraint.kind!r}")
    fmt = FORMATS[constraint.fmt]
    tags = []
    for tool in json.loads(constraint.tools):
        function = tool["function"]
        if constraint.choice in ("auto", "required") or function["name"] == constraint.choice:
            parameters = function.get("parameters") or {"type": "object", "properties": {}}
            tags.append(
                TagFormat(begin=fmt.begin(function["name"]), content=_schema_format(parameters), end=fmt.end)
            )
    if not tags:
        raise ValueError(f"no tool named {constraint.choice!r}")
    if constraint.choice == "auto":
        return TriggeredTagsFormat(
            triggers=[fmt.trigger], tags=tags, stop_after_first=not constraint.parallel
        )
    # Calls only, from the reply's first character: at least one, one alone for a named function.
    single = not constraint.parallel or constraint.choice != "required"
    return TagsWithSeparatorFormat(tags=tags, separator="\n", at_least_one=True, stop_after_first=single)


_XGRAMMAR_LOCATION = re.compile(r"^\[[^\]]*\]\s*\S+:\d+:\s*")


def grammar_error(error: Exception) -> str:
    """xgrammar's message without its source location."""
    return _XGRAMMAR_LOCATION.sub("", str(error).strip()).strip() or type(error).__name__


class GrammarCache:
    """Constraints compiled for one tokenizer (xgrammar), the most recent `capacity` kept."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_token_ids: list[int], capacity: int = 64):
        import xgrammar

        self.info = xgrammar.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=stop_token_ids
        )
        self.compiler = xgrammar.GrammarCompiler(self.info, max_threads=2)
        self.capacity = capacity
        self.entries: OrderedDict[Constraint, Any] = OrderedDict()
        self.lock = threading.Lock()

    def compile(self, constraint: Constraint) -> Any:
        """The compiled grammar; ValueError (xgrammar's message) for a schema it cannot compile."""
        from xgrammar.structural_tag import StructuralTag

        with self.lock:
            if constraint in self.entries:
                self.entries.move_to_end(constraint)
                return self.entries[constraint]
        try:
            grammar = self.compiler.compile_structural_tag(
                StructuralTag(format=structural_format(constraint))
            )
        except (RuntimeError, ValueError, TypeError) as error:  # pydantic's ValidationError is a ValueError
            raise ValueError(grammar_error(error)) from None
        with self.lock:
            self.entries[constraint] = grammar
            while len(self.entries) > self.capacity:
                self.entries.popitem(last=False)
        return grammar

    def matcher(self, constraint: Constraint) -> Any:
        import xgrammar

        return xgrammar.GrammarMatcher(self.compile(constraint))

    def token_bytes(self, token: int) -> bytes:
        vocab = self.info.decoded_vocab
        return vocab[token] if 0 <= token < len(vocab) else b""
