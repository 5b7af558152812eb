"""The EvolGym environment contract: `TextEnv`, a `gymnasium.Env` with text actions.

Every EvolGym environment subclasses `TextEnv`. Its class docstring is the env's card
(Markdown sections: Description, Instruction and action format, Rewards, Success,
Termination, Task options), shown by `evol envs` and `GET /envs`.

Main methods:
- `reset(seed=None, options=None) -> (observation, info)`; `info["instruction"]` says
  what to do and the exact action format; `options={"task": k}` (plus `split` /
  `difficulty` where the env has them) selects one reproducible instance.
- `step(action: str) -> (observation, reward, terminated, truncated, info)`; when the
  episode ends `info["success"]` is a bool. An invalid action never raises: the
  observation says what was wrong and the turn counts.
- `expert_action() -> str`: the scripted solver's next action in the current state
  (privileged; it makes the behaviour-cloning data). Before `reset` it raises
  `ResetNeeded`, after the episode's end `EpisodeOver`, as `step` does.
- `kwarg_params`, `option_params`: the declared constructor kwargs and reset options
  (`envs.params.Param`, with their bounds); the constructor and `reset` refuse anything
  else with a `ParamError` (`TaskOptionError` for options), a `ValueError`.
- `valid_actions() -> list[str] | None`: the actions that make sense now, if the env
  can list them (`info["valid_actions"]` carries them each turn).
"""

from __future__ import annotations

import functools
import inspect
import string
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.errors import EpisodeOver, ResetNeeded, TaskOptionError
from envs.params import Param, check_params

PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " "
MAX_TURNS = 1000  # the most turns a client may give any env (an env may declare fewer)
MAX_TASK = 10**9  # the `task` bound of an env that declares no options
SEED = Param("int", minimum=0, maximum=2**63 - 1, help="the episode's seed")


def turns_param(default: int, maximum: int = MAX_TURNS, minimum: int = 1) -> Param:
    """The `max_turns` kwarg of an env (None: the class's default)."""
    return Param("int", minimum=minimum, maximum=maximum, help=f"turns before truncation (default {default})")


RENDER_MODE = Param("str", choices=("ansi",), help='"ansi": render() returns the last observation')


