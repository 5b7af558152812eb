"""Explore strategies of the self-improvement loop (`explore:` in its config), one file each.

A strategy has `explore(loop, policy_dir, iteration_dir)`: it runs episodes with the policy
in `policy_dir` and writes what the iteration learns from to `iteration_dir/explore.jsonl`,
through the loop's `rollout`, `specs` and `policy` (`evol.trainers.loop.SelfImproveTrainer`).
It also declares `defaults` (the values of the config's null fields it decides),
`held_in` (whether a held-in evaluation runs by default) and `check(config)` (refuses a
config it cannot explore with, naming the field); `evaluated(loop, stage, iteration)`,
where present, adds its metrics after each evaluation.
"""

from __future__ import annotations

from evol.trainers.explore.critique_refine import CritiqueRefineExplorer
from evol.trainers.explore.guided import GuidedExplorer
from evol.trainers.explore.sample import SampleExplorer

EXPLORERS = {
    "sample": SampleExplorer(),
    "critique_refine": CritiqueRefineExplorer(),
    "guided": GuidedExplorer(),
}
