"""`learn: grpo`: online RL on the loop's own train tasks with TRL's GRPOTrainer (evol.trainers.grpo).

The objective explores for itself: each optimizer step plays G episodes per task with the
current policy on the run's env servers, so the loop's explore phase is skipped (`online`).
Tasks are the train side of the loop's split (`explore_tasks` per env), never a held-out one.
The adapter trains on whole episodes (one token sequence each), so the loop must show the
agent whole episodes too (`history_turns: null`), or what is trained is not what is evaluated.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from evol.trainers.grpo import GRPOConfig, GRPORun
from evol.trainers.sft import TrainResult
from evol.trainers.vision import is_vision_checkpoint


class GRPOObjective:
    name = "grpo"
    online = True  # explores itself: the loop's explore phase does not run

    def check(self, config: Any) -> None:
        if config.history_turns is not None:
            raise ValueError(
                "history_turns: learn=grpo trains on whole episodes; set history_turns: null so the "
                "evaluated agent sees what it was trained on"
            )
        if config.explore != "sample":
            raise ValueError("explore: learn=grpo samples its own episodes online; leave explore: sample")
        if Path(config.base_model).is_dir() and is_vision_checkpoint(config.base_model):
            raise ValueError("learn: grpo trains text models; base_model is a vision checkpoint")

    def learn(self, loop: Any, iteration: int, iteration_dir: Path, start: Path) -> TrainResult:
        config = loop.config
        loop.ensure_servers()
        specs = loop.specs("explore_tasks")
        settings = {f.name: getattr(config.grpo, f.name) for f in dataclasses.fields(config.grpo)}
        grpo = GRPOConfig(
            **{**settings, "seed": config.seed + iteration, "progress": config.progress},
            model=str(start),
            env_ids=list(config.envs),
            urls=list(loop.urls),
            output_dir=str(iteration_dir),
            tasks=len(specs),
            instruction_in_context=config.instruction_in_context,
        )
        run = GRPORun(grpo, specs=specs)
        result = run.train()
        stats = run.rollout.stats
        loop.metric(
            {"stage": f"iter_{iteration}", "grpo_episodes": stats.episodes, "grpo_success": stats.successes,
             "grpo_failed_episodes": stats.failed, "grpo_steps": run.trainer.state.global_step}
        )  # fmt: skip
        return result