class TextSpace(spaces.Text):
    """Any string up to `max_length` characters (Gymnasium's `Text` limits the charset).

    Samples are drawn from printable ASCII so that `action_space.sample()` gives a
    (usually invalid) command; membership accepts any Unicode text.
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | None = None):
        super().__init__(max_length, min_length=min_length, charset=PRINTABLE, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"TextSpace(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, TextSpace) and other.max_length == self.max_length


def image_space(height: int, width: int) -> spaces.Box:
    return spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8)


class TextEnv(gym.Env):
    """Base class of EvolGym environments (see the module docstring for the contract)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    # Set these in ALL subclasses.
    reward_range: tuple[float, float] = (0.0, 1.0)
    max_turns: int = 20
    success_rule: str = "the final reward reaches the top of the reward range"
    # Set these where they apply.
    multimodal: bool = False
    image_shape: tuple[int, int] = (0, 0)
    splits: tuple[str, ...] = ()
    max_action_length: int = 2048
    max_observation_length: int = 1 << 20
    # What one env worker serving this env reserves when it runs as a Ray actor (`evol serve
    # --ray`), in Ray's actor options: num_cpus, num_gpus, memory (bytes), resources.
    worker_resources: dict[str, Any] = {"num_cpus": 1}
    # Every constructor kwarg and every reset option a caller can set, with its bounds (see
    # envs.params): the constructor and `reset` check them, and so does the server.
    kwarg_params: dict[str, Param] = {"max_turns": turns_param(20), "render_mode": RENDER_MODE}
    option_params: dict[str, Param] = {"task": Param("int", minimum=0, maximum=MAX_TASK, help="task index")}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "__init__" in own:
            cls.__init__ = _checking_kwargs(own["__init__"])
        if "expert_action" in own:
            cls.expert_action = _during_episode(own["expert_action"])

    def __init__(self, max_turns: int | None = None, render_mode: str | None = None):
        if max_turns is not None:
            self.max_turns = int(max_turns)
        self.render_mode = render_mode
        text = TextSpace(self.max_observation_length)
        if self.multimodal:
            self.observation_space = spaces.Dict({"text": text, "image": image_space(*self.image_shape)})
        else:
            self.observation_space = text
        self.action_space = TextSpace(self.max_action_length, min_length=1)
        self._status = "new"
        self._turn = 0
        self._last_observation: Any = None
        self._task: dict[str, Any] = {}

    # ---- subclass hooks -------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Start an episode; return (observation, info) with `info["instruction"]`."""
        raise NotImplementedError

    def _step(self, action: str) -> tuple[Any, float, bool, dict[str, Any]]:
        """Apply a (stripped) action; return (observation, reward, terminated, info)."""
        raise NotImplementedError

    def _success(self) -> bool:
        """Whether the episode (now ended) counts as a success."""
        raise NotImplementedError

    def expert_action(self) -> str:
        """The scripted solver's next action in the current state."""
        raise NotImplementedError

    def outcome(self) -> dict[str, Any]:
        """Facts about the ended episode for its record (`info["outcome"]` at the end), e.g. the
        gold answer: reports read them from the trajectory instead of replaying the task."""
        return {}

    def valid_actions(self) -> list[str] | None:
        """The actions that make sense now, or None if the env cannot list them."""
        return None

    # ---- helpers for subclasses -----------------------------------------------------
    def invalid(self, message: str) -> tuple[Any, float, bool, dict[str, Any]]:
        """The `_step` result for an invalid action: the observation explains it."""
        return self.observation_with_text(message), 0.0, False, {"invalid": True, "error": message}

    def observation_with_text(self, text: str) -> Any:
        """An observation carrying `text` (multimodal envs keep the last image)."""
        if self.multimodal:
            image = self._last_observation["image"] if self._last_observation else None
            if image is None:
                image = np.zeros((*self.image_shape, 3), dtype=np.uint8)
            return {"text": text, "image": image.copy()}  # never hand out the same array twice
        return text

    def select_task(self, options: dict[str, Any], num_tasks: int) -> int:
        """The task index from `options["task"]`, else one drawn from `np_random`."""
        task = options.get("task")
        if task is None:
            return int(self.np_random.integers(num_tasks))
        if isinstance(task, bool) or not isinstance(task, (int, np.integer)) or task < 0:
            raise TaskOptionError(f"options.task must be a non-negative integer, got {task!r}")
        if task >= num_tasks:
            raise TaskOptionError(f"options.task must be below {num_tasks}, got {task}")
        return int(task)

    def select_choice(self, options: dict[str, Any], key: str, choices: tuple | list, default: Any) -> Any:
        value = options.get(key)
        if value is None:
            value = default
        if value not in choices:
            raise TaskOptionError(f"options.{key} must be one of {list(choices)}, got {value!r}")
        return value

    # ---- the contract ---------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            seed = check_params({"seed": SEED}, {"seed": seed}, "reset", error=TaskOptionError)["seed"]
        if options is not None and not isinstance(options, Mapping):
            raise TaskOptionError(f"options must be a mapping, got {type(options).__name__}")
        options = {key: value for key, value in (options or {}).items() if value is not None}
        options = check_params(
            self.option_params, options, "option", owner=type(self).__name__, error=TaskOptionError
        )
        super().reset(seed=seed)
        observation, info = self._reset(options)
        if "instruction" not in info:
            raise RuntimeError(f"{type(self).__name__}._reset must put 'instruction' in info")
        self._status = "running"
        self._turn = 0
        self._last_observation = observation
        info = {**info, "turn": 0, "max_turns": self.max_turns}
        self._add_valid_actions(info)
        return observation, info

    def step(self, action: Any):
        if self._status == "new":
            raise ResetNeeded("call reset() before step()")
        if self._status == "done":
            raise EpisodeOver("the episode has ended; call reset() to start a new one")
        self._turn += 1
        if not isinstance(action, str):
            observation, reward, terminated, info = self.invalid(
                f"Invalid action: expected text, got {type(action).__name__}."
            )
        elif len(action) > self.max_action_length:
            observation, reward, terminated, info = self.invalid(
                f"Invalid action: longer than {self.max_action_length} characters."
            )
        else:
            observation, reward, terminated, info = self._step(action.strip())
        truncated = not terminated and self._turn >= self.max_turns
        info = {"invalid": False, **info, "turn": self._turn}
        if terminated or truncated:
            self._status = "done"
            info["success"] = bool(self._success())
            outcome = self.outcome()
            if outcome:
                info["outcome"] = outcome
        else:
            self._add_valid_actions(info)
        self._last_observation = observation
        return observation, float(reward), bool(terminated), bool(truncated), info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            obs = self._last_observation
            return obs["text"] if isinstance(obs, dict) else (obs or "")
        return None

    @property
    def turn(self) -> int:
        return self._turn

    @property
    def episode_over(self) -> bool:
        return self._status == "done"

    def _add_valid_actions(self, info: dict[str, Any]) -> None:
        actions = self.valid_actions()
        if actions is not None:
            info["valid_actions"] = list(actions)

    # ---- the card -------------------------------------------------------------------
    @classmethod
    def card(cls) -> str:
        """The env's card: its class docstring, dedented Markdown."""
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        return next((line.strip() for line in cls.card().splitlines() if line.strip()), "")


def _checking_kwargs(init: Callable[..., None]) -> Callable[..., None]:
    """`init` behind a check of its kwargs against `kwarg_params` of the class being built.

    Only the outermost constructor checks (a subclass's `super().__init__(...)` passes values
    the subclass already checked), against the declaration of the class of the new env.
    """
    signature = inspect.signature(init)
    self_name = next(iter(signature.parameters))

    @functools.wraps(init)
    def checked_init(self: TextEnv, *args: Any, **kwargs: Any) -> None:
        if type(self).__init__ is checked_init:
            params = type(self).kwarg_params
            owner = type(self).__name__
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError:
                check_params(params, kwargs, "kwarg", owner=owner)  # names an unknown kwarg
                raise
            given: dict[str, Any] = {}
            for name, value in bound.arguments.items():
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    given.update(value)
                elif name != self_name and kind is not inspect.Parameter.VAR_POSITIONAL:
                    given[name] = value
            check_params(params, given, "kwarg", owner=owner)
        init(self, *args, **kwargs)

    return checked_init


def _during_episode(expert_action: Callable[[TextEnv], str]) -> Callable[[TextEnv], str]:
    """`expert_action` refusing, as `step` does, to act before `reset` or after the episode ended."""

    @functools.wraps(expert_action)
    def checked_expert_action(self: TextEnv) -> str:
        if self._status == "new":
            raise ResetNeeded("call reset() before expert_action()")
        if self._status == "done":
            raise EpisodeOver("the episode has ended; call reset() to start a new one")
        return expert_action(self)

    return checked_expert_action


TextEnv.__init__ = _checking_kwargs(TextEnv.__init__)
