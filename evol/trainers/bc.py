"""Behaviour cloning: supervised fine-tuning on (expert) trajectories.

    evol train bc --config bc.yaml

```yaml
model: runs/tiny/base          # an HF checkpoint directory
data: [runs/expert.jsonl]      # trajectory JSONL files, or AgentGym's (AgentTraj) JSON/JSONL
output_dir: runs/bc
keep: success                  # which trajectories to learn from
history_turns: 0               # cut episodes into per-turn examples (null: whole episodes)
train: {epochs: 3, learning_rate: 2.0e-3, batch_size: 8}
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from evol.trainers.config import save_config
from evol.trainers.data import examples, load_trajectories, select
from evol.trainers.sft import TrainResult, TrainSettings, fine_tune


@dataclass
class BCConfig:
    """Every knob of a behaviour-cloning run."""

    model: str = field(metadata={"help": "the HF checkpoint directory to start from"})
    data: list[str] = field(
        metadata={
            "help": "trajectory JSONL files to learn from, EvolGym's or AgentGym's ({item_id, conversations} "
            "items, AgentTraj's JSON lists or JSONL: successful episodes of unknown reward)"
        }
    )
    output_dir: str = field(
        metadata={"help": "the run directory: config, checkpoints, the final model in `model/`"}
    )
    keep: Literal["success", "threshold", "reward_weighted", "all"] = field(
        default="success", metadata={"help": "which trajectories to learn from (and how to weight them)"}
    )
    reward_threshold: float = field(
        default=0.99, metadata={"help": "with keep=threshold: minimum episode reward"}
    )
    history_turns: int | None = field(
        default=None,
        metadata={"help": "null: whole episodes; k: per-turn examples, each with k earlier turns"},
    )
    instruction_in_context: bool | list[str] = field(
        default=True,
        metadata={
            "help": "keep envs' instructions (system message): all (true), none (false), or these env ids"
        },
    )
    train: TrainSettings = field(default_factory=TrainSettings, metadata={"help": "how fine-tuning learns"})

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("data: give at least one trajectory file")
        if self.history_turns is not None and self.history_turns < 0:
            raise ValueError("history_turns must be >= 0 or null")
        if not Path(self.model).is_dir():
            raise ValueError(f"model: {self.model} is not a checkpoint directory")
        missing = [path for path in self.data if not Path(path).exists()]
        if missing:
            raise ValueError(f"data: file(s) not found: {missing}")


class BCTrainer:
    """config -> trainer -> `train()`, which returns the trained model's directory."""

    def __init__(self, config: BCConfig):
        self.config = config

    def train(self) -> TrainResult:
        config = self.config
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
        trajectories = load_trajectories(config.data)
        if config.keep == "all":
            selected = [(t, 1.0) for t in trajectories if t.error is None and t.turns > 0]
        else:
            selected = select(trajectories, config.keep, config.reward_threshold)
        rows = examples(selected, config.history_turns, config.instruction_in_context)
        result = fine_tune(config.model, rows, out, config.train)
        summary = {
            "trajectories": len(trajectories),
            "kept": len(selected),
            "examples": result.examples,
            "tokens": result.tokens,
            "truncated": result.truncated,
            "seconds": round(result.seconds, 2),
            "tokens_per_s": round(result.tokens_per_s, 1),
            "losses": result.losses,
            "model_dir": str(result.model_dir),
        }
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
        return result
