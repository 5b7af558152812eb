"""Training data from trajectory files: filter or weight by reward, cut into examples."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from agents.base import sees_instruction, window
from evol.trajectory import Trajectory, is_agentgym_file, read_agentgym, read_trajectories


class TrajectoryFileError(ValueError):
    """A training data file that cannot be read: the message names the file and the fault."""


def load_trajectories(paths: Iterable[str | Path]) -> list[Trajectory]:
    """Every trajectory of the files, in a fixed order (by episode key): concurrent rollouts
    write in completion order, and training should not depend on it. A file of AgentGym items
    (AgentTraj's JSON lists, or JSONL with `conversations`) loads as successful episodes
    (`evol.trajectory.read_agentgym`)."""
    trajectories = []
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"trajectory file {path} does not exist")
        try:
            if is_agentgym_file(path):
                trajectories.extend(read_agentgym(path))
            else:
                trajectories.extend(read_trajectories(path))
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as error:
            raise TrajectoryFileError(f"cannot read {path}: {error}") from None
    return sorted(trajectories, key=lambda t: t.key)


def select(
    trajectories: Iterable[Trajectory],
    keep: str = "success",
    threshold: float | dict[str, float] = 0.99,
) -> list[tuple[Trajectory, float]]:
    """(trajectory, weight) pairs: AgentEvol's filter (`success` or reward `threshold`, weight 1)
    or its reward-weighted form (`reward_weighted`: every trajectory, weight = its reward).
    `threshold` may be one number or one per env id."""
    chosen = []
    for trajectory in trajectories:
        if trajectory.error is not None or trajectory.turns == 0:
            continue
        if keep == "success":
            if trajectory.success:
                chosen.append((trajectory, 1.0))
        elif keep == "threshold":
            limit = threshold.get(trajectory.env, 0.99) if isinstance(threshold, dict) else threshold
            if trajectory.reward >= limit:
                chosen.append((trajectory, 1.0))
        elif keep == "reward_weighted":
            if trajectory.reward > 0:
                chosen.append((trajectory, float(trajectory.reward)))
        else:
            raise ValueError(f"keep must be success, threshold or reward_weighted, got {keep!r}")
    return chosen


def examples(
    selected: Iterable[tuple[Trajectory, float]],
    history_turns: int | None = None,
    instruction: bool | Collection[str] = True,
) -> list[dict[str, Any]]:
    """Training examples in chat form with their weights.

    With `history_turns=None` (and the instruction kept) one example per trajectory,
    every assistant turn learned; otherwise one example per turn, cut as
    `agents.base.window` cuts what the agent sees, ending with the reply to learn.
    `instruction`: keep the system message, for every env or for the env ids listed.
    """
    rows = []
    for trajectory, weight in selected:
        messages = trajectory.messages
        keep = sees_instruction(instruction, trajectory.env)
        if history_turns is None and keep:
            rows.append({"messages": messages, "weight": weight})
            continue
        for end in range(2, len(messages)):
            if messages[end]["role"] == "assistant":
                context = window(messages[:end], history_turns, keep)
                rows.append({"messages": context + [messages[end]], "weight": weight})
    return rows
