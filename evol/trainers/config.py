"""Trainer configs: one documented dataclass per trainer, filled from a YAML file, `--set FIELD=VALUE`
and flags, with transformers' `HfArgumentParser` building the command line (as TRL's scripts do).

    config = parse_config(AgentEvolConfig, ["--config", "x.yaml", "--set", "train.epochs=2", "--iterations", "3"])

Every field carries its help in `metadata={"help": ...}`; `config_parser(cls).format_help()` lists each
field with its default (what `evol train NAME --help` prints). Nested settings (`train: TrainSettings`)
take dotted names: `--train.epochs 2`, `--set train.epochs=2`. Later sources win: defaults, the file,
`--set`, flags. HfArgumentParser converts command-line strings; it does not check the values of a file
(`parse_dict` passes them through), so `from_mapping` checks them against the field types here. Every bad
value, unknown field or failed check is a `ConfigError` naming the field, before any work starts.
See docs/architecture.md for where trainers sit.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from transformers import HfArgumentParser

T = TypeVar("T")
_UNSET = object()  # a flag not given on the command line


class ConfigError(ValueError):
    """A config value is missing, unknown or invalid; the message names the field."""


def _type_error(name: str, value: Any, annotation: Any) -> str | None:
    """Why `value` is not of type `annotation` (a field's annotation), or None when it is."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = [_type_error(name, value, option) for option in args if option is not type(None)]
        return None if None in errors else errors[0]
    if origin is typing.Literal:
        return None if value in args else f"{name}: must be one of {list(args)}, got {value!r}"
    if origin is list:
        if not isinstance(value, list):
            return f"{name}: must be a list, got {type(value).__name__}"
        errors = [_type_error(f"{name}[{i}]", item, args[0]) for i, item in enumerate(value)] if args else []
        return next((e for e in errors if e), None)
    if origin is dict:
        return None if isinstance(value, dict) else f"{name}: must be a mapping, got {type(value).__name__}"
    expected = {float: ((int, float), "a number"), int: (int, "an integer"), bool: (bool, "true or false")}
    expected[str] = (str, "a string")
    if annotation in expected:
        kinds, words = expected[annotation]
        if (isinstance(value, bool) and annotation is not bool) or not isinstance(value, kinds):
            return f"{name}: must be {words}, got {value!r}"
    return None


_EXPONENT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _takes_float(annotation: Any) -> bool:
    return annotation is float or float in typing.get_args(annotation)


def from_mapping(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build `cls` from a mapping: unknown keys, wrong types and failed checks name the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping of field names to values")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(fields)}")
    values = {}
    for name, value in data.items():
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: must be a mapping of settings, got {value!r}")
            values[name] = from_mapping(annotation, value, where=f"{where}.{name}")
            continue
        if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()) and _takes_float(annotation):
            value = float(value)  # YAML 1.1 reads `2e-3` (no dot) as a string: it is the number meant
        error = _type_error(name, value, annotation)
        if error:
            raise ConfigError(error)
        number = isinstance(value, int) and not isinstance(value, bool)
        values[name] = (
            float(value) if number and float in (annotation, *typing.get_args(annotation)) else value
        )
    missing = [n for n, f in fields.items() if n not in values and _default(f) is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing required field(s) {missing}")
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from None


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _one_flag_type(annotation: Any) -> bool:
    """Whether HfArgumentParser reads the type from one flag: scalars, Literal, lists, `X | None`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict:
        return False
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return len(options) == 1 and len(args) == 2 and _one_flag_type(options[0])
    return True


def _metavar(annotation: Any) -> str:
    """How a flag's value is shown in the help: INT, FLOAT, STR, BOOL (the item's type for a list)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is not None and args:
        return _metavar(args[0])
    return getattr(annotation, "__name__", "VALUE").upper()


