"""What several commands share: error exits, env-id and JSON-argument checks, number types."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import envs

USAGE_ERROR = 2  # the exit code of a command refused before any work started


def refuse(message: str) -> int:
    """Print `evol: message` to stderr; the exit code of a refused command."""
    print(f"evol: {message}", file=sys.stderr)
    return USAGE_ERROR


def unknown_env(env_ids: list[str]) -> str | None:
    """The error message for the first id that names no registered env, or None."""
    for env_id in env_ids:
        try:
            envs.env_class(env_id)
        except KeyError as error:
            return error.args[0]
    return None


def parse_env_kwargs(text: str | None, env_ids: list[str]) -> dict[str, dict[str, Any]]:
    """`--env-kwargs` JSON: {env_id: {kwarg: value}} for the given env ids (a ValueError says what is wrong)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--env-kwargs is not JSON: {error}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError('--env-kwargs wants {"ENV_ID": {"kwarg": value}}')
    unknown = sorted(set(value) - set(env_ids))
    if unknown:
        raise ValueError(f"--env-kwargs names env(s) not in this command: {unknown}")
    return value


def parse_options(text: str | None) -> dict[str, Any] | None:
    """`--options` JSON: reset options."""
    if text is None:
        return None
    options = json.loads(text)
    if not isinstance(options, dict):
        raise ValueError("--options must be a JSON object")
    return options


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {text}")
    return value
