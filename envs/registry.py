"""The env registry: built-in envs under the `evol/` namespace, plugins by entry point.

Registration is data: an id names an entry point (`module:Class`) and default kwargs in
Gymnasium's registry, so `gymnasium.make("evol/BabyAI-v0")` and `envs.make(...)` build
the same thing. Third-party packages register theirs from an entry point in the group
`evolgym.envs` (a callable that calls `envs.register`); `evol serve` serves them as is.

An env family's own evaluation report (math's majority vote and pass@k, MM-SY's rates) is
registered the same way, as data: `register_report(EvalReport(...))` names the envs it
covers and a `module:function` that computes it; `evol eval` finds it by env id
(`reports_for`) and knows no env.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from envs.core import TextEnv
from envs.errors import TaskOptionError
from envs.params import check_params, params_schema

log = logging.getLogger(__name__)

PLUGIN_GROUP = "evolgym.envs"

BUILTIN_ENVS: dict[str, str] = {
    "evol/BabyAI-v0": "envs.babyai.env:BabyAIEnv",
    "evol/TextWorld-v0": "envs.textworld.env:TextWorldEnv",
    "evol/MathCritique-v0": "envs.math.critique_env:MathCritiqueEnv",
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
    "evol/RewardJudge-v0": "envs.rewardjudge.env:RewardJudgeEnv",
    "evol/AdversarialImage-v0": "envs.adversarial.env:AdversarialImageEnv",
}


@dataclass(frozen=True)
class EvalOption:
    """An `evol eval --NAME` flag an `EvalReport` adds: its type, default and help."""

    type: type = str
    default: Any = None
    help: str = ""
    metavar: str | None = None


@dataclass(frozen=True)
class EvalReport:
    """An env family's own evaluation report, which `evol eval` adds for the envs it covers.

    - `name`: what the report is called where it is printed ("MM-SY rates").
    - `envs`: the env ids it covers, or patterns of them (`"acme/Math*"`).
    - `function`: `"module:function"`, called as `function(trajectories, env_kwargs=kwargs)` with
      the run's trajectories of one covered env (objects with `env`, `key`, `task`, `actions`,
      `error`, ...: `evol.trajectory.Trajectory`) and the constructor kwargs the run gave that
      env; it returns a JSON-able dict.
    - `file`: the JSON file it is written to in the eval directory (with the env's name added
      when a run covers several of its envs).
    - `headline`: the report's keys `evol eval` prints.
    - `options`: flags the report adds to `evol eval` (`--NAME`); `env_kwargs` (`"module:function"`)
      turns their values, a dict by name, into constructor kwargs of the covered envs (`{}`: none).
    """

    name: str
    envs: tuple[str, ...]
    function: str
    file: str
    headline: tuple[str, ...] = ()
    options: Mapping[str, EvalOption] = field(default_factory=dict)
    env_kwargs: str | None = None

    def covers(self, env_id: str) -> bool:
        return any(fnmatch.fnmatchcase(env_id, pattern) for pattern in self.envs)

    def compute(self, trajectories: list[Any], env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        """The report over the trajectories of one covered env, run with `env_kwargs`."""
        return _resolve(self.function)(trajectories, env_kwargs=env_kwargs)

    def kwargs_for(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The env kwargs the values of this report's `evol eval` flags ask for."""
        return dict(_resolve(self.env_kwargs)(values)) if self.env_kwargs else {}


def _resolve(reference: str) -> Any:
    """The object a `"module:name"` reference names."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


BUILTIN_REPORTS: tuple[EvalReport, ...] = (
    EvalReport(
        name="test-time scaling",
        envs=("evol/MathCritique-v0",),
        function="envs.math.scaling:scaling_report",
        file="test_time.json",
        headline=(
            "tasks",
            "samples",
            "before",
            "after",
            "fixed_by_refinement",
            "broken_by_refinement",
            "critiques",
        ),
        options={
            "refine": EvalOption(int, 0, "critique-then-refine rounds (math envs)", "R"),
            "critic": EvalOption(
                str,
                "oracle",
                "critic for --refine: oracle (default) or an agent spec (hf:PATH, openai:URL#MODEL)",
            ),
        },
        env_kwargs="envs.math.scaling:refine_kwargs",
    ),
    EvalReport(
        name="self-talk",
        envs=("evol/MathCritique-v0",),
        function="envs.math.self_talk:self_talk_report",
        file="self_talk.json",
        headline=("accuracy", "checked", "flagged", "right_when_flagged", "flag_precision"),
    ),
    EvalReport(
        name="MM-SY rates",
        envs=("evol/Sycophancy-v0",),
        function="envs.sycophancy.metrics:mmsy_report",
        file="mmsy.json",
        headline=("acc_r1", "sycophancy_rate", "correction_rate"),
    ),
)

_evol_ids: list[str] = []
_reports: list[EvalReport] = []
_plugins_loaded = False
_plugins_lock = threading.RLock()


def register(env_id: str, entry_point: str, listed: bool = True, **kwargs: Any) -> None:
    """Register a `TextEnv` under `env_id` with Gymnasium and list it as an EvolGym env (`listed`
    false: a private id of this process — `make` builds it, `env_ids()` and servers never show it)."""
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=entry_point, kwargs=kwargs, disable_env_checker=True)
    if listed and env_id not in _evol_ids:
        _evol_ids.append(env_id)


def register_report(report: EvalReport) -> None:
    """Make `evol eval` compute `report` for the envs it covers (once, however often registered)."""
    if report not in _reports:
        _reports.append(report)


def register_builtin() -> None:
    for env_id, entry_point in BUILTIN_ENVS.items():
        register(env_id, entry_point)
    for report in BUILTIN_REPORTS:
        register_report(report)


def eval_reports() -> list[EvalReport]:
    """Every registered report, plugins' included."""
    load_plugins()
    return list(_reports)


def reports_for(env_id: str) -> list[EvalReport]:
    """The reports that cover `env_id`."""
    return [report for report in eval_reports() if report.covers(env_id)]


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


def check_kwargs(env_id: str, kwargs: dict[str, Any] | None, from_client: bool = True) -> dict[str, Any]:
    """`kwargs` for building `env_id`, checked against its declaration (`kwarg_params`).

    A `ParamError` (a `ValueError`) names the unknown key, the value out of range or of the
    wrong type; `from_client` also refuses the kwargs only the server may set (files, objects).
    A `KeyError` for an unknown env id."""
    cls = env_class(env_id)
    return check_params(cls.kwarg_params, kwargs, "kwarg", owner=env_id, from_client=from_client)


def check_options(env_id: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """Reset `options` of `env_id` checked against its declaration (`option_params`), None values
    dropped (they mean the default), as `reset` does; a `TaskOptionError` (a `ParamError`) otherwise."""
    cls = env_class(env_id)
    if options is not None and not isinstance(options, dict):
        raise TaskOptionError(f"{env_id}: options must be a mapping, got {type(options).__name__}")
    given = {key: value for key, value in (options or {}).items() if value is not None}
    return check_params(
        cls.option_params, given, "option", owner=env_id, from_client=True, error=TaskOptionError
    )


def env_spec(env_id: str, **kwargs: Any) -> dict[str, Any]:
    """What `GET /envs` and `evol envs` show of an env: id, card, declared limits and parameters."""
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
        "kwargs_schema": params_schema(cls.kwarg_params),
        "options_schema": params_schema(cls.option_params),
    }
