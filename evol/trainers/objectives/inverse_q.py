"""`learn: inverse_q`: every explored reply scored token by token by the guided model (Inverse-Q*)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import envs
from envs.core import TextEnv
from evol.trainers.data import load_trajectories
from evol.trainers.inverse_q import inverse_q_rows, inverse_q_tune
from evol.trainers.pairs import task_identity
from evol.trainers.sft import TrainResult
from evol.trainers.vision import is_vision_checkpoint
from evol.trajectory import Trajectory


def expert_hints(trajectory: Trajectory, env_kwargs: dict[str, Any] | None = None) -> list[str | None]:
    """The env's expert action before each of the trajectory's actions, by replaying it locally
    (None where the env has no expert there, or the replay stops matching)."""
    hints: list[str | None] = []
    env = envs.make(trajectory.env, **(env_kwargs or {}))
    try:
        env.reset(seed=trajectory.task.get("seed"), options=trajectory.task.get("options"))
        for action in trajectory.actions:
            try:
                hints.append(env.expert_action())
            except Exception:  # noqa: BLE001 - no expert at this state: no hint for the turn
                hints.append(None)
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
    finally:
        env.close()
    return hints + [None] * (len(trajectory.actions) - len(hints))


class InverseQObjective:
    name = "inverse_q"

    def check(self, config: Any) -> None:
        if Path(config.base_model).is_dir() and is_vision_checkpoint(config.base_model):
            raise ValueError("learn: inverse_q trains text models; base_model is a vision checkpoint")
        if config.inverse_q.guidance == "hint":
            missing = [e for e in config.envs if envs.env_class(e).expert_action is TextEnv.expert_action]
            if missing:
                raise ValueError(f"inverse_q.guidance: hint needs envs with an expert; {missing} have none")

    def learn(self, loop: Any, iteration: int, iteration_dir: Path, start: Path) -> TrainResult:
        config = loop.config
        settings = config.inverse_q
        explored = load_trajectories(loop.explore_files(iteration))
        references: dict[str, Trajectory] = {}
        if settings.guidance == "reference":
            for trajectory in load_trajectories(loop.expert_files()) + explored:
                if trajectory.success and trajectory.completed:
                    references.setdefault(task_identity(trajectory), trajectory)
        hint = None
        if settings.guidance == "hint":
            cache: dict[str, list[str | None]] = {}

            def hint(trajectory: Trajectory, turn: int) -> str | None:
                if trajectory.key not in cache:
                    cache[trajectory.key] = expert_hints(trajectory, config.env_kwargs.get(trajectory.env))
                return cache[trajectory.key][turn]

        rows = inverse_q_rows(
            explored, settings, config.history_turns, config.instruction_in_context, references, hint
        )
        loop.metric({"stage": f"iter_{iteration}", "inverse_q_rows": len(rows)})
        return inverse_q_tune(start, rows, iteration_dir, settings)
