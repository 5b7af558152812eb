"""The BabyAI levels the env mixes, their names, and the split of task seeds."""

from __future__ import annotations

import gymnasium as gym
import minigrid  # noqa: F401  (importing it registers the BabyAI levels with gymnasium)

DEFAULT_LEVELS = (
    "GoToRedBallGrey",
    "GoToRedBall",
    "GoToObj",
    "GoToLocal",
    "PickupLoc",
    "GoToDoor",
    "OpenDoor",
    "OpenRedDoor",
    "UnlockLocal",
    "PutNextLocal",
)
SPLIT_SEED_OFFSET = {"train": 0, "test": 1_000_000_000}
TASKS_PER_SPLIT = {"train": 1_000_000, "test": 10_000}


def level_name(level: str) -> str:
    """The short name of a level: 'BabyAI-GoToLocal-v0' and 'GoToLocal' give 'GoToLocal'."""
    name = level.strip()
    name = name.removeprefix("BabyAI-")
    return name.removesuffix("-v0")


def level_env_id(level: str) -> str:
    name = level.strip()
    for env_id in (name, f"BabyAI-{name}", f"BabyAI-{name}-v0"):
        if env_id.startswith("BabyAI-") and env_id in gym.registry:
            return env_id
    raise ValueError(f"unknown BabyAI level {level!r} (e.g. 'GoToLocal' or 'BabyAI-GoToLocal-v0')")


def known_levels() -> tuple[str, ...]:
    """Every BabyAI level minigrid registers, by short name ('GoToLocal') and by id ('BabyAI-GoToLocal-v0')."""
    ids = sorted(env_id for env_id in gym.registry if env_id.startswith("BabyAI-"))
    return (*(level_name(env_id) for env_id in ids), *ids)


KNOWN_LEVELS = known_levels()


def task_seed(split: str, task: int) -> int:
    """The minigrid seed of task `task` of `split`: train and test seeds are disjoint ranges."""
    return SPLIT_SEED_OFFSET[split] + task
