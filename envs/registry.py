"""The env registry: built-in envs under the `evol/` namespace, plugins by entry point.

Registration is data: an id names an entry point (`module:Class`) and default kwargs in
Gymnasium's registry, so `gymnasium.make("evol/BabyAI-v0")` and `envs.make(...)` build
the same thing. Third-party packages register theirs from an entry point in the group
`evolgym.envs` (a callable that calls `envs.register`); `evol serve` serves them as is.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from envs.core import TextEnv

log = logging.getLogger(__name__)

PLUGIN_GROUP = "evolgym.envs"

BUILTIN_ENVS: dict[str, str] = {
    "evol/BabyAI-v0": "envs.babyai.env:BabyAIEnv",
    "evol/TextWorld-v0": "envs.textworld.env:TextWorldEnv",
    "evol/MathCritique-v0": "envs.math.actor:MathCritiqueEnv",
    "evol/MathCritic-v0": "envs.math.critic_env:MathCriticEnv",
    "evol/ChartQA-v0": "envs.charts.env:ChartQAEnv",
    "evol/ToolUse-v0": "envs.tools.env:ToolUseEnv",
    "evol/RedTeam-Attacker-v0": "envs.redteam.attacker:AttackerEnv",
    "evol/RedTeam-Defender-v0": "envs.redteam.defender:DefenderEnv",
    "evol/Sycophancy-v0": "envs.sycophancy.env:SycophancyEnv",
    "evol/WebShop-v0": "envs.webshop.env:WebShopEnv",
    "evol/Maze-v0": "envs.games.maze:MazeEnv",
    "evol/Wordle-v0": "envs.games.wordle:WordleEnv",
    "evol/TextCraft-v0": "envs.games.textcraft:TextCraftEnv",
    "evol/SciWorld-v0": "envs.sciworld.env:SciWorldEnv",
}

_evol_ids: list[str] = []
_plugins_loaded = False
_plugins_lock = threading.RLock()


def register(env_id: str, entry_point: str, **kwargs: Any) -> None:
    """Register a `TextEnv` under `env_id` with Gymnasium and list it as an EvolGym env."""
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=entry_point, kwargs=kwargs, disable_env_checker=True)
    if env_id not in _evol_ids:
        _evol_ids.append(env_id)


def register_builtin() -> None:
    for env_id, entry_point in BUILTIN_ENVS.items():
        register(env_id, entry_point)


def load_plugins() -> None:
    """Run every `evolgym.envs` entry point once (each registers its envs); thread-safe:
    no caller returns before every plugin has registered."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    with _plugins_lock:
        if _plugins_loaded:
            return
        for entry in importlib.metadata.entry_points(group=PLUGIN_GROUP):
            try:
                hook = entry.load()
                if callable(hook):
                    hook()
            except Exception:
                log.exception("env plugin %s failed to load", entry.name)
        _plugins_loaded = True


def env_ids() -> list[str]:
    load_plugins()
    return list(_evol_ids)


def env_class(env_id: str) -> type[TextEnv]:
    """The class registered under `env_id` (a `KeyError` names the known ids)."""
    load_plugins()
    if env_id not in gym.registry:
        raise KeyError(f"unknown env {env_id!r}; known: {', '.join(env_ids())}")
    spec = gym.spec(env_id)
    creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    if not (isinstance(creator, type) and issubclass(creator, TextEnv)):
        raise KeyError(f"{env_id!r} is not an EvolGym text env (its entry point is {spec.entry_point!r})")
    return creator


def make_local(env_id: str, **kwargs: Any) -> TextEnv:
    cls = env_class(env_id)
    spec = gym.spec(env_id)
    env = cls(**{**spec.kwargs, **kwargs})
    env.spec = spec.copy() if hasattr(spec, "copy") else spec
    return env


def env_spec(env_id: str, **kwargs: Any) -> dict[str, Any]:
    """What `GET /envs` and `evol envs` show of an env: id, card and declared limits."""
    cls = env_class(env_id)
    defaults = gym.spec(env_id).kwargs
    max_turns = kwargs.get("max_turns", defaults.get("max_turns", cls.max_turns))
    return {
        "id": env_id,
        "description": cls.summary(),
        "card": cls.card(),
        "reward_range": [float(cls.reward_range[0]), float(cls.reward_range[1])],
        "max_turns": int(max_turns),
        "success_rule": cls.success_rule,
        "multimodal": bool(cls.multimodal),
        "image_shape": list(cls.image_shape) if cls.multimodal else None,
        "splits": list(cls.splits),
        "max_action_length": cls.max_action_length,
        "kwargs": kwargs,
    }
