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
import os
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


def load_ood_toolset(path: str | os.PathLike) -> list[ToolsetRecord]:
    """Every record of an OOD-Toolset file (JSON list or JSON Lines).

    A ValueError names the file by its name alone and the record (or line) at fault: the
    message may reach a client, so it carries no folder of this machine."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise ValueError(f"cannot read the OOD-Toolset file {path.name!r}: {reason}") from None
    if text.lstrip().startswith("["):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path.name!r} is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
            ) from None
    else:
        raw = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    raw.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(
                        f"line {number} of {path.name!r} is not valid JSON ({error.msg} at column {error.colno})"
                    ) from None
    records = []
    for number, item in enumerate(raw):
        try:
            records.append(parse_record(item))
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise ValueError(
                f"record {number} of {path.name!r} is not an OOD-Toolset record ({type(error).__name__}: {error})"
            ) from None
    if not records:
        raise ValueError(f"{path.name!r} holds no records")
    return records
