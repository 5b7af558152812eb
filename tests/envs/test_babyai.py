"""evol/BabyAI-v0: text view, actions, invalid actions, replay, expert, splits (real minigrid)."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.babyai.describe import relative_position, visible_cells
from envs.babyai.env import TASKS_PER_SPLIT, BabyAIEnv, task_seed
from envs.errors import TaskOptionError

pytest.importorskip("minigrid")


@pytest.fixture(scope="module")
def env() -> BabyAIEnv:
    return envs.make("evol/BabyAI-v0")


def facing(env: BabyAIEnv):
    return env._env.grid.get(*env._env.front_pos)


def test_reset_describes_the_visible_objects_of_a_known_task(env):
    obs, info = env.reset(seed=0, options={"task": 0, "split": "test", "level": "GoToRedBallGrey"})
    assert info["mission"] == "go to the red ball"
    assert obs.startswith("Your goal: go to the red ball\nYou see:\n")
    assert "- a red ball 1, 2 steps forward and 1 step to your right\n" in obs
    assert "- a grey ball 1, 3 steps to your right\n" in obs
    assert "- a grey ball 2, 3 steps forward and 1 step to your right\n" in obs
    assert "There is a wall directly to your left." in obs
    assert "You are not carrying anything." in obs
    assert obs.splitlines()[-1].startswith("Available actions: turn left, turn right, move forward, ")
    assert "go to red ball 1" in info["valid_actions"]
    assert "pick up red ball 1" in info["valid_actions"]


@pytest.mark.parametrize("level", ["GoToLocal", "OpenDoor", "UnlockLocal"])
def test_description_lists_exactly_what_minigrid_shows_the_agent(env, level):
    for k in range(5):
        obs, _ = env.reset(options={"task": k, "level": level})
        grid, vis = env._env.gen_obs_grid()
        size = env._env.agent_view_size
        expected = []
        for j in range(size):
            for i in range(size):
                cell = grid.get(i, j)
                if vis[i, j] and cell is not None and cell.type in ("ball", "key", "box", "door"):
                    if (i, j) != (size // 2, size - 1):
                        expected.append(f"{cell.color} {cell.type}")
                        where = relative_position(size - 1 - j, i - size // 2)
                        pattern = rf"- a {cell.color} {cell.type} \d+( \(\w+\))?, {where}\n"
                        assert re.search(pattern, obs), (pattern, obs)
        listed = [line for line in obs.splitlines() if line.startswith("- a ")]
        assert len(listed) == len(expected)


def test_visibility_matches_minigrids_occlusion(env):
    rng = random.Random(0)
    for k in range(40):
        _, info = env.reset(options={"task": k})
        for _ in range(6):
            grid, vis = env._env.gen_obs_grid()
            cells, seen = visible_cells(env._env)
            size = env._env.agent_view_size
            assert [bool(vis[v % size, v // size]) for v in range(size * size)] == seen
            _, _, terminated, truncated, info = env.step(rng.choice(info["valid_actions"]))
            if terminated or truncated:
                break


def test_go_to_walks_to_the_object_and_faces_it(env):
    _, info = env.reset(options={"task": 3, "level": "GoToLocal"})
    mission = info["mission"]
    action = next(a for a in info["valid_actions"] if a.startswith("go to ") and a[6:-2] not in mission)
    color, kind = action.split()[2:4]
    obs, reward, terminated, _, info = env.step(action)
    assert not info["invalid"] and info["turn"] == 1
    assert (facing(env).color, facing(env).type) == (color, kind)
    assert obs.startswith(f"You went to the {color} {kind}; it is right in front of you.")
    assert f"- a {color} {kind} 1, 1 step forward\n" in obs


def test_pick_up_walks_to_the_object_and_carries_it(env):
    _, info = env.reset(options={"task": 3, "level": "GoToLocal"})
    mission = info["mission"]
    action = next(a for a in info["valid_actions"] if a.startswith("pick up ") and a[8:-2] not in mission)
    color, kind = action.split()[2:4]
    obs, _, _, _, info = env.step(action)
    carrying = env._env.carrying
    assert (carrying.color, carrying.type) == (color, kind)
    assert obs.startswith(f"You picked up the {color} {kind}.")
    assert f"You are carrying a {color} {kind}." in obs
    assert "drop" in info["valid_actions"] or facing(env) is not None
    assert not any(a.startswith("pick up") for a in info["valid_actions"])


def test_toggle_and_go_through_then_go_through_back(env):
    _, info = env.reset(options={"task": 0, "split": "test", "level": "GoToDoor"})
    assert info["mission"] == "go to the red door"
    assert "toggle and go through purple door 1" in info["valid_actions"]
    start_room = env._env.room_from_pos(*env._env.agent_pos)
    obs, _, terminated, _, info = env.step("toggle and go through purple door 1")
    assert not terminated
    assert obs.startswith("You opened the purple door and went through it.")
    assert env._env.room_from_pos(*env._env.agent_pos) is not start_room
    door = next(d for d in start_room.doors if d is not None and d.color == "purple")
    assert door.is_open
    env.step("turn left")
    obs, _, _, _, info = env.step("turn left")
    assert "go through purple door 1" in info["valid_actions"]
    assert "- a purple door 1 (open), " in obs
    obs, _, _, _, info = env.step("go through purple door 1")
    assert obs.startswith("You went through the purple door.")
    assert env._env.room_from_pos(*env._env.agent_pos) is start_room


def test_toggle_opens_the_target_door_and_succeeds(env):
    _, info = env.reset(options={"task": 0, "split": "test", "level": "OpenRedDoor"})
    obs, _, terminated, _, info = env.step("go to red door 1")
    assert not terminated and obs.startswith("You went to the red door; it is right in front of you.")
    assert "toggle" in info["valid_actions"]
    obs, reward, terminated, _, info = env.step("toggle")
    assert terminated and info["success"] and 0 < reward <= 1
    assert obs.startswith("You opened the red door. The task is completed.")


def test_locked_door_opens_only_with_its_key(env):
    _, info = env.reset(options={"task": 1, "split": "test", "level": "UnlockLocal"})
    env.step("turn right")
    obs, _, _, _, info = env.step("turn right")
    assert "- a purple door 1 (locked), 5 steps forward and 2 steps to your right" in obs
    assert "toggle and go through purple door 1" not in info["valid_actions"]
    obs, _, _, _, info = env.step("toggle and go through purple door 1")
    assert info["invalid"] and "the purple door 1 is locked; you need to carry the purple key" in obs
    obs, _, _, _, info = env.step("pick up purple key 1")
    assert obs.startswith("You picked up the purple key.")
    env.step("turn left")
    obs, reward, terminated, _, info = env.step("toggle and go through purple door 1")
    assert terminated and info["success"] and reward > 0
    assert obs.startswith("You unlocked and opened the purple door. The task is completed.")


def test_check_available_actions_lists_them_without_changing_anything(env):
    obs0, info0 = env.reset(options={"task": 5})
    pos, direction = tuple(env._env.agent_pos), env._env.agent_dir
    obs, reward, terminated, truncated, info = env.step("  Check Available   Actions ")
    assert not info["invalid"] and reward == 0 and not terminated and not truncated
    assert obs.startswith("You can take the following actions: " + ", ".join(info0["valid_actions"]))
    assert (tuple(env._env.agent_pos), env._env.agent_dir) == (pos, direction)


def test_actions_are_case_and_space_insensitive(env):
    _, info = env.reset(options={"task": 3, "level": "GoToLocal"})
    direction = env._env.agent_dir
    _, _, _, _, info = env.step("  TURN   Left ")
    assert not info["invalid"] and env._env.agent_dir == (direction - 1) % 4


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ("dance wildly", "'dance wildly' is not an action"),
        ("", "the action is empty"),
        ("   ", "the action is empty"),
        ("go to purple ball 9", "you see no purple ball 9"),
        ("go to red ball", "lacks the object's number"),
        ("go to red dragon 1", "'dragon' is not an object type"),
        ("drop", "you are not carrying anything"),
        ("go through red ball 1", "not a door"),
    ],
)
def test_invalid_actions_explain_themselves_and_count_a_turn(env, action, reason):
    obs0, _ = env.reset(options={"task": 0, "split": "test", "level": "GoToRedBallGrey"})
    state = (tuple(env._env.agent_pos), env._env.agent_dir, env._env.step_count)
    obs, reward, terminated, truncated, info = env.step(action)
    assert info["invalid"] and info["turn"] == 1 and reward == 0 and not terminated
    assert obs.startswith("Invalid action: ") and reason in obs
    assert obs.splitlines()[-1] == "Available actions: " + ", ".join(info["valid_actions"])
    assert info["error"] == obs
    assert (tuple(env._env.agent_pos), env._env.agent_dir, env._env.step_count) == state


def test_blocked_move_is_invalid(env):
    _, info = env.reset(options={"task": 1, "split": "test", "level": "GoToRedBall"})
    assert "move forward" not in info["valid_actions"]  # this task starts facing a wall
    obs, _, _, _, info = env.step("move forward")
    assert info["invalid"] and "you cannot move forward, a wall is in the way" in obs


def test_invalid_actions_run_out_the_turns(env):
    env.reset(options={"task": 2})
    for _ in range(env.max_turns):
        _, _, terminated, truncated, info = env.step("xyzzy")
    assert truncated and not terminated and info["turn"] == env.max_turns and info["success"] is False


def test_same_seed_and_options_replay_exactly(env):
    options = {"task": 7, "split": "test"}
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=3, options=options)
        trace = [(obs, info)]
        rng = random.Random(1)
        while True:
            action = rng.choice(info["valid_actions"] + ["nonsense"])
            obs, reward, terminated, truncated, info = env.step(action)
            trace.append((action, obs, reward, terminated, truncated, info))
            if terminated or truncated:
                break
        runs.append(trace)
    assert runs[0] == runs[1]
    obs_a, info_a = env.reset(seed=11)
    obs_b, info_b = env.reset(seed=11)
    assert (obs_a, info_a) == (obs_b, info_b)


def test_expert_succeeds_on_30_test_tasks(env):
    rewards = []
    for k in range(30):
        episode = envs.run_expert(env, seed=0, options={"task": k, "split": "test"})
        assert episode.success, (k, episode.actions)
        rewards.append(episode.reward)
    assert all(0 < r <= 1 for r in rewards)


def test_expert_recovers_after_the_agent_wanders(env):
    rng = random.Random(2)
    for k in range(12):
        _, info = env.reset(options={"task": k, "split": "test"})
        for _ in range(3):
            _, _, terminated, _, info = env.step(rng.choice(info["valid_actions"]))
            if terminated:
                break
        else:
            while True:
                _, _, terminated, truncated, info = env.step(env.expert_action())
                if terminated or truncated:
                    break
            assert info["success"], k


def test_expert_action_is_stable_within_a_turn(env):
    env.reset(options={"task": 9, "split": "test"})
    assert env.expert_action() == env.expert_action()


def test_splits_use_disjoint_seeds_and_differ():
    last_train = task_seed("train", TASKS_PER_SPLIT["train"] - 1)
    assert last_train < task_seed("test", 0)
    env = BabyAIEnv(levels=["GoToLocal"])
    differ = 0
    for k in range(10):
        train, info = env.reset(options={"task": k, "split": "train"})
        test, test_info = env.reset(options={"task": k, "split": "test"})
        assert (info["split"], test_info["split"]) == ("train", "test")
        differ += train != test
    assert differ >= 8


@pytest.mark.parametrize(
    "options",
    [{"split": "dev"}, {"task": -1}, {"task": 10_000, "split": "test"}, {"task": True}, {"level": "Nope"}],
)
def test_bad_task_options_raise(env, options):
    with pytest.raises(TaskOptionError):
        env.reset(options=options)


def test_level_option_accepts_full_ids_and_constructor_levels():
    env = BabyAIEnv(levels=["BabyAI-GoToObj-v0", "PickupLoc"], max_turns=5)
    assert env.levels == ("GoToObj", "PickupLoc")
    _, info = env.reset(options={"task": 4, "level": "BabyAI-PickupLoc-v0"})
    assert info["level"] == "PickupLoc" and info["max_turns"] == 5
    _, info = env.reset(options={"task": 4})
    assert info["level"] == "GoToObj"
    with pytest.raises(ValueError):
        BabyAIEnv(levels=["NoSuchLevel"])


def test_passes_gymnasiums_env_checker():
    check_env(envs.make("evol/BabyAI-v0"), skip_render_check=False)


def test_instruction_and_card(env):
    _, info = env.reset(options={"task": 0})
    assert "exactly one action per turn" in info["instruction"].replace("\n", " ")
    assert info["mission"] in info["instruction"]
    card = BabyAIEnv.card()
    for section in ("Description", "Instruction and action format", "Rewards", "Success", "Termination"):
        assert f"## {section}" in card
    assert "## Task options" in card and "## Registered configurations" in card
    assert envs.env_spec("evol/BabyAI-v0")["splits"] == ["train", "test"]


def test_known_map_grows_with_what_was_seen(env):
    env.reset(options={"task": 0, "level": "OpenDoor"})
    seen = int(np.sum(env._known))
    env.step("turn left")
    assert int(np.sum(env._known)) > seen
