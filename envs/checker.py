"""Check that an env keeps the EvolGym text-env contract, for plugin authors and the test suite.

    import envs
    from envs.checker import check_text_env

    check_text_env(envs.make("acme/Counter-v0"))                 # raises EnvCheckError if broken
    report = check_text_env(env, raise_on_failure=False)         # or read the report
    print(report.format())

`check_text_env` runs Gymnasium's `check_env` and the rules the text contract adds (see
envs/core.py): the instruction at reset, `success` when an episode ends, rewards in the
declared range, invalid actions answered and counted (never raised), the same episode under
the same seed and options, the expert reaching success, out-of-order calls raising
`ResetNeeded` / `EpisodeOver`, and the card's sections. Each rule is a small `check_*`
function that raises `EnvCheckError` naming what is wrong; they work on a local env and on
a served one (`envs.make(id, url=...)`) alike. `evol check ENV [--url URL]` runs them all.
Give `check_text_env` a freshly made env: its first check steps before any reset.
"""

from __future__ import annotations

import re
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gymnasium.utils.env_checker import check_env

from envs.core import TextEnv
from envs.errors import EpisodeOver, ResetNeeded

CARD_SECTIONS = (
    "Description",
    "Instruction and action format",
    "Rewards",
    "Success",
    "Termination",
    "Task options",
)
INVALID_ACTIONS = ("", "xyzzy plugh ###", "go to the moon 42")
REPLAY_SEED = 7
MAX_EPISODE_STEPS = 10_000  # an expert episode longer than this is stuck, whatever max_turns says


class EnvCheckError(AssertionError):
    """An env breaks a rule of the text-env contract; the message says which and how."""


# ---- what an env declares ---------------------------------------------------------------
def declared(env: Any, name: str, default: Any = None) -> Any:
    """What the env declares as `name`: on its class (local) or in its served spec (remote)."""
    spec = getattr(env, "env_spec", None)
    if isinstance(spec, dict) and name in spec:
        return spec[name]
    return getattr(env.unwrapped, name, default)


def card_of(env: Any) -> str:
    unwrapped = env.unwrapped
    if isinstance(unwrapped, TextEnv):
        return unwrapped.card()
    return str(declared(env, "card", "") or "")


def task_options(env: Any, k: int) -> dict[str, Any]:
    """The reset options of task `k` (of the test split where the env has splits)."""
    options: dict[str, Any] = {"task": k}
    if declared(env, "splits", ()):
        options["split"] = "test"
    return options


def text_of(observation: Any) -> str:
    return observation["text"] if isinstance(observation, dict) else observation


# ---- the rules --------------------------------------------------------------------------
def _out_of_order_calls_raise(env: Any, expected: type[Exception], when: str) -> None:
    """`step` and `expert_action` raise `expected` (`when` says at which point of the episode)."""
    for name, call in (
        ("step('anything')", lambda: env.step("anything")),
        ("expert_action()", env.expert_action),
    ):
        try:
            call()
        except expected:
            continue
        except Exception as error:
            raise EnvCheckError(
                f"{name} {when} must raise {expected.__name__}, it raised {error!r}"
            ) from None
        raise EnvCheckError(f"{name} {when} must raise {expected.__name__}, it returned")


def check_step_before_reset(env: Any) -> None:
    """`step` (and `expert_action`) before the first `reset` raise `ResetNeeded`."""
    _out_of_order_calls_raise(env, ResetNeeded, "before reset() (check a freshly made env)")


def check_declarations(env: Any) -> None:
    """A reward range low <= high, a positive `max_turns`, and a card with its sections."""
    low, high = env.reward_range
    if not low <= high:
        raise EnvCheckError(f"reward_range must be (low, high) with low <= high, got {env.reward_range}")
    max_turns = declared(env, "max_turns")
    if not isinstance(max_turns, int) or max_turns < 1:
        raise EnvCheckError(f"max_turns must be a positive int, got {max_turns!r}")
    sections = set(re.findall(r"^## (.+?)\s*$", card_of(env), re.M))
    missing = [section for section in CARD_SECTIONS if section not in sections]
    if missing:
        raise EnvCheckError(
            f"the card (the env class's docstring) lacks the section(s) {missing}; "
            f"every card has '## ' sections {list(CARD_SECTIONS)}"
        )


def check_gymnasium(env: Any) -> None:
    """Gymnasium's own `check_env` (spaces, reset and step return types, seeding)."""
    check_env(env, skip_render_check=not isinstance(env.unwrapped, TextEnv))


