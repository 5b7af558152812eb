"""The contract suite: every registered env keeps the text-env contract, locally and through a
live server, as `envs.checker.check_text_env` (and `evol check`) checks it; and the checker
names the rule a broken env breaks."""

from __future__ import annotations

import pytest

import envs
from envs.checker import CHECK_NAMES, EnvCheckError, check_text_env

ENV_IDS = envs.env_ids()
EXPERT_TASKS = {"evol/TextWorld-v0": 2}  # generated games cost ~2 s each; others try more


@pytest.mark.parametrize("where", ["local", "remote"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_keeps_the_contract(env_id, where, request):
    url = request.getfixturevalue("shared_server").url if where == "remote" else None
    env = envs.make(env_id, url=url)
    try:
        report = check_text_env(env, expert_tasks=EXPERT_TASKS.get(env_id, 5))
    finally:
        env.close()
    assert [result.name for result in report.results] == list(CHECK_NAMES)


# ---- the checker catches what it should -----------------------------------------------------
def counter_env():
    from acme_envs import CounterEnv

    return CounterEnv


def broken(**methods):
    """A Counter env with some methods replaced (the docstring, a card, is kept unless given)."""
    cls = counter_env()
    return type("BrokenCounter", (cls,), {"__doc__": cls.__doc__, **methods})


def failures(env) -> dict[str, str]:
    report = check_text_env(env, raise_on_failure=False)
    return {result.name: result.error for result in report.failures}


def test_a_correct_env_passes_and_the_report_says_so():
    report = check_text_env(counter_env()())
    assert report.passed and report.format().endswith(
        f"{len(CHECK_NAMES)} of {len(CHECK_NAMES)} checks passed"
    )


def test_an_invalid_action_that_raises_is_reported():
    def _step(self, action):
        if action not in ("inc", "dec", "submit"):
            raise ValueError("unknown command")
        return counter_env()._step(self, action)

    found = failures(broken(_step=_step)())
    assert "invalid_actions" in found and "unknown command" in found["invalid_actions"]


def test_a_missing_card_section_is_named():
    cls = broken(__doc__="Count.\n\n## Description\nCount up.\n\n## Rewards\n1 at the target.")
    assert "'Success'" in failures(cls())["declarations"]


def test_an_episode_that_does_not_replay_is_reported():
    import itertools

    draws = itertools.count()

    def _reset(self, options):
        observation, info = counter_env()._reset(self, options)
        return f"{observation} (draw {next(draws)})", info

    assert "different episode" in failures(broken(_reset=_reset)())["replay"]


def test_an_expert_that_fails_and_a_reward_out_of_range_are_reported():
    def expert_action(self):
        return "submit"

    found = failures(broken(expert_action=expert_action)())
    assert "the expert failed" in found["expert_reaches_success"]

    def _step(self, action):
        observation, reward, terminated, info = counter_env()._step(self, action)
        return observation, reward * 2, terminated, info

    assert "outside the declared range" in failures(broken(_step=_step)())["expert_reaches_success"]


def test_check_text_env_raises_with_the_report_and_runs_only_what_is_asked():
    cls = broken(__doc__="Count.")
    with pytest.raises(EnvCheckError, match="lacks the section"):
        check_text_env(cls())
    report = check_text_env(cls(), only=["replay"])
    assert [result.name for result in report.results] == ["replay"] and report.passed
    with pytest.raises(ValueError, match="unknown check"):
        check_text_env(cls(), only=["nope"])
