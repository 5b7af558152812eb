"""`evol quickstart`: evolve a tiny agent from scratch on this machine, the platform's main job.

It launches env servers, collects expert trajectories, builds the `tiny` model (a
tokenizer trained on the envs' text, a small Llama from a config), evaluates it
untrained, runs behaviour cloning, then AgentEvol iterations, and prints held-out
success per stage. Everything lands in the run directory (`metrics.jsonl`,
`learning_curve.png`, models, trajectories); rerunning resumes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from evol.trainers.agentevol import AgentEvolConfig, AgentEvolTrainer, format_table
from evol.trainers.sft import TrainSettings

BABYAI = "evol/BabyAI-v0"
TEXTWORLD = "evol/TextWorld-v0"


def quickstart_config(out: str, fast: bool = False) -> AgentEvolConfig:
    """The embedded default run (sized for 2 CPU cores in about 15 minutes; `fast`: ~2 minutes)."""
    bc = TrainSettings(epochs=16, learning_rate=3e-3, batch_size=16, warmup_ratio=0.05, logging_steps=50)
    evolve = TrainSettings(epochs=3, learning_rate=2e-3, batch_size=16, warmup_ratio=0.05, logging_steps=50)
    config = AgentEvolConfig(
        run_dir=out,
        envs=[BABYAI, TEXTWORLD],
        base_tasks=150,
        explore_tasks=600,
        eval_tasks=200,
        env_tasks={TEXTWORLD: {"base_tasks": 20, "explore_tasks": 40, "eval_tasks": 20}},
        samples_per_task=1,
        explore_temperature=1.0,
        iterations=2,
        keep="success",
        merge="base",
        learn_from="last",  # continue from the last model: on 2 CPU cores a restart from scratch costs too much
        history_turns=0,
        instruction_in_context=False,  # the observation carries the goal and the actions: 3x shorter contexts
        max_new_tokens=12,
        concurrency=32,
        servers=1,
        bc_train=bc,
        train=evolve,
    )
    if not fast:
        return config
    return dataclasses.replace(
        config,
        base_tasks=30,
        explore_tasks=40,
        eval_tasks=10,
        env_tasks={TEXTWORLD: {"base_tasks": 3, "explore_tasks": 4, "eval_tasks": 2}},
        iterations=1,
        learn_from="base",
        bc_train=TrainSettings(epochs=1, learning_rate=3e-3, batch_size=16, progress=True),
        train=TrainSettings(epochs=1, learning_rate=3e-3, batch_size=16, progress=True),
    )


def run_quickstart(out: str = "runs/quickstart", fast: bool = False) -> int:
    config = quickstart_config(out, fast=fast)
    table = AgentEvolTrainer(config).train()
    print("\nHeld-out success per stage (test tasks):\n")
    print(format_table(table))
    run_dir = Path(out)
    print(f"\nLearning curve: {run_dir / 'learning_curve.png'}; metrics: {run_dir / 'metrics.jsonl'}")
    return 0