def check_reset_gives_instruction(env: Any, options: dict[str, Any] | None = None) -> None:
    """`reset` returns an observation with text and `info["instruction"]`, a non-empty string."""
    observation, info = env.reset(seed=0, options=options or task_options(env, 0))
    instruction = info.get("instruction") if isinstance(info, dict) else None
    if not isinstance(instruction, str) or not instruction.strip():
        raise EnvCheckError(f"reset() must put a non-empty 'instruction' string in info, got {instruction!r}")
    if not isinstance(text_of(observation), str) or not text_of(observation):
        raise EnvCheckError("reset() must return an observation with text")


def _check_step(env: Any, action: str, result: tuple) -> None:
    """One step's result: a reward in range, `turn` in info, `success` (a bool) when it ended."""
    _, reward, terminated, truncated, info = result
    low, high = env.reward_range
    if not low <= reward <= high:
        raise EnvCheckError(
            f"step({action!r}) gave reward {reward}, outside the declared range [{low}, {high}]"
        )
    if (terminated or truncated) and not isinstance(info.get("success"), bool):
        raise EnvCheckError(
            f"the info of an episode's last step must hold 'success' (a bool), got {info.get('success')!r}"
        )


def play_expert(env: Any) -> tuple[list[str], dict[str, Any]]:
    """Follow `expert_action()` from the current state to the episode's end (checking every
    step); the actions taken and the last info."""
    actions: list[str] = []
    for _ in range(MAX_EPISODE_STEPS):
        action = env.expert_action()
        result = env.step(action)
        actions.append(action)
        _check_step(env, action, result)
        if result[2] or result[3]:
            return actions, result[4]
    raise EnvCheckError(f"the expert's episode did not end after {MAX_EPISODE_STEPS} steps")


def check_expert_reaches_success(env: Any, tasks: int = 5) -> None:
    """The expert succeeds (with a positive final reward) on tasks 0..tasks-1, every step's reward
    in range and `success` in the last info."""
    for k in range(tasks):
        env.reset(seed=k, options=task_options(env, k))
        actions, info = play_expert(env)
        if not info["success"]:
            raise EnvCheckError(f"task {k}: the expert failed after the actions {actions}")


def check_replay(env: Any, seed: int = REPLAY_SEED, options: dict[str, Any] | None = None) -> None:
    """The same seed and options replay the same episode: observations, rewards, infos."""
    options = options or task_options(env, 1)

    def play() -> list:
        observation, info = env.reset(seed=seed, options=options)
        trace = [text_of(observation), info]
        for action in ["nonsense action", None, None, None, None]:
            action = action or env.expert_action()
            observation, reward, terminated, truncated, info = env.step(action)
            trace.append((action, text_of(observation), reward, terminated, truncated, info))
            if terminated or truncated:
                break
        return trace

    first, second = play(), play()
    if first != second:
        turn = next(i for i, (a, b) in enumerate(zip(first, second)) if a != b)
        raise EnvCheckError(
            f"reset(seed={seed}, options={options}) and the same actions gave a different episode "
            f"(first difference at {'reset' if turn < 2 else f'step {turn - 1}'}): {first[turn]!r} != {second[turn]!r}"
        )


def check_invalid_actions(env: Any, actions: Sequence[str] = INVALID_ACTIONS) -> None:
    """Invalid actions never raise: each is answered with an explanation, counts as a turn, is
    flagged `info["invalid"]`, and leaves the state consistent (the expert still succeeds)."""
    env.reset(seed=0, options=task_options(env, 0))
    for turn, action in enumerate(actions, start=1):
        try:
            result = env.step(action)
        except Exception as error:
            raise EnvCheckError(
                f"the invalid action {action!r} raised {error!r}; it must be answered in the observation"
            ) from error
        observation, _, terminated, _, info = result
        if info.get("turn") != turn:
            raise EnvCheckError(
                f"the invalid action {action!r} must count as turn {turn}, info['turn'] is {info.get('turn')!r}"
            )
        if info.get("invalid") is not True:
            raise EnvCheckError(
                f"the invalid action {action!r} must set info['invalid'] = True; observation: {observation!r}"
            )
        if not text_of(observation).strip():
            raise EnvCheckError(
                f"the observation after the invalid action {action!r} must explain what was wrong"
            )
        if terminated:
            raise EnvCheckError(f"the invalid action {action!r} ended the episode")
    _, info = play_expert(env)
    if not info["success"]:
        raise EnvCheckError(
            "after invalid actions the expert no longer succeeds: they left the state inconsistent"
        )


