"""Declared parameters: the constructor kwargs and reset options of an env, with their bounds.

Every env declares `kwarg_params` and `option_params`, dicts of `Param` next to the code
that uses them. `check_params` validates a mapping against such a declaration (an env's
constructor and `reset` do, and the server does before it builds or resets an env), and
`params_schema` writes the declaration as JSON Schema (`GET /envs`, the OpenAPI document).
One declaration, so the bound in the error, in the schema and in the code is the same.

    kwarg_params = {
        "num_products": Param("int", default=5000, minimum=10, maximum=20_000, help="catalogue size"),
        "data": Param("object", server_only=True, help="a local file"),
    }

Every numeric, text, list and mapping parameter has an upper bound (a `Param` without one
is refused when it is declared): what a client chooses cannot grow without limit.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.errors import ParamError

KINDS = ("int", "float", "bool", "str", "list", "dict", "object")
JSON_TYPES = {
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "str": "string",
    "list": "array",
    "dict": "object",
}
MAX_SHOWN = 60  # characters of a refused value quoted in an error message
MAX_CHOICES_SHOWN = 12  # choices listed in an error message (the schema lists them all)


@dataclass(frozen=True)
class Param:
    """One constructor kwarg or reset option: its kind and its bounds.

    - `kind`: "int", "float" (ints too), "bool", "str", "list", "dict", or "object" (any
      Python value locally, from a client only one of `choices`); a tuple of kinds accepts any.
      A bool is never an int and a number written as a string is not a number.
    - `default`: the value when absent; with None, None may also be given ("use the default").
    - `minimum`, `maximum`: inclusive bounds of a number (`exclusive_maximum`: below `maximum`).
    - `choices`: the allowed values. `max_length`: the most characters of a str, items of
      a list, entries of a dict. `items`: the Param of each list item or dict value;
      `keys`: the allowed dict keys. `of`: the Python type(s) an "object" must have locally.
    - `server_only`: set by whoever runs the server (files, Python objects), never by a client.
    """

    kind: str | tuple[str, ...]
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_maximum: bool = False
    choices: tuple[Any, ...] | None = None
    max_length: int | None = None
    items: Param | None = None
    keys: tuple[str, ...] | None = None
    of: type | tuple[type, ...] | None = field(default=None, compare=False)
    server_only: bool = False
    help: str = ""

    def __post_init__(self) -> None:
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.keys is not None:
            object.__setattr__(self, "keys", tuple(self.keys))
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown:
            raise ValueError(f"unknown Param kind(s) {unknown}; known: {list(KINDS)}")
        if self.server_only or self.choices is not None:
            return
        for kind in self.kinds:
            if kind in ("int", "float") and self.maximum is None:
                raise ValueError(f"a {kind} Param that a client can set needs a maximum")
            if (
                kind in ("str", "list", "dict")
                and self.max_length is None
                and not (kind == "dict" and self.keys is not None)
            ):
                raise ValueError(f"a {kind} Param that a client can set needs a max_length")
            if kind in ("list", "dict") and self.items is None:
                raise ValueError(f"a {kind} Param needs `items` (the Param of each item)")

    @property
    def kinds(self) -> tuple[str, ...]:
        return (self.kind,) if isinstance(self.kind, str) else tuple(self.kind)

    @property
    def nullable(self) -> bool:
        return self.default is None


def task_param(count: int | Mapping[str, int], help: str = "") -> Param:
    """The `task` option of an env with `count` tasks (or a mapping of split to task count)."""
    if isinstance(count, Mapping):
        splits = ", ".join(f"{n:,} in {split}" for split, n in count.items())
        return task_param(max(count.values()), help or f"task index (below {splits})")
    return Param("int", minimum=0, maximum=count - 1, help=help or f"task index (below {count:,})")


def choice_param(choices: tuple | list, default: Any = None, help: str = "") -> Param:
    """A string that must be one of `choices`."""
    return Param("str", default=default, choices=tuple(choices), help=help)


# ---- checking -----------------------------------------------------------------------------
def check_params(
    params: Mapping[str, Param],
    values: Mapping[str, Any] | None,
    what: str = "kwarg",
    *,
    owner: str = "",
    from_client: bool = False,
    error: type[ParamError] = ParamError,
) -> dict[str, Any]:
    """`values` checked against `params`: unknown keys, wrong types and values out of range raise
    `error` (a `ParamError`) naming the key, what was expected and what was given.

    `what` names the mapping ("kwarg" or "option"; options are shown as `options.key`),
    `owner` the env. With `from_client`, `server_only` keys are refused and "object"
    params accept only their `choices`. Returns the values with numbers as Python numbers
    and sequences as lists.
    """
    if values is None:
        return {}
    prefix = f"{owner}: " if owner else ""
    if not isinstance(values, Mapping):
        raise error(f"{prefix}the {what}s must be a mapping, got {_shown(values, with_type=True)}")
    unknown = [key for key in values if key not in params]
    if unknown:
        known = [key for key, param in params.items() if not (from_client and param.server_only)]
        names = sorted(
            _shown(key) if not isinstance(key, str) or len(key) > MAX_SHOWN else key for key in unknown
        )
        more = f" and {len(names) - MAX_CHOICES_SHOWN} more" if len(names) > MAX_CHOICES_SHOWN else ""
        raise error(f"{prefix}unknown {what}(s) {names[:MAX_CHOICES_SHOWN]}{more}; known: {known}")
    checked = {}
    for key, value in values.items():
        param = params[key]
        label = f"{prefix}{'options.' if what == 'option' else ''}{key}"
        if from_client and param.server_only:
            raise error(f"{label} is set by the server only (evol serve --env-kwargs), not by a client")
        checked[key] = _check(param, value, label, from_client, error)
    return checked


def _check(
    param: Param, value: Any, label: str, from_client: bool, error: type[ParamError], item: bool = False
) -> Any:
    if value is None:
        if param.nullable and not item:  # None means "the default", which an item has not
            return None
        raise error(f"{label} must be {expected(param, from_client)}, got None")
    for kind in param.kinds:
        if _is_kind(kind, value):
            return _check_kind(param, kind, value, label, from_client, error)
    raise error(f"{label} must be {expected(param, from_client)}, got {_shown(value, with_type=True)}")


def _is_kind(kind: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return kind in ("bool", "object")
    if kind == "int":
        return isinstance(value, (int, np.integer))
    if kind == "float":
        return isinstance(value, (int, float, np.integer, np.floating))
    if kind == "str":
        return isinstance(value, str)
    if kind == "list":
        return isinstance(value, (list, tuple))
    if kind == "dict":
        return isinstance(value, Mapping)
    return kind == "object"


def _check_kind(
    param: Param, kind: str, value: Any, label: str, from_client: bool, error: type[ParamError]
) -> Any:
    def refuse() -> ParamError:
        return error(f"{label} must be {expected(param, from_client)}, got {_shown(value)}")

    if kind in ("int", "float"):
        try:
            number = int(value) if kind == "int" else float(value)
        except OverflowError:  # an int too big for a float
            raise refuse() from None
        if isinstance(number, float) and not math.isfinite(number):
            raise refuse()
        too_high = param.maximum is not None and (
            number >= param.maximum if param.exclusive_maximum else number > param.maximum
        )
        if (param.minimum is not None and number < param.minimum) or too_high:
            raise refuse()
        if param.choices is not None and number not in param.choices:
            raise refuse()
        return number
    if kind == "bool":
        return bool(value)
    if kind == "str":
        if param.max_length is not None and len(value) > param.max_length:
            raise refuse()
        if param.choices is not None and value not in param.choices:
            raise refuse()
        return value
    if kind == "list":
        if param.max_length is not None and len(value) > param.max_length:
            raise refuse()
        return [
            _check(param.items, item, f"{label}[{i}]", from_client, error, item=True)
            for i, item in enumerate(value)
        ]
    if kind == "dict":
        if param.max_length is not None and len(value) > param.max_length:
            raise refuse()
        checked = {}
        for key, item in value.items():
            if not isinstance(key, str) or (param.keys is not None and key not in param.keys):
                raise refuse()
            checked[key] = _check(param.items, item, f"{label}[{key!r}]", from_client, error, item=True)
        return checked
    # "object": anything locally (of its type), from a client one of the choices only
    if _in_choices(param, value):
        return value
    if from_client or (param.of is not None and not isinstance(value, param.of)):
        raise refuse()
    return value


def _in_choices(param: Param, value: Any) -> bool:
    try:
        return param.choices is not None and value in param.choices
    except TypeError:  # an unhashable or incomparable value
        return False


def expected(param: Param, from_client: bool = True) -> str:
    """What `param` accepts, in words (for error messages and help)."""
    parts = [_expected_kind(param, kind, from_client) for kind in param.kinds]
    return " or ".join(part for part in parts if part) or "absent"


def _expected_kind(param: Param, kind: str, from_client: bool) -> str:
    if param.choices is not None and kind in ("int", "float", "str", "object"):
        return _one_of(param.choices) + ("" if from_client or kind != "object" else " or an object")
    if kind in ("int", "float"):
        noun = "an integer" if kind == "int" else "a number"
        low = "-inf" if param.minimum is None else _number(param.minimum)
        high = "inf" if param.maximum is None else _number(param.maximum)
        return f"{noun} in [{low}, {high}{')' if param.exclusive_maximum else ']'}"
    if kind == "bool":
        return "true or false"
    if kind == "str":
        return "a string" + (f" of at most {param.max_length:,} characters" if param.max_length else "")
    if kind == "list":
        size = f" of at most {param.max_length:,} items" if param.max_length is not None else ""
        return f"a list{size}, each {expected(param.items, from_client)}"
    if kind == "dict":
        keys = f" from {list(param.keys)}" if param.keys is not None else ""
        return f"a mapping of keys{keys} to {expected(param.items, from_client)}"
    if from_client:
        return ""
    of = param.of if isinstance(param.of, tuple) else (param.of,) if param.of is not None else ()
    return " or ".join(f"a {t.__name__}" for t in of) or "an object"


def _one_of(choices: tuple[Any, ...]) -> str:
    if len(choices) <= MAX_CHOICES_SHOWN:
        return f"one of {list(choices)}"
    shown = ", ".join(map(repr, choices[:MAX_CHOICES_SHOWN]))
    return f"one of the {len(choices)} values [{shown}, ...] (see the env's schema)"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()  # a huge or deeply nested value is not written out in full
    short.maxlevel, short.maxlist, short.maxtuple, short.maxdict = 3, 8, 8, 8
    short.maxstring = short.maxother = short.maxlong = MAX_SHOWN
    return short


SHORT_REPR = _short_repr()


def _shown(value: Any, with_type: bool = False) -> str:
    try:
        text = SHORT_REPR.repr(value)
    except (ValueError, RecursionError):  # say, an int of more digits than Python will print
        text = f"<{type(value).__name__} too large to show>"
    if len(text) > MAX_SHOWN:
        text = text[: MAX_SHOWN - 3] + "..."
    return f"{text} ({type(value).__name__})" if with_type else text


# ---- JSON Schema --------------------------------------------------------------------------
def params_schema(params: Mapping[str, Param], include_server_only: bool = False) -> dict[str, Any]:
    """The JSON Schema of a mapping of `params` (what a client may send, unless `include_server_only`)."""
    return {
        "type": "object",
        "properties": {
            key: param_schema(param)
            for key, param in params.items()
            if include_server_only or not param.server_only
        },
        "additionalProperties": False,
    }


def param_schema(param: Param, item: bool = False) -> dict[str, Any]:
    """The JSON Schema of one `Param` (of a list item or dict value with `item`), as a client may send it."""
    schemas = [_kind_schema(param, kind) for kind in param.kinds]
    schemas = [schema for schema in schemas if schema is not None]
    nullable = param.nullable and not item
    if len(schemas) == 1:
        schema = _with_null(schemas[0]) if nullable else schemas[0]
    elif schemas:
        schema = {"anyOf": schemas + ([{"type": "null"}] if nullable else [])}
    else:
        schema = {"type": "null"} if nullable else {"not": {}}
    if param.default is not None and _is_json(param.default):
        schema["default"] = list(param.default) if isinstance(param.default, tuple) else param.default
    if param.help:
        schema["description"] = param.help
    return schema


def _kind_schema(param: Param, kind: str) -> dict[str, Any] | None:
    if kind == "object":
        return None if param.choices is None else {"enum": list(param.choices)}
    schema: dict[str, Any] = {"type": JSON_TYPES[kind]}
    if kind in ("int", "float"):
        if param.minimum is not None:
            schema["minimum"] = param.minimum
        if param.maximum is not None:
            schema["exclusiveMaximum" if param.exclusive_maximum else "maximum"] = param.maximum
    if kind in ("int", "float", "str") and param.choices is not None:
        schema["enum"] = list(param.choices)
    if kind == "str" and param.max_length is not None:
        schema["maxLength"] = param.max_length
    if kind == "list":
        schema["items"] = param_schema(param.items, item=True)
        if param.max_length is not None:
            schema["maxItems"] = param.max_length
    if kind == "dict":
        schema["additionalProperties"] = param_schema(param.items, item=True)
        if param.keys is not None:
            schema["propertyNames"] = {"enum": list(param.keys)}
        if param.max_length is not None:
            schema["maxProperties"] = param.max_length
    return schema


def _with_null(schema: dict[str, Any]) -> dict[str, Any]:
    schema = dict(schema)
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    if "type" in schema:
        schema["type"] = [schema["type"], "null"]
    return schema


def _is_json(value: Any) -> bool:
    if isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return False
