"""Reading OOD-Toolset records (Self-Demos, He et al. 2024) from local files.

A record is one API with its functions, three demonstrations and a query:

    {"Name": str, "Description": str,
     "Function_Description": {function: "what it does\\nParameters: {json}"},
     "Demonstration": [{"Instruction": str, "Answer": [{"Action": str, "Action_Input": str}]}, ...],
     "Query": {"Instruction": str, "Answer": [{"Action": str, "Action_Input": str}]}}

Each parameter in `Parameters` is described as text, e.g. "Required. string. One of: [sfw,
sketchy]. Purity level."; we read `Required`, the type and `One of` into a `ToolSpec` so
that calls can be checked. A function whose parameters do not parse accepts any object.
Files: a JSON list of records, or JSON Lines with one record a line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from envs.tools.calls import Call
from envs.tools.schema import TYPES, Param, ToolSpec

TYPE_ALIASES = {
    "str": "string", "int": "integer", "float": "number", "double": "number", "bool": "boolean",
    "list": "array", "dict": "object", "date": "string", "datetime": "string",
}  # fmt: skip
ONE_OF = re.compile(r"one of\s*:?\s*\[([^\]]*)\]", re.IGNORECASE)


@dataclass(frozen=True)
class ToolsetRecord:
    """One OOD-Toolset instance, read: the API, its tools, the demonstrations and the query."""

    name: str
    description: str
    tools: tuple[ToolSpec, ...]
    demonstrations: tuple[dict[str, Any], ...]  # {"query", "calls": [{"name", "arguments"}]}
    query: str
    gold_calls: tuple[Call, ...]


def parse_parameter(name: str, text: Any) -> Param:
    """A parameter from OOD-Toolset's description ("Required. integer. The year.")."""
    if not isinstance(text, str):
        return Param(name, "", json.dumps(text), required=False)
    pieces = [piece.strip() for piece in text.split(".")]
    required = bool(pieces) and pieces[0].lower() == "required"
    if required:
        pieces = pieces[1:]
    kind = ""
    if pieces:
        word = pieces[0].lower()
        word = TYPE_ALIASES.get(word, word)
        if word in TYPES:
            kind = word
    enum = None
    one_of = ONE_OF.search(text)
    if one_of and kind == "string":
        enum = tuple(v.strip().strip("'\"") for v in one_of.group(1).split(",") if v.strip())
    return Param(name, kind, text.strip(), required=required, enum=enum or None)


def parse_function(name: str, text: str, api: str) -> ToolSpec:
    description, _, parameters = str(text).partition("Parameters:")
    description = description.strip()
    try:
        declared = json.loads(parameters) if parameters.strip() else {}
    except json.JSONDecodeError:
        declared = None
    if not isinstance(declared, dict):
        return ToolSpec(name, str(text).strip(), (), api=api, open_params=True)
    params = tuple(parse_parameter(key, value) for key, value in declared.items())
    return ToolSpec(name, description, params, api=api)


def parse_answer(answer: Any) -> list[Call]:
    """`[{"Action", "Action_Input"}]` as calls (Action_Input is a JSON string or an object)."""
    calls = []
    for step in answer or []:
        arguments = step.get("Action_Input", {})
        if isinstance(arguments, str):
            arguments = json.loads(arguments) if arguments.strip() else {}
        calls.append(Call(str(step["Action"]), arguments))
    return calls


def parse_record(record: dict[str, Any]) -> ToolsetRecord:
    name = str(record["Name"])
    tools = tuple(
        parse_function(fn, text, name) for fn, text in (record.get("Function_Description") or {}).items()
    )
    demos = tuple(
        {"query": demo["Instruction"], "calls": [c.as_dict() for c in parse_answer(demo.get("Answer"))]}
        for demo in record.get("Demonstration") or []
    )
    query = record["Query"]
    gold = tuple(parse_answer(query.get("Answer")))
    return ToolsetRecord(
        name=name,
        description=str(record.get("Description", "")),
        tools=_agreeing_with(tools, [*gold, *(Call(**c) for d in demos for c in d["calls"])], name),
        demonstrations=demos,
        query=str(query["Instruction"]),
        gold_calls=gold,
    )


def _agreeing_with(tools: tuple[ToolSpec, ...], calls: list[Call], api: str) -> tuple[ToolSpec, ...]:
    """The tools, with those the record's own calls break (or lack) made to accept any arguments.

    Hand-written records sometimes disagree with their descriptions (an "integer" passed
    as "20"); the record's answers win, so that its gold calls are always valid.
    """
    by_name = {tool.name: tool for tool in tools}
    for call in calls:
        tool = by_name.get(call.name)
        if tool is None:
            by_name[call.name] = ToolSpec(
                call.name, "(not described in the record)", (), api=api, open_params=True
            )
        elif tool.validate(call.arguments)[1]:
            by_name[call.name] = replace(tool, open_params=True)
    return tuple(by_name.values())


def load_ood_toolset(path: str | Path) -> list[ToolsetRecord]:
    """Every record of an OOD-Toolset file (JSON list or JSON Lines); errors name the record."""
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        raw = json.loads(text)
    else:
        raw = [json.loads(line) for line in text.splitlines() if line.strip()]
    records = []
    for number, item in enumerate(raw):
        try:
            records.append(parse_record(item))
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: record {number} is not an OOD-Toolset record ({error!r})") from None
    if not records:
        raise ValueError(f"{path} holds no records")
    return records