def check_step_after_episode_end(env: Any) -> None:
    """`step` (and `expert_action`) after the episode ended raise `EpisodeOver`."""
    env.reset(seed=0, options=task_options(env, 0))
    play_expert(env)
    _out_of_order_calls_raise(env, EpisodeOver, "after the episode ended")


# ---- all of them ------------------------------------------------------------------------
@dataclass
class CheckResult:
    """One rule's outcome: `error` is None when it passed; `warnings` Gymnasium's or the env's."""

    name: str
    description: str
    error: str | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None


@dataclass
class CheckReport:
    """Every rule's outcome for one env."""

    env: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [result for result in self.results if not result.passed]

    def format(self) -> str:
        lines = [f"Contract check of {self.env}"]
        width = max((len(result.name) for result in self.results), default=0)
        for result in self.results:
            status = "ok  " if result.passed else "FAIL"
            lines.append(
                f"  {status} {result.name.ljust(width)}  {result.seconds:5.1f}s  {result.description}"
            )
            if result.error:
                lines += [f"         {line}" for line in result.error.splitlines()]
            lines += [f"         warning: {text}" for text in result.warnings]
        passed = sum(result.passed for result in self.results)
        lines.append(f"{passed} of {len(self.results)} checks passed")
        return "\n".join(lines)


def _checks(
    expert_tasks: int, invalid_actions: Sequence[str]
) -> list[tuple[str, str, Callable[[Any], None]]]:
    """(name, what it checks, the check) for every rule, in the order they run (the first needs
    an env never reset)."""
    return [
        ("step_before_reset", "step/expert_action before reset raise ResetNeeded", check_step_before_reset),
        ("declarations", "reward range, max_turns, card sections", check_declarations),
        ("gymnasium", "gymnasium.utils.env_checker.check_env", check_gymnasium),
        (
            "reset_gives_instruction",
            "reset gives an observation and info['instruction']",
            check_reset_gives_instruction,
        ),
        ("replay", "the same seed and options replay the same episode", check_replay),
        (
            "invalid_actions",
            "invalid actions are answered, counted, and leave the state consistent",
            lambda env: check_invalid_actions(env, invalid_actions),
        ),
        (
            "expert_reaches_success",
            f"the expert succeeds on {expert_tasks} tasks; rewards in range; 'success' at the end",
            lambda env: check_expert_reaches_success(env, expert_tasks),
        ),
        (
            "step_after_episode_end",
            "step/expert_action after the end raise EpisodeOver",
            check_step_after_episode_end,
        ),
    ]


CHECK_NAMES = tuple(name for name, _, _ in _checks(1, INVALID_ACTIONS))


def _run_check(name: str, description: str, check: Callable[[Any], None], env: Any) -> CheckResult:
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check(env)
            error = None
        except EnvCheckError as failure:
            error = str(failure)
        except Exception as failure:  # the env raised where the contract wants an answer
            where = traceback.format_exception(type(failure), failure, failure.__traceback__)[-3:]
            error = f"raised {failure!r}\n" + "".join(where).rstrip()
    notes = sorted({str(warning.message) for warning in caught})
    return CheckResult(name, description, error, time.perf_counter() - started, notes)


def check_text_env(
    env: Any,
    *,
    expert_tasks: int = 5,
    invalid_actions: Sequence[str] = INVALID_ACTIONS,
    only: Sequence[str] | None = None,
    raise_on_failure: bool = True,
) -> CheckReport:
    """Run every rule (or the `only` ones, by name: `CHECK_NAMES`) on a freshly made `env`.

    Returns the report; with `raise_on_failure` (the default) a broken rule raises
    `EnvCheckError` carrying the whole report instead."""
    unknown = sorted(set(only or ()) - set(CHECK_NAMES))
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; known: {list(CHECK_NAMES)}")
    spec = getattr(env, "spec", None)
    name = getattr(env, "env_id", None) or getattr(spec, "id", None) or type(env.unwrapped).__name__
    report = CheckReport(env=name)
    for check_name, description, check in _checks(expert_tasks, invalid_actions):
        if only is None or check_name in only:
            report.results.append(_run_check(check_name, description, check, env))
    if raise_on_failure and not report.passed:
        raise EnvCheckError(report.format())
    return report
