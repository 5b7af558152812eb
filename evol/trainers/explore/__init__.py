"""Explore strategies of the self-improvement loop (`explore:` in its config), one file each.

A strategy has `explore(loop, policy_dir, iteration_dir)`: it runs episodes with the policy
in `policy_dir` and writes them to `iteration_dir/explore.jsonl`, through the loop's
`rollout`, `specs` and `policy` (`evol.trainers.loop.SelfImproveTrainer`).
"""

from __future__ import annotations

from evol.trainers.explore.sample import SampleExplorer

EXPLORERS = {"sample": SampleExplorer()}
