"""AgentEvol (Xi et al. 2024, AgentGym): behaviour cloning, then evolve by exploring.

    evol train agentevol --config agentevol.yaml

AgentEvol is the self-improvement loop (`evol.trainers.loop`) with its defaults: explore by
sampling the current policy (`explore: sample`, K samples per task on the wider task set) ->
keep trajectories by reward (successes, rewards over a threshold, or every trajectory
weighted by its reward: AgentEvol's reward-weighted likelihood, of which filtering is the
binary case), one per task as AgentGym's filter does (`keep_per_task: one`) -> merge with
the expert data (this iteration's, or cumulative) -> fine-tune (`learn: sft`; from the base
model, as AgentGym's scripts do, or from the last one) -> evaluate on held-out tasks.

Everything else — the run directory, resuming, metrics.jsonl, learning_curve.png — is the
loop's; `learn: dpo` or `learn: inverse_q` in an AgentEvol config swaps the learn step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evol.trainers.loop import (
    TASK_KEYS,
    LoopConfig,
    SelfImproveTrainer,
    format_table,
    learning_table,
    plot_learning_curve,
)

__all__ = [
    "TASK_KEYS",
    "AgentEvolConfig",
    "AgentEvolTrainer",
    "format_table",
    "learning_table",
    "plot_learning_curve",
]


@dataclass
class AgentEvolConfig(LoopConfig):
    """Every knob of an AgentEvol run, with its default (the loop's, run in `runs/agentevol`)."""

    run_dir: str = field(
        default="runs/agentevol", metadata={"help": "where everything of the run is written"}
    )


class AgentEvolTrainer(SelfImproveTrainer):
    """config -> trainer -> `train()`: runs (or resumes) the whole AgentEvol loop."""

    tag = "agentevol"
