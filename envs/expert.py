"""Run an env's expert (its scripted solver) through one episode.

Every env implements `expert_action()`; this drives it, locally or over HTTP (a
`RemoteEnv` forwards `expert_action` to the server), and is what the behaviour-cloning
data and the contract tests use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ExpertEpisode:
    instruction: str
    observations: list[Any] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    success: bool = False

    @property
    def reward(self) -> float:
        return self.rewards[-1] if self.rewards else 0.0


def run_expert(env: Any, seed: int | None = None, options: dict[str, Any] | None = None) -> ExpertEpisode:
    """Reset `env` with `seed`/`options` and follow `env.expert_action()` to the end."""
    observation, info = env.reset(seed=seed, options=options)
    episode = ExpertEpisode(instruction=info["instruction"], observations=[observation])
    while True:
        action = env.expert_action()
        observation, reward, terminated, truncated, info = env.step(action)
        episode.actions.append(action)
        episode.observations.append(observation)
        episode.rewards.append(reward)
        if terminated or truncated:
            episode.success = bool(info.get("success"))
            return episode
