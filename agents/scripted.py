"""Agents that need no model: the envs' experts, and uniform random choice."""

from __future__ import annotations

import random

from agents.base import Agent, AgentInput, SamplingParams


class ExpertAgent(Agent):
    """Asks each episode's env for its expert action (works on local and remote envs)."""

    needs_env = True

    name = "expert"

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        replies = []
        for item in inputs:
            if item.env is None:
                raise ValueError("the expert agent needs the episode's env (AgentInput.env)")
            replies.append([item.env.expert_action()] * sampling.n)
        return replies


class RandomAgent(Agent):
    """Picks uniformly from `info["valid_actions"]` (or `fallback` where the env lists none)."""

    name = "random"

    def __init__(self, seed: int | None = None, fallback: tuple[str, ...] = ("look",)):
        self.rng = random.Random(seed)
        self.fallback = fallback

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        return [
            [self.rng.choice(item.info.get("valid_actions") or self.fallback) for _ in range(sampling.n)]
            for item in inputs
        ]