def yaml_value(text: str) -> Any:
    """A command-line value read as YAML (`3`, `true`, `null`, `[a, b]`, `{epochs: 2}`)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"not a YAML value: {error}") from None


class ConfigParser(HfArgumentParser):
    """HfArgumentParser over one config class: `--config FILE`, `--set FIELD=VALUE` and a flag per field
    (dotted for nested settings); a field HfArgumentParser cannot read from one flag (a mapping, a union
    of two types) takes a YAML value. Errors raise `ConfigError` instead of exiting."""

    def __init__(self, config_class: type, **kwargs: Any):
        summary = (config_class.__doc__ or "").strip().splitlines()
        kwargs.setdefault("usage", "%(prog)s [--config FILE] [--set FIELD=VALUE ...] [--FIELD VALUE ...]")
        super().__init__(description=summary[0] if summary else None, **kwargs)
        self.config_class = config_class
        self.field_names: list[str] = []
        self.add_argument(
            "--config",
            metavar="FILE",
            default=argparse.SUPPRESS,
            help="YAML file mapping field names to values",
        )
        self.add_argument(
            "--set",
            action="append",
            default=argparse.SUPPRESS,
            metavar="FIELD=VALUE",
            help="override one field with a YAML value (nested: train.epochs=2)",
        )
        self._add_dataclass_arguments(config_class)

    def error(self, message: str) -> typing.NoReturn:
        raise ConfigError(message)

    def _add_dataclass_arguments(self, dtype: type, prefix: str = "", title: str | None = None) -> None:
        hints = typing.get_type_hints(dtype)
        group = self.add_argument_group(title or f"{dtype.__name__} fields")
        for field in dataclasses.fields(dtype):
            annotation, name = hints[field.name], prefix + field.name
            if dataclasses.is_dataclass(annotation):
                title = f"{name}: {field.metadata.get('help', '')} ({annotation.__name__} fields)"
                self._add_dataclass_arguments(annotation, prefix=f"{name}.", title=title)
            else:
                self._add_field(group, name, annotation, field)

    def _add_field(self, group: Any, name: str, annotation: Any, field: dataclasses.Field) -> None:
        help_text = field.metadata.get("help", "").replace("%", "%%")
        default = _default(field)
        required = default is dataclasses.MISSING
        if required:
            help_text, default = f"{help_text} (required)", None
        before = len(group._group_actions)
        if not _one_flag_type(annotation):
            group.add_argument(f"--{name}", type=yaml_value, default=default, help=help_text, metavar="YAML")
        else:
            metadata = {**field.metadata, "help": help_text}
            if isinstance(default, list):
                copy = dataclasses.field(default_factory=lambda: default, metadata=metadata)
            else:
                copy = dataclasses.field(default=default, metadata=metadata)
            copy.name, copy.type = name, annotation  # a copy: HfArgumentParser rewrites `type`
            HfArgumentParser._parse_dataclass_field(group, copy)
        for action in group._group_actions[before:]:
            action.required = False  # the value may come from the file
            if action.option_strings[0].startswith("--no_"):  # HfArgumentParser's twin of a true bool
                action.help, action.default = f"the same as --{name} false", argparse.SUPPRESS
            elif required:
                action.default = argparse.SUPPRESS
            if action.metavar is None and action.choices is None and action.nargs != 0:
                action.metavar = _metavar(annotation)
        self.field_names.append(name)


def config_parser(cls: type, prog: str | None = None) -> ConfigParser:
    """The command line of config class `cls`: `--config FILE`, `--set FIELD=VALUE` and a flag per field."""
    return ConfigParser(cls, prog=prog)


def parse_config(cls: type[T], args: Sequence[str], prog: str | None = None) -> T:
    """`cls` from a command line (`--config FILE`, `--set FIELD=VALUE`, `--FIELD VALUE`); `--help` exits."""
    parser = config_parser(cls, prog)
    unset = argparse.Namespace(**{name: _UNSET for name in parser.field_names})
    given = parser.parse_args(list(args), namespace=unset)
    path = getattr(given, "config", None)
    data = read_yaml(path) if path else {}
    for item in getattr(given, "set", None) or []:
        name, equals, text = item.partition("=")
        if not equals:
            raise ConfigError(f"--set {item}: write FIELD=VALUE")
        _assign(data, name, yaml.safe_load(text))
    for name in parser.field_names:
        if getattr(given, name) is not _UNSET:
            _assign(data, name, getattr(given, name))
    return from_mapping(cls, data, where=path or "config")


def _assign(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, name = dotted.split(".")
    for parent in parents:
        data = data.setdefault(parent, {})
        if not isinstance(data, dict):
            raise ConfigError(f"{dotted}: {parent} is not a mapping of settings")
    data[name] = value


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of field names to values")
    return data


def load_config(cls: type[T], path: str | Path, overrides: dict[str, Any] | None = None) -> T:
    """Read a YAML file into `cls` (with `overrides`, dotted names allowed, applied on top)."""
    data = read_yaml(path)
    for name, value in (overrides or {}).items():
        _assign(data, name, value)
    return from_mapping(cls, data, where=str(path))


def to_mapping(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_mapping(config), sort_keys=False))
