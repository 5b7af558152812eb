"""Preference pairs: from the platform's own rollouts, or read from files written elsewhere.

A pair is TRL's conversational preference row: `{"prompt": [messages], "chosen": [messages],
"rejected": [messages]}` (plus `env` and `key` when it comes from a rollout).

From rollouts (`pairs_from_trajectories`): the K samples of one task (same env, seed and
options; `samples_per_task: K` in the explore phase) are ranked by (success, reward); every
sample that beats another of the same task can be chosen against it. Two ways to cut a pair:

- `first_divergence` (default): the shared prefix of the two conversations up to the first
  assistant turn where they differ is the prompt; chosen and rejected are that one reply
  each. What the env said before the split is identical, so only the agent's decision is
  scored, and no observation token ever counts as the policy's.
- `whole`: the prompt is the instruction and first observation; chosen and rejected are the
  rest of each episode (replies and the env's observations). The log-probabilities the
  trainer compares then include observation tokens, as they would for a single-turn task.

`pairs_per_task` bounds how many pairs one task gives (the best sample against the worst
first, then the next ones), so tasks with many samples do not dominate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agents.base import sees_instruction, window
from evol.trajectory import Trajectory, read_trajectories

PAIRINGS = ("first_divergence", "whole")


def task_identity(trajectory: Trajectory) -> str:
    """Env, seed and options: what the K samples of one task share (the key without its sample)."""
    task = trajectory.task or {}
    return json.dumps(
        [trajectory.env, task.get("seed"), task.get("options") or {}], sort_keys=True, default=str
    )


def _rank(trajectory: Trajectory) -> tuple[int, float]:
    return (int(bool(trajectory.success)), float(trajectory.reward))


def _split_pair(
    better: Trajectory, worse: Trajectory, pairing: str, instruction: bool, history_turns: int | None
) -> dict[str, Any] | None:
    a, b = better.messages, worse.messages
    if pairing == "whole":
        if len(a) < 3 or len(b) < 3 or a[:2] != b[:2]:
            return None
        return {"prompt": window(a[:2], history_turns, instruction), "chosen": a[2:], "rejected": b[2:]}
    for index, (mine, theirs) in enumerate(zip(a, b)):
        if mine == theirs:
            continue
        if mine["role"] != "assistant" or theirs["role"] != "assistant":
            return None  # the env answered the same reply differently: no clean decision point
        # the prompt is what the agent saw at that turn: its window of the shared prefix
        return {
            "prompt": window(a[:index], history_turns, instruction),
            "chosen": [mine],
            "rejected": [theirs],
        }
    return None  # one conversation is a prefix of the other: nothing to prefer


def check_pair_sources(model: str, data: list[str], pairing: str, pairs_per_task: int) -> None:
    """Refuse, naming the field, what a trainer on pairs cannot start from: no data file or a
    missing one, a model that is not a checkpoint directory, an unknown pairing, pairs_per_task < 1."""
    if not data:
        raise ValueError("data: give at least one file")
    if not Path(model).is_dir():
        raise ValueError(f"model: {model} is not a checkpoint directory")
    missing = [path for path in data if not Path(path).exists()]
    if missing:
        raise ValueError(f"data: file(s) not found: {missing}")
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    if pairs_per_task < 1:
        raise ValueError("pairs_per_task must be >= 1")


def pairs_from_trajectories(
    trajectories: Iterable[Trajectory],
    pairing: str = "first_divergence",
    pairs_per_task: int = 1,
    instruction_in_context: bool | list[str] = True,
    history_turns: int | None = None,
) -> list[dict[str, Any]]:
    """Preference rows from K samples per task: a higher-ranked (success, reward) sample of a
    task against a lower-ranked one of the same task and seed, cut as `pairing` says; the
    prompt is what the agent saw (`history_turns`, the instruction or not, as `agents.base.window`)."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    if pairs_per_task < 1:
        raise ValueError("pairs_per_task must be >= 1")
    groups: dict[str, list[Trajectory]] = {}
    for trajectory in trajectories:
        if trajectory.error is not None or trajectory.fault is not None or trajectory.turns == 0:
            continue
        groups.setdefault(task_identity(trajectory), []).append(trajectory)
    rows = []
    for _, group in sorted(groups.items()):
        ranked = sorted(group, key=lambda t: (_rank(t), -t.sample), reverse=True)
        made = 0
        # best against worst first, then inwards: the clearest contrasts are used first
        for i, better in enumerate(ranked):
            for worse in reversed(ranked[i + 1 :]):
                if made >= pairs_per_task:
                    break
                if _rank(better) <= _rank(worse):
                    continue
                row = _split_pair(
                    better,
                    worse,
                    pairing,
                    sees_instruction(instruction_in_context, better.env),
                    history_turns,
                )
                if row is not None:
                    rows.append({**row, "env": better.env, "key": better.key})
                    made += 1
    return rows


def _as_messages(value: Any, role: str, field_name: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, dict) and "role" in value and "content" in value:
        return [value]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in value)
    ):
        return value
    raise ValueError(f"{field_name} must be a string or a list of {{role, content}} messages")


def normalize_pair(record: dict[str, Any]) -> dict[str, Any]:
    """One preference record in any of the usual shapes (`prompt` or `messages` as the prompt;
    strings or message lists) as a conversational row."""
    if not isinstance(record, dict):
        raise ValueError("a preference record is a JSON object")
    prompt_field = "prompt" if "prompt" in record else "messages" if "messages" in record else None
    missing = [name for name in ("chosen", "rejected") if name not in record]
    if prompt_field is None or missing:
        raise ValueError(
            "a preference record has `prompt` (or `messages`), `chosen` and `rejected`; missing: "
            + ", ".join((["prompt"] if prompt_field is None else []) + missing)
        )
    row = {
        "prompt": _as_messages(record[prompt_field], "user", prompt_field),
        "chosen": _as_messages(record["chosen"], "assistant", "chosen"),
        "rejected": _as_messages(record["rejected"], "assistant", "rejected"),
    }
    for name in ("env", "key"):
        if name in record:
            row[name] = record[name]
    return row


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Preference rows of a JSONL file (TRL's conventional format); errors name the line."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(normalize_pair(json.loads(line)))
            except (ValueError, json.JSONDecodeError) as error:
                raise ValueError(f"{Path(path).name} line {number}: {error}") from None
    return rows


def write_pairs(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def pairs_from_files(
    paths: Iterable[str | Path],
    pairing: str = "first_divergence",
    pairs_per_task: int = 1,
    instruction_in_context: bool | list[str] = True,
) -> list[dict[str, Any]]:
    """Pairs from rollout files (trajectory JSONL) and preference files, told apart by their rows."""
    rows: list[dict[str, Any]] = []
    trajectories: list[Trajectory] = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "")
        if first and "chosen" in json.loads(first):
            rows.extend(read_pairs(path))
        else:
            trajectories.extend(read_trajectories(path))
    if trajectories:
        trajectories.sort(key=lambda t: t.key)
        rows.extend(pairs_from_trajectories(trajectories, pairing, pairs_per_task, instruction_in_context))
    return rows
