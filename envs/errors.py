"""Errors raised by environments for misuse of the episode protocol or bad parameters.

An invalid *action* is never an error (the observation says what was wrong). Calls made
out of order raise an `EpisodeStateError` (the server answers 409); constructor kwargs
and reset options outside their declaration raise a `ParamError` (the server answers 400).
Error messages may reach a client: `public_message` cuts the server's paths out of one.
"""

from __future__ import annotations

import re


class EpisodeStateError(RuntimeError):
    """A call that the episode's current state does not allow."""


class ResetNeeded(EpisodeStateError):
    """`step` was called before the first `reset`."""


class EpisodeOver(EpisodeStateError):
    """`step` was called after the episode terminated or was truncated."""


class ParamError(ValueError):
    """A constructor kwarg or reset option is unknown, of the wrong type or out of its declared range."""


class TaskOptionError(ParamError):
    """`reset` options name a task, split or difficulty the env does not have."""


# A quoted absolute path (it may hold spaces), then an unquoted one: POSIX (`/srv/x`, `~/x`,
# `file:///x`) or Windows (`C:\x`, `\\host\share`). A `/` right after a word character, a dot,
# a colon or another slash (`application/json`, `km/h`, `1/2`, `http://host/v1`) starts none.
_QUOTED_PATH = re.compile(r"""(['"])((?:file://)?(?:~|[A-Za-z]:)?[/\\][^'"\n]*)\1""")
# A space inside an unquoted path is taken when a later `/` continues it (`/srv/user files/x.json`).
_BARE_PATH = re.compile(
    r"""(?<![\w.:/\\~-])(?:file://)?(?:~|[A-Za-z]:)?[/\\][^\s'"`<>|]+(?: [^\s'"`<>|/\\]+[/\\][^\s'"`<>|]*)*"""
)


def _last_part(path: str) -> str:
    parts = [part for part in re.split(r"[/\\]+", path.removeprefix("file://")) if part and part != "~"]
    return parts[-1] if parts else "<path>"


def public_message(message: str) -> str:
    """`message` with each absolute filesystem path cut to its last part (`/srv/data/test.jsonl`
    -> `test.jsonl`): what an error tells a client never shows where a server keeps its files."""
    if "/" not in message and "\\" not in message:
        return message
    message = _QUOTED_PATH.sub(lambda m: m.group(1) + _last_part(m.group(2)) + m.group(1), message)
    return _BARE_PATH.sub(lambda m: _last_part(m.group(0)), message)
