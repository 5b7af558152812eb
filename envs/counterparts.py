"""Counterparts: the models an env talks to (a critic, a defender, an attacker, a judge).

An env that needs a model takes any object meeting `Completer`: chat conversations in, reply
texts out. `agents.Agent.complete` provides it for every agent backend (`agents.LazyAgent`
too, building its agent on first use), and `evol` wires agents in (`evol serve --counterpart
NAME=SPEC`); envs never import agents. Built-in counterparts need no model and are named by
strings each env declares (`"oracle"` critic, `"guard"` judge, `"robust"` defender, ...).

A counterpart whose `needs_env` is true acts by reading the episode's env rather than text
(the `expert` agent): it plays the env's own scripted counterpart (`plays_scripted`).
"""

from __future__ import annotations

import re
from typing import Any, Protocol, runtime_checkable

Conversation = list[dict[str, str]]  # chat messages: {"role": "system" | "user" | "assistant", "content"}


@runtime_checkable
class Completer(Protocol):
    """What an env needs of a model: `n` reply texts for each conversation, in order."""

    def complete(
        self,
        conversations: list[Conversation],
        *,
        temperature: float = 0.0,
        max_new_tokens: int = 256,
        n: int = 1,
        seed: int | None = None,
    ) -> list[list[str]]: ...


def is_completer(value: Any) -> bool:
    """Whether `value` can serve as a model counterpart (has a `complete` method)."""
    return callable(getattr(value, "complete", None))


def plays_scripted(value: Any) -> bool:
    """Whether `value` stands for the env's scripted counterpart (an agent that reads the env)."""
    return bool(getattr(value, "needs_env", False))


def require_completer(value: Any, role: str) -> Completer:
    """`value` if it meets `Completer`, else a TypeError naming the `role` it was meant for."""
    if not is_completer(value):
        raise TypeError(
            f"a {role} needs an object with complete(conversations, ...) (any agents.Agent has it), "
            f"got {type(value).__name__}"
        )
    return value


# `^[ \t]*`: a `^\s*` spans the blank lines below, retried at each line (quadratic on many newlines).
_ACTION_LINE = re.compile(r"^[ \t]*Action\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)


def reply_action(text: str) -> str:
    """What a counterpart's reply says, the way the rollout engine reads an agent's reply
    (`agents.parse_action`): its last `Action: ...` line if it has one (with the `Action
    Input:` lines after it), else the whole reply; stripped. The two packages share no code."""
    matches = list(_ACTION_LINE.finditer(text))
    if not matches:
        return text.strip()
    last = matches[-1]
    tail = text[last.end() :].strip()
    if tail.lower().startswith("action input"):
        return (last.group(1).strip() + "\n" + tail).strip()
    return last.group(1).strip()


__all__ = ["Completer", "Conversation", "is_completer", "plays_scripted", "reply_action", "require_completer"]
