"""Tool specifications: parameters with types, enums, ranges, formats and units.

A `ToolSpec` is one function an agent can call. It validates a call's arguments with an
error that names exactly what is wrong (`validate_arguments`), exports itself as an
OpenAI function-calling schema (`openai_tool`) and renders its documentation for the
observation (`render_doc`).
"""

from __future__ import annotations

import datetime
import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TYPES = ("string", "integer", "number", "boolean", "array", "object")
FORMATS = {
    "date": (re.compile(r"\d{4}-\d{2}-\d{2}"), "a date as YYYY-MM-DD"),
    "time": (re.compile(r"([01]\d|2[0-3]):[0-5]\d"), "a time as HH:MM (24-hour)"),
}
# A number written with a unit, e.g. "200 EUR", "12.5km".
# Spaces after the sign or `$` only: `\s*[-+]?\$?\s*` splits a run of spaces every way (quadratic).
NUMBER_WITH_UNIT = re.compile(r"\s*(?:[-+]\$?\s*|\$\s*)?(\d[\d,]*(?:\.\d+)?)\s*([A-Za-z°$€£¥][\w/°]*)\s*")


class ToolError(ValueError):
    """A call the tool cannot serve (an unknown id, an impossible request): the message says why."""


@dataclass(frozen=True)
class Param:
    """One argument of a tool.

    `type` is a JSON type (or "" for any value); `unit` is the unit a number is in
    ("USD", "km", "minutes") or, for an enum of units, what kind of unit it names
    ("temperature unit"); `format` is "date" or "time" for strings.
    """

    name: str
    type: str
    description: str
    required: bool = True
    enum: tuple[Any, ...] | None = None
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    format: str | None = None
    unit: str | None = None

    def about(self) -> str:
        """What the argument is: 'the city; one of "Paris", "London"', with its format, unit and range."""
        text = self.description
        if self.format in FORMATS:
            text += f", {FORMATS[self.format][1]}"
        if self.unit and not self.enum:
            text += f", in {self.unit}"
        if self.enum:
            text += "; one of " + ", ".join(json.dumps(v) for v in self.enum)
        if self.minimum is not None and self.maximum is not None:
            text += f"; from {_number(self.minimum)} to {_number(self.maximum)}"
        return text

    def doc_line(self) -> str:
        """'city (string, required): the city; ...' as the tool docs list it."""
        status = "required" if self.required else "optional"
        if not self.required and self.default is not None:
            status += f", default {json.dumps(self.default)}"
        return f"{self.name} ({self.type or 'any type'}, {status}): {self.about()}"


