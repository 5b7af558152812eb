"""Learn objectives of the self-improvement loop (`learn:` in its config), one file each.

An objective has `check(config)` (refuses a config it cannot learn from, before any work,
naming the field) and `learn(loop, iteration, iteration_dir, start) -> TrainResult`: it reads
what exploration wrote (`loop.explore_files(iteration)`), selects or pairs, and trains the
model in `start` into `iteration_dir/model`. An `online` objective (grpo) plays its own episodes:
the loop skips its explore phase.
"""

from __future__ import annotations

from evol.trainers.objectives.dpo import DPOObjective
from evol.trainers.objectives.grpo import GRPOObjective
from evol.trainers.objectives.inverse_q import InverseQObjective
from evol.trainers.objectives.sft import SFTObjective

OBJECTIVES = {
    "sft": SFTObjective(),
    "dpo": DPOObjective(),
    "inverse_q": InverseQObjective(),
    "grpo": GRPOObjective(),
}
