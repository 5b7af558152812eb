"""`explore: sample`: K samples per task with the current policy (AgentEvol's exploration)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class SampleExplorer:
    """Every explore task, `samples_per_task` times, at `explore_temperature`."""

    name = "sample"
    defaults = {"samples_per_task": 1, "keep_per_task": "one"}  # the config's nulls
    held_in = False  # no held-in evaluation unless `held_in_tasks` asks

    def check(self, config: Any) -> None:
        pass

    def explore(self, loop: Any, policy_dir: Path, iteration_dir: Path) -> None:
        config = loop.config
        specs = loop.specs("explore_tasks", samples=config.samples_per_task)
        loop.rollout(
            loop.policy(policy_dir), specs, iteration_dir / "explore.jsonl", config.explore_temperature
        )
