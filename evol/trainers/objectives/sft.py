"""`learn: sft`: AgentEvol's learn step — keep what earned reward, fine-tune on it with the expert data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evol.trainers.data import load_trajectories, select
from evol.trainers.pairs import task_identity
from evol.trainers.sft import TrainResult, fine_tune


def one_per_task(selected: list[tuple[Any, float]]) -> list[tuple[Any, float]]:
    """AgentGym's filter: of the kept samples of a task, the one of highest weight (then lowest sample)."""
    best: dict[str, tuple[Any, float]] = {}
    for trajectory, weight in selected:
        key = task_identity(trajectory)
        kept = best.get(key)
        if kept is None or (weight, -trajectory.sample) > (kept[1], -kept[0].sample):
            best[key] = (trajectory, weight)
    return sorted(best.values(), key=lambda pair: pair[0].key)


class SFTObjective:
    name = "sft"

    def check(self, config: Any) -> None:
        pass

    def learn(self, loop: Any, iteration: int, iteration_dir: Path, start: Path) -> TrainResult:
        config = loop.config
        explored = select(
            load_trajectories(loop.explore_files(iteration)), config.keep, config.reward_threshold
        )
        if config.keep_per_task == "one":
            explored = one_per_task(explored)
        for env_id in config.envs:
            kept = sum(t.env == env_id for t, _ in explored)
            loop.metric({"stage": f"iter_{iteration}", "env": env_id, "explore_kept": kept})
        rows = loop.examples(loop.selected_expert()) + loop.examples(explored)
        return fine_tune(start, rows, iteration_dir, config.train)
