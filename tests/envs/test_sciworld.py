"""evol/SciWorld-v0 on the real `scienceworld` package: tasks, invalid actions, gold-path expert, Java lifetime."""

from __future__ import annotations

import gc
import shutil

import pytest

import envs
from envs.errors import TaskOptionError

pytest.importorskip("scienceworld", reason="evol/SciWorld-v0 needs the scienceworld package")
if shutil.which("java") is None:
    pytest.skip("evol/SciWorld-v0 needs Java (OpenJDK 17+) on PATH", allow_module_level=True)

from envs.sciworld.env import DEFAULT_TASKS, SciWorldEnv  # noqa: E402


@pytest.fixture(scope="module")
def env():
    env = envs.make("evol/SciWorld-v0")
    yield env
    env.close()


def java_children() -> list[int]:
    """The ids of the Java processes below this one."""
    psutil = pytest.importorskip("psutil")
    return [p.pid for p in psutil.Process().children(recursive=True) if "java" in p.name()]


def ended(pid: int) -> bool:
    psutil = pytest.importorskip("psutil")
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_reset_gives_the_task_and_the_starting_room(env):
    obs, info = env.reset(seed=0, options={"task": 6, "split": "test"})
    assert (info["task_name"], info["variation"], info["score"]) == ("find-animal", 225, 0)
    assert obs.startswith("Your task is to find a(n) animal.")
    assert "This room is called the art studio." in obs
    assert "focus on OBJ" in info["instruction"] and "You have 30 turns." in info["instruction"]


@pytest.mark.parametrize("k", [1, 4, 8])
def test_gold_path_expert_reaches_the_full_score(env, k):
    episode = envs.run_expert(env, options={"task": k, "split": "test"})
    assert episode.success, (env._episode, episode.actions, episode.observations[-1])
    assert env._score == 100
    assert all(0.0 <= r <= 1.0 for r in episode.rewards)
    assert sum(episode.rewards) == pytest.approx(1.0)


def test_invalid_actions_are_explained_and_change_nothing(env):
    env.reset(options={"task": 4, "split": "test"})
    gold_next = env.expert_action()
    replies = {
        "": "the action is empty",
        "xyzzy plugh ###": "ScienceWorld does not understand 'xyzzy plugh ###'",
        "reset task": "`reset task` is not available here",
    }
    for turn, (action, message) in enumerate(replies.items(), start=1):
        obs, reward, terminated, truncated, info = env.step(action)
        assert obs.startswith("Invalid action: ") and message in obs
        assert info["invalid"] is True and info["turn"] == turn and info["moves"] == 0
        assert reward == 0 and not terminated and not truncated
    assert env.expert_action() == gold_next


def test_focusing_on_a_wrong_object_fails_the_task(env):
    env.reset(options={"task": 6, "split": "test"})
    obs, reward, terminated, truncated, info = env.step("focus on table")
    assert terminated and info["success"] is False and info["score"] < 0 and reward == 0


def test_task_options_pick_task_and_variation(env):
    name = "lifespan-longest-lived"
    _, info = env.reset(options={"task_name": name, "split": "dev", "task": 1})
    assert info["task_name"] == name and info["variation"] == env._variations[name]["dev"][1]
    _, info = env.reset(options={"task_name": "7-1", "variation": 0})
    assert (info["task_name"], info["variation"], info["split"]) == (name, 0, "train")
    with pytest.raises(TaskOptionError, match="variation"):
        env.reset(options={"task_name": name, "split": "test", "variation": 0})
    with pytest.raises(TaskOptionError, match="unknown ScienceWorld task"):
        env.reset(options={"task_name": "fly to the moon"})
    with pytest.raises(TaskOptionError, match="unknown option"):
        env.reset(options={"level": 1})
    assert DEFAULT_TASKS[:2] == ("use-thermometer", "power-component") and len(DEFAULT_TASKS) == 12


def test_a_fresh_java_process_replays_the_episode_and_ends_with_close(env):
    paint = "chemistry-mix-paint-secondary-color"
    env.reset(options={"task_name": paint, "split": "test", "variation": 29})
    # Variation 29 leaves a search route in ScienceWorld's cache that would change 28's gold path.
    options = {"task_name": paint, "split": "test", "variation": 28}
    obs, _ = env.reset(options=options)
    other = SciWorldEnv()
    assert other.java_pid is None  # Java starts on the first reset
    assert other.reset(options=options)[0] == obs
    assert other._gold == env._gold
    pid = other.java_pid
    assert pid in java_children()
    other.close()
    other.close()  # idempotent
    assert ended(pid) and other.java_pid is None
    with pytest.raises(envs.ResetNeeded):
        other.step("look around")
    assert pid not in java_children()


def test_java_process_ends_when_the_env_is_garbage_collected():
    before = set(java_children())
    env = SciWorldEnv()
    env.reset(options={"task": 8, "split": "test"})
    pid = env.java_pid
    assert pid not in before
    del env
    gc.collect()
    assert ended(pid)
    assert set(java_children()) <= before
