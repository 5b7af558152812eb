"""The contract suite: every registered env, locally and through a live server.

For each env: Gymnasium's `check_env` passes; a task replays identically under the same
seed and options; the expert reaches success; invalid actions are answered, counted, and
leave the state consistent (the expert still succeeds afterwards).
"""

from __future__ import annotations

import pytest
from gymnasium.utils.env_checker import check_env

import envs
from server.client import RemoteEnv

ENV_IDS = envs.env_ids()
EXPERT_TASKS = {"evol/TextWorld-v0": 2}  # generated games cost ~2 s each; others try more
INVALID_ACTIONS = ["", "xyzzy plugh ###", "go to the moon 42"]


def task_options(env_id: str, k: int) -> dict:
    options = {"task": k}
    if envs.env_class(env_id).splits:
        options["split"] = "test"
    return options


@pytest.fixture(params=["local", "remote"])
def make_env(request, shared_server):
    made = []

    def make(env_id: str):
        env = envs.make(env_id) if request.param == "local" else RemoteEnv(env_id, url=shared_server.url)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


def observation_text(observation) -> str:
    return observation["text"] if isinstance(observation, dict) else observation


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_passes(env_id, make_env):
    env = make_env(env_id)
    check_env(env, skip_render_check=isinstance(env, RemoteEnv))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_info_carries_instruction_and_end_carries_success(env_id, make_env):
    env = make_env(env_id)
    observation, info = env.reset(seed=0, options=task_options(env_id, 0))
    assert isinstance(info["instruction"], str) and info["instruction"]
    assert observation_text(observation)
    episode = envs.run_expert(env, seed=0, options=task_options(env_id, 0))
    low, high = env.reward_range
    assert all(low <= reward <= high for reward in episode.rewards)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_task_replays_identically(env_id, make_env):
    env = make_env(env_id)
    options = task_options(env_id, 1)

    def play() -> list:
        observation, info = env.reset(seed=7, options=options)
        trace = [observation_text(observation), info]
        actions = ["nonsense action"] + [None] * 4
        for action in actions:
            action = action or env.expert_action()
            observation, reward, terminated, truncated, info = env.step(action)
            trace.append((action, observation_text(observation), reward, terminated, truncated, info))
            if terminated or truncated:
                break
        return trace

    assert play() == play()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_expert_reaches_success(env_id, make_env):
    env = make_env(env_id)
    for k in range(EXPERT_TASKS.get(env_id, 5)):
        episode = envs.run_expert(env, seed=k, options=task_options(env_id, k))
        assert episode.success, f"{env_id} task {k}: expert failed after {episode.actions}"
        assert episode.reward > 0


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_invalid_actions_are_answered_and_counted(env_id, make_env):
    env = make_env(env_id)
    options = task_options(env_id, 0)
    env.reset(seed=0, options=options)
    for turn, action in enumerate(INVALID_ACTIONS, start=1):
        observation, reward, terminated, truncated, info = env.step(action)
        assert info["turn"] == turn
        assert info["invalid"] is True, (action, observation)
        assert observation_text(observation).strip(), "an invalid action must be explained"
        assert not terminated
    # The state stayed consistent: the expert still finishes the task from here.
    while True:
        observation, reward, terminated, truncated, info = env.step(env.expert_action())
        if terminated or truncated:
            break
    assert info["success"] is True


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_out_of_order_raises_episode_state_errors(env_id, make_env):
    env = make_env(env_id)
    with pytest.raises(envs.ResetNeeded):
        env.step("anything")
    env.reset(seed=0, options=task_options(env_id, 0))
    while True:
        *_, terminated, truncated, _ = env.step(env.expert_action())
        if terminated or truncated:
            break
    with pytest.raises(envs.EpisodeOver):
        env.step("anything")
