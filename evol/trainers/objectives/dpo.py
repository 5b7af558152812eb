"""`learn: dpo`: pairs of a better and a worse sample of the same task, learned with DPO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evol.trainers.data import load_trajectories
from evol.trainers.dpo import check_vision_settings, preference_tune
from evol.trainers.pairs import pairs_from_trajectories, write_pairs
from evol.trainers.sft import TrainResult
from evol.trainers.vision import is_vision_checkpoint


class DPOObjective:
    name = "dpo"

    def check(self, config: Any) -> None:
        if config.samples_per_task < 2:
            raise ValueError("samples_per_task: learn=dpo pairs samples of one task and needs K >= 2")
        if Path(config.base_model).is_dir() and is_vision_checkpoint(config.base_model):
            check_vision_settings(config.dpo)

    def learn(self, loop: Any, iteration: int, iteration_dir: Path, start: Path) -> TrainResult:
        config = loop.config
        pairs = pairs_from_trajectories(
            load_trajectories(loop.explore_files(iteration)),
            config.pairing,
            config.pairs_per_task,
            config.instruction_in_context,
            config.history_turns,
        )
        write_pairs(pairs, iteration_dir / "pairs.jsonl")
        for env_id in config.envs:
            loop.metric(
                {"stage": f"iter_{iteration}", "env": env_id, "pairs": sum(p["env"] == env_id for p in pairs)}
            )
        return preference_tune(start, pairs, iteration_dir, config.dpo)