@dataclass(frozen=True)
class ToolSpec:
    """One function: its name, what it does, its parameters, and the API it belongs to.

    `check` sees the validated arguments and returns an error message for a problem that
    involves several arguments (e.g. converting km to kg), or None. `open_params` marks a
    loaded tool whose parameters could not be read: any JSON object is accepted.
    """

    name: str
    description: str
    params: tuple[Param, ...] = ()
    api: str = ""
    check: Callable[[dict[str, Any]], str | None] | None = field(default=None, compare=False)
    open_params: bool = False

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def validate(self, arguments: Any) -> tuple[dict[str, Any], list[str]]:
        """The arguments with defaults filled in, and every problem found (empty when valid)."""
        if not isinstance(arguments, dict):
            return {}, [f"the arguments must be a JSON object, got {json_type(arguments)}"]
        if self.open_params:
            return dict(arguments), []
        problems: list[str] = []
        names = [p.name for p in self.params]
        for key in arguments:
            if key not in names:
                takes = ", ".join(names) if names else "no arguments"
                hint = difflib.get_close_matches(str(key), names, n=1)
                extra = f"; did you mean '{hint[0]}'?" if hint else ""
                problems.append(f"unexpected argument '{key}' ({self.name} takes {takes}){extra}")
        clean: dict[str, Any] = {}
        for param in self.params:
            if param.name not in arguments or (arguments[param.name] is None and not param.required):
                if param.required:
                    problems.append(
                        f"missing required argument '{param.name}' ({param.type or 'any type'}: {param.about()})"
                    )
                elif param.default is not None:
                    clean[param.name] = param.default
                continue
            value, problem = check_value(param, arguments[param.name])
            if problem:
                problems.append(problem)
            else:
                clean[param.name] = value
        if not problems and self.check is not None:
            problem = self.check(clean)
            if problem:
                problems.append(problem)
        return clean, problems

    def openai_tool(self) -> dict[str, Any]:
        """This tool in OpenAI's function-calling form (`{"type": "function", "function": {...}}`)."""
        properties: dict[str, Any] = {}
        for p in self.params:
            prop: dict[str, Any] = {}
            if p.type:
                prop["type"] = p.type
            description = p.description + (f" (in {p.unit})" if p.unit and not p.enum else "")
            if p.format in FORMATS:
                description += f" ({FORMATS[p.format][1]})"
            prop["description"] = description
            if p.enum:
                prop["enum"] = list(p.enum)
            if p.minimum is not None:
                prop["minimum"] = p.minimum
            if p.maximum is not None:
                prop["maximum"] = p.maximum
            if p.format == "date":
                prop["format"] = "date"
            elif p.format in FORMATS:
                prop["pattern"] = "^" + FORMATS[p.format][0].pattern + "$"
            if p.default is not None:
                prop["default"] = p.default
            properties[p.name] = prop
        parameters: dict[str, Any] = {"type": "object", "properties": properties}
        parameters["required"] = [p.name for p in self.params if p.required]
        if not self.open_params:
            parameters["additionalProperties"] = False
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": parameters},
        }

    def render_doc(self) -> str:
        """The tool as the observation documents it: signature line, then one line per parameter."""
        lines = [f"{self.name}: {self.description}"]
        if not self.params:
            lines.append("  Parameters: any, as described" if self.open_params else "  Parameters: none")
        for p in self.params:
            lines.append(f"  - {p.doc_line()}")
        return "\n".join(lines)


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value ("null", "boolean", "integer", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def check_value(param: Param, value: Any) -> tuple[Any, str | None]:
    """(value, None) when `value` suits `param` (integral floats become ints), else (None, why)."""
    label = f"argument '{param.name}'"
    shown = (
        json.dumps(value) if isinstance(value, (str, int, float, bool)) or value is None else json_type(value)
    )
    kind = param.type
    if kind in ("number", "integer") and isinstance(value, str):
        with_unit = NUMBER_WITH_UNIT.fullmatch(value)
        if with_unit:
            number, unit = with_unit.group(1).replace(",", ""), with_unit.group(2)
            if param.unit and unit.lower() != param.unit.lower():
                return None, (
                    f"{label} is a number in {param.unit}, got {shown}, a value in {unit}: "
                    f"convert it to {param.unit} and pass the number alone"
                )
            return None, f"{label} must be a plain {kind}, got {shown}: pass {number} without a unit"
    if kind == "integer":
        if isinstance(value, float) and not isinstance(value, bool) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"{label} must be an integer, got {json_type(value)} {shown}"
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, f"{label} must be a number, got {json_type(value)} {shown}"
    elif kind == "string":
        if not isinstance(value, str):
            return None, f"{label} must be a string, got {json_type(value)} {shown}"
    elif kind == "boolean":
        if not isinstance(value, bool):
            return None, f"{label} must be a boolean (true or false), got {json_type(value)} {shown}"
    elif kind == "array":
        if not isinstance(value, list):
            return None, f"{label} must be an array, got {json_type(value)} {shown}"
    elif kind == "object" and not isinstance(value, dict):
        return None, f"{label} must be an object, got {json_type(value)} {shown}"
    if param.enum is not None and value not in param.enum:
        allowed = ", ".join(json.dumps(v) for v in param.enum)
        what = f"a {param.unit} this tool accepts" if param.unit else "one of"
        if param.unit:
            return None, f"{label} must be {what}: {allowed}; got {shown}"
        close = difflib.get_close_matches(str(value), [str(v) for v in param.enum], n=1)
        hint = f" (did you mean {json.dumps(close[0])}?)" if close else ""
        return None, f"{label} must be one of {allowed}; got {shown}{hint}"
    if (
        param.minimum is not None
        and value < param.minimum
        or param.maximum is not None
        and value > param.maximum
    ):
        return (
            None,
            f"{label} must be between {_number(param.minimum)} and {_number(param.maximum)}, got {shown}",
        )
    if param.format in FORMATS:
        pattern, described = FORMATS[param.format]
        if not pattern.fullmatch(value) or (param.format == "date" and not _real_date(value)):
            return None, f"{label} must be {described}, got {shown}"
    return value, None


def _real_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _number(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else str(value)


def render_docs(specs: list[ToolSpec], api_descriptions: dict[str, str]) -> str:
    """The tools section of an observation: specs grouped by API, each API with its description."""
    blocks: list[str] = []
    current = None
    for spec in specs:
        if spec.api != current:
            current = spec.api
            about = api_descriptions.get(spec.api, "")
            blocks.append(f"### {spec.api}" + (f": {about}" if about else ""))
        blocks.append(spec.render_doc())
    return "\n".join(blocks)
