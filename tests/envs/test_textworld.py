"""evol/TextWorld-v0 on real games made by TextWorld's generator (each about 0.5 s, then cached)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import TaskOptionError
from envs.textworld import games
from envs.textworld.env import TextWorldEnv
from envs.textworld.games import GameCache, GameParams, generator_seed

# TextWorld silences this at import, but pytest resets warning filters for each test.
pytestmark = pytest.mark.filterwarnings("ignore::jericho.UnsupportedGameWarning")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("textworld-cache")


@pytest.fixture()
def env(cache_dir: Path):
    env = envs.make("evol/TextWorld-v0", cache_dir=cache_dir)
    yield env
    env.close()


def game_folders(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir()]


def test_passes_gymnasium_env_checker(cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EVOL_CACHE_DIR", str(cache_dir / "checker"))  # check_env makes more envs itself
    env = envs.make("evol/TextWorld-v0")
    check_env(env, skip_render_check=False)
    env.close()
    assert (cache_dir / "checker" / "textworld").is_dir()


def test_second_make_and_reset_reuse_the_cached_game(tmp_path: Path):
    options = {"task": 7, "split": "test"}
    first = TextWorldEnv(cache_dir=tmp_path)
    first.reset(seed=0, options=options)
    [folder] = game_folders(tmp_path)
    game_file = folder / games.GAME_FILE
    mtime = game_file.stat().st_mtime_ns
    first.close()

    second = TextWorldEnv(cache_dir=tmp_path)
    second.reset(seed=0, options=options)
    assert game_folders(tmp_path) == [folder]
    assert game_file.stat().st_mtime_ns == mtime
    second.close()


def _get_game(root: str, params: GameParams, barrier, generations, paths) -> None:
    real_generate = games.generate_game

    def counting_generate(*args, **kwargs):
        with generations.get_lock():
            generations.value += 1
        return real_generate(*args, **kwargs)

    games.generate_game = counting_generate  # this child only: count the real generations
    barrier.wait()
    paths.put(str(GameCache(root).get(params)))


def test_two_processes_generating_one_game_both_succeed_and_leave_one_game(tmp_path: Path):
    ctx = multiprocessing.get_context("fork")
    params = GameParams(3, 5, 3, seed=generator_seed("train", 11, 3, 5, 3))
    barrier, generations, paths = ctx.Barrier(2), ctx.Value("i", 0), ctx.Queue()
    workers = [
        ctx.Process(target=_get_game, args=(str(tmp_path), params, barrier, generations, paths))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    results = {paths.get(timeout=5), paths.get(timeout=5)}
    assert results == {str(GameCache(tmp_path).game_path(params))}
    assert generations.value == 1
    assert [p.name for p in game_folders(tmp_path)] == [params.key]  # no staging folder left behind
    assert {p.name for p in (tmp_path / params.key).iterdir()} >= {"game.z8", "game.json"}
    assert games.plays_through(Path(results.pop()), games.Game.load(str(tmp_path / params.key / "game.json")))


@pytest.mark.parametrize("task", [0, 1, 2])
def test_expert_wins_test_tasks(env, task: int):
    episode = envs.run_expert(env, seed=task, options={"task": task, "split": "test"})
    assert episode.success
    assert sum(episode.rewards) == pytest.approx(1.0)
    assert len(episode.actions) <= env.max_turns


def test_expert_recovers_after_the_agent_wanders(env):
    _, info = env.reset(options={"task": 0, "split": "test"})
    for action in ("look", "inventory", info["valid_actions"][0], "xyzzy"):
        _, _, terminated, _, info = env.step(action)
        if terminated:
            return
    while not env.episode_over:
        _, _, _, _, info = env.step(env.expert_action())
    assert info["success"]


def test_same_seed_and_options_replay_exactly(cache_dir: Path):
    def play() -> list:
        env = TextWorldEnv(cache_dir=cache_dir)
        observation, info = env.reset(seed=5, options={"split": "test"})  # the task is drawn from the seed
        trace = [(observation, info)]
        for action in ("look", "", "dance wildly", env.expert_action(), "go west", env.expert_action()):
            trace.append(env.step(action))
            if env.episode_over:
                break
        env.close()
        return trace

    assert play() == play()


def test_reset_describes_the_goal_and_the_room(env):
    observation, info = env.reset(options={"task": 0, "split": "test"})
    assert "$$" not in observation and "-= " in observation  # banner gone, room title kept
    assert "text adventure" in info["instruction"] and "`go east`" in info["instruction"]
    assert info["valid_actions"] == sorted(info["valid_actions"]) and "look" in info["valid_actions"]
    assert info["valid_actions"] == env.valid_actions()
    assert (info["score"], info["won"], info["lost"]) == (0, False, False) and info["max_score"] >= 1
    assert info["task"] == {
        "task": 0,
        "split": "test",
        "difficulty": "easy",
        "world_size": 3,
        "nb_objects": 5,
        "quest_length": 3,
    }


@pytest.mark.parametrize(
    ("action", "says"),
    [
        ("", "empty"),
        ("xyzzy", "not a verb"),
        ("take the unicorn", "can't see"),
        ("go east. go west", "punctuation"),
        ("go north then go south", "one command per turn"),
        ("quit", "not available"),
        ("tw-trace-actions", "not available"),
        ("~!@#$%^&*()", "not a command"),
    ],
)
def test_invalid_action_explains_itself_and_counts_a_turn(env, action: str, says: str):
    _, info = env.reset(options={"task": 0, "split": "test"})
    observation, reward, terminated, truncated, step_info = env.step(action)
    assert says in observation
    assert step_info["invalid"] is True
    assert step_info["turn"] == 1 and env.turn == 1
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert step_info["valid_actions"] == info["valid_actions"]  # the game state did not change


@pytest.mark.parametrize("action", ["look", "  LOOK ", "`look`.", '"look"'])
def test_admissible_action_is_valid_and_rendered(cache_dir: Path, action: str):
    env = TextWorldEnv(cache_dir=cache_dir, render_mode="ansi")
    env.reset(options={"task": 0, "split": "test"})
    observation, _, _, _, info = env.step(action)
    assert info["invalid"] is False
    assert env.render() == observation and "-= " in observation
    env.close()


def test_episode_truncates_at_max_turns(cache_dir: Path):
    env = TextWorldEnv(cache_dir=cache_dir, max_turns=2)
    env.reset(options={"task": 0, "split": "test"})
    env.step("look")
    _, _, terminated, truncated, info = env.step("look")
    assert (terminated, truncated, info["success"]) == (False, True, False)
    env.close()


@pytest.mark.parametrize(
    "options",
    [
        {"task": -1},
        {"task": 10_000},
        {"task": "3"},
        {"task": True},
        {"split": "dev"},
        {"difficulty": "insane"},
        {"world_size": 0},
        {"nb_objects": 41},
        {"quest_length": 2.5},
        {"quest_length": True},
        {"rooms": 3},
    ],
)
def test_bad_task_options_raise(env, options: dict):
    with pytest.raises(TaskOptionError):
        env.reset(options=options)


def test_train_and_test_seeds_never_meet():
    train = {generator_seed("train", k, 3, 5, 3) for k in range(2000)}
    test = {generator_seed("test", k, 3, 5, 3) for k in range(2000)}
    assert not train & test and len(train) == len(test) == 2000
    assert games.attempt_seed(next(iter(test)), 3) % 2 == 1


def test_close_twice_is_fine(env):
    env.reset(options={"task": 0, "split": "test"})
    env.close()
    env.close()


def test_card_has_the_sections():
    card = TextWorldEnv.card()
    for section in ("Description", "Instruction and action format", "Rewards", "Success", "Termination"):
        assert f"## {section}" in card
    assert "## Task options" in card and "## Registered configurations" in card


def test_threads_of_one_process_generate_different_games_at_once(tmp_path):
    """A server resets many sessions from many threads: generation must not race."""
    from concurrent.futures import ThreadPoolExecutor

    def play(k: int) -> bool:
        env = envs.make("evol/TextWorld-v0", cache_dir=str(tmp_path))
        try:
            return envs.run_expert(env, seed=k, options={"task": 100 + k, "split": "train"}).success
        finally:
            env.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert all(pool.map(play, range(6)))
        # Cached games, loaded by many threads at once (TextWorld's logic parser is shared).
        assert all(pool.map(play, range(6)))
