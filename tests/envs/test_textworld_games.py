"""evol/TextWorld-v0 with `games=`: the user's own games, made by `tw-make` (every challenge), as tasks."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

import envs
from envs import ParamError, TaskOptionError
from envs.checker import check_text_env
from envs.textworld.env import NoExpertError, TextWorldEnv

# TextWorld silences this at import, but pytest resets warning filters for each test.
pytestmark = pytest.mark.filterwarnings("ignore::jericho.UnsupportedGameWarning")

ENV_ID = "evol/TextWorld-v0"
# One small game of each `tw-make` challenge (each takes 2 to 4 s to make).
CHALLENGES = {
    "coin_collector": ["tw-coin_collector", "--level", "1"],
    "cooking": ["tw-cooking", "--recipe", "2", "--take", "2", "--go", "6", "--open", "--cook", "--cut"],
    "custom": ["custom", "--world-size", "2", "--nb-objects", "3", "--quest-length", "2"],
    "simple": ["tw-simple", "--rewards", "dense", "--goal", "brief"],
    "treasure_hunter": ["tw-treasure_hunter", "--level", "1"],
}
GAME_NAMES = sorted(f"{challenge}.z8" for challenge in CHALLENGES)


def tw_make(challenge: list[str], output: Path, seed: int = 3) -> subprocess.Popen:
    command = ["tw-make", *challenge, "--seed", str(seed), "--output", str(output), "--silent", "-f"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.fixture(scope="session")
def games(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one game of each challenge, made by `tw-make` in parallel."""
    folder = tmp_path_factory.mktemp("tw-make") / "games"
    started = time.perf_counter()
    makes = {name: tw_make(argv, folder / f"{name}.z8") for name, argv in CHALLENGES.items()}
    for name, make in makes.items():
        output, _ = make.communicate(timeout=180)
        assert make.returncode == 0, f"tw-make {name} failed: {output.decode()[-2000:]}"
    print(f"tw-make: {len(makes)} games in {time.perf_counter() - started:.1f} s")
    return folder


def copy_game(games: Path, name: str, to: Path) -> Path:
    """`games/name.z8` and its .json sidecar copied to `to` (a .z8 path)."""
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(games / f"{name}.z8", to)
    shutil.copy(games / f"{name}.json", to.with_suffix(".json"))
    return to


def play(env, actions: list[str | None]) -> list[tuple]:
    """The steps of `actions` (None: the expert's) until the episode ends."""
    steps = []
    for action in actions:
        if env.unwrapped.episode_over:
            break
        steps.append(env.step(action or env.unwrapped.expert_action()))
    return steps


# ---- every challenge, won by its expert ----------------------------------------------------
@pytest.mark.parametrize("challenge", sorted(CHALLENGES))
def test_a_game_file_of_each_challenge_is_won_by_its_expert(games: Path, challenge: str):
    env = envs.make(ENV_ID, games=str(games / f"{challenge}.z8"))
    observation, info = env.reset(seed=0)
    assert info["task"] == {"task": 0, "game": f"{challenge}.z8", "walkthrough": True}
    assert "$$" not in observation and observation  # the banner is gone, the story is there
    assert (info["score"], info["won"], info["lost"]) == (0, False, False) and info["max_score"] >= 1
    rewards = []
    while not env.unwrapped.episode_over:
        _, reward, terminated, truncated, step_info = env.step(env.unwrapped.expert_action())
        assert 0.0 <= reward <= 1.0 and not truncated
        rewards.append(reward)
    assert terminated and step_info["success"] and step_info["won"] and not step_info["lost"]
    assert step_info["score"] == step_info["max_score"]
    assert sum(rewards) == pytest.approx(1.0)
    env.close()


def test_a_folder_gives_its_games_sorted_by_name_as_tasks(games: Path):
    env = envs.make(ENV_ID, games=games)  # a Path works as well as a str
    assert [game.name for game in env.unwrapped.games] == GAME_NAMES  # the .json and .ni files are skipped
    for task, name in enumerate(GAME_NAMES):
        episode = envs.run_expert(env, seed=task, options={"task": task})
        assert episode.success and sum(episode.rewards) == pytest.approx(1.0)
        _, info = env.reset(options={"task": task, "split": "test"})  # split: accepted, ignored
        assert info["task"]["game"] == name
    with pytest.raises(TaskOptionError, match="below 5"):
        env.reset(options={"task": len(GAME_NAMES)})
    env.close()


def test_a_task_drawn_from_the_seed_replays_exactly(games: Path):
    def episode(seed: int) -> list:
        env = envs.make(ENV_ID, games=str(games))
        trace = [env.reset(seed=seed)]
        trace += play(env, ["look", "dance", None, "inventory", None])
        env.close()
        return trace

    assert episode(11) == episode(11)
    drawn = {episode(seed)[0][1]["task"]["game"] for seed in range(8)}
    assert len(drawn) > 1 and drawn <= set(GAME_NAMES)


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        ("*.z8", GAME_NAMES),
        ("*", GAME_NAMES),  # the sidecars and Inform sources among the matches are skipped
        ("t*.z8", ["treasure_hunter.z8"]),
        ("c[ou]*.z8", ["coin_collector.z8", "cooking.z8", "custom.z8"]),
        ("?imple.z8", ["simple.z8"]),
    ],
)
def test_a_glob_gives_the_games_it_matches(games: Path, pattern: str, names: list[str]):
    env = TextWorldEnv(games=str(games / pattern))
    assert [game.name for game in env.games] == names
    env.close()


def test_a_recursive_glob_names_games_below_its_fixed_part(games: Path, tmp_path: Path):
    copy_game(games, "coin_collector", tmp_path / "set" / "b" / "deep" / "coin.z8")
    copy_game(games, "treasure_hunter", tmp_path / "set" / "a" / "hunt.z8")
    env = TextWorldEnv(games=str(tmp_path / "set" / "**" / "*.z8"))
    assert [game.name for game in env.games] == ["a/hunt.z8", "b/deep/coin.z8"]
    episode = envs.run_expert(env, options={"task": 1})
    assert episode.success and episode.actions == ["take coin"]
    env.close()


# ---- the reward contract -------------------------------------------------------------------
def test_dense_rewards_are_the_score_gained_over_the_max_score(games: Path):
    env = TextWorldEnv(games=str(games / "simple.z8"))
    _, info = env.reset()
    max_score, total = info["max_score"], 0.0
    while not env.episode_over:
        before = info["score"]
        _, reward, _, _, info = env.step(env.expert_action())
        assert reward == (info["score"] - before) / max_score
        total += reward
        assert total == pytest.approx(info["score"] / max_score)
    assert info["success"] and total == pytest.approx(1.0) and max_score > 1
    env.close()


def test_losing_a_cooking_game_ends_it_without_success(games: Path):
    env = TextWorldEnv(games=str(games / "cooking.z8"), max_turns=60)
    _, info = env.reset()
    rewards: list[float] = []
    eat = None
    while eat is None:
        _, reward, terminated, _, info = env.step(env.expert_action())
        assert not terminated
        rewards.append(reward)
        held = [a for a in info["valid_actions"] if a.split()[0] in ("eat", "drink") and "meal" not in a]
        eat = held[0] if held and sum(rewards) > 0 else None
    observation, reward, terminated, truncated, info = env.step(eat)  # an ingredient the recipe needs
    rewards.append(reward)
    assert "lost" in observation.lower() and info["lost"] and not info["won"]
    assert (terminated, truncated, info["success"]) == (True, False, False)
    assert 0 < sum(rewards) < 1 and sum(rewards) == pytest.approx(info["score"] / info["max_score"])
    env.close()


def test_the_episode_truncates_at_max_turns(games: Path):
    env = TextWorldEnv(games=str(games / "simple.z8"), max_turns=2)
    env.reset()
    play(env, ["look"])
    _, _, terminated, truncated, info = env.step("inventory")
    assert (terminated, truncated, info["success"]) == (False, True, False)
    env.close()


@pytest.mark.parametrize(
    ("action", "says"),
    [
        ("quit", "not available"),
        ("restart", "not available"),
        ("look. look", "punctuation"),
        ("xyzzy", "verb"),
    ],
)
def test_invalid_actions_are_answered_as_in_generated_games(games: Path, action: str, says: str):
    env = TextWorldEnv(games=str(games / "cooking.z8"))
    _, info = env.reset()
    observation, reward, terminated, _, step_info = env.step(action)
    assert says in observation and step_info["invalid"] and (reward, terminated) == (0.0, False)
    assert step_info["valid_actions"] == info["valid_actions"]
    env.close()


def test_a_folder_of_games_passes_the_env_checker(games: Path):
    env = envs.make(ENV_ID, games=str(games))
    report = check_text_env(env, expert_tasks=len(GAME_NAMES), raise_on_failure=False)
    env.close()
    assert report.passed, report.format()


def test_threads_play_the_games_at_once(games: Path):
    def win(task: int) -> bool:
        env = envs.make(ENV_ID, games=str(games))
        try:
            return envs.run_expert(env, options={"task": task}).success
        finally:
            env.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(win, [0, 1, 2, 3, 4, 4, 1, 0]))


# ---- games without quests: the walkthrough, or no expert ---------------------------------
def strip_sidecar(game: Path, keep_walkthrough: bool) -> None:
    """Drop the quests (and the walkthrough) from a game's .json, as in a game made by hand."""
    sidecar = game.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    data["quests"] = []
    if not keep_walkthrough:
        data["metadata"].pop("walkthrough", None)
    sidecar.write_text(json.dumps(data))


def test_a_game_without_quests_is_played_by_the_walkthrough_in_its_json(games: Path, tmp_path: Path):
    game = copy_game(games, "simple", tmp_path / "handmade.z8")
    strip_sidecar(game, keep_walkthrough=True)
    env = TextWorldEnv(games=str(game))
    _, info = env.reset()
    assert info["task"]["walkthrough"] is True and info["max_score"] == 0
    episode = envs.run_expert(env)
    assert episode.success and sum(episode.rewards) == 1.0  # won: the whole reward, though no max score
    assert episode.rewards[:-1] == [0.0] * (len(episode.rewards) - 1)
    env.reset()
    env.step("look")  # off the walkthrough: the expert cannot say where it leads now
    with pytest.raises(NoExpertError, match="left its walkthrough"):
        env.expert_action()
    env.close()


def test_a_game_with_neither_quests_nor_walkthrough_has_no_expert(games: Path, tmp_path: Path):
    game = copy_game(games, "treasure_hunter", tmp_path / "bare.z8")
    walkthrough = json.loads(game.with_suffix(".json").read_text())["metadata"]["walkthrough"]
    strip_sidecar(game, keep_walkthrough=False)
    env = TextWorldEnv(games=str(game))
    _, info = env.reset()
    assert info["task"]["walkthrough"] is False
    with pytest.raises(NoExpertError, match="'bare.z8'.*neither quests nor a walkthrough"):
        env.expert_action()
    assert play(env, walkthrough)[-1][4]["success"]  # the game itself still plays and is won
    env.close()


def test_a_game_that_keeps_its_goal_to_itself_says_so_in_the_instruction(games: Path, tmp_path: Path):
    game = copy_game(games, "custom", tmp_path / "secret.z8")
    sidecar = game.with_suffix(".json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "objective": ""}))  # as `--goal none`
    env = TextWorldEnv(games=str(game))
    _, info = env.reset()
    assert "Your goal: the game does not say; explore" in info["instruction"]
    assert envs.run_expert(env).success
    env.close()


# ---- what does not apply with games= -------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"difficulty": "hard"},
        {"difficulty": "easy"},
        {"num_tasks": 3},
        {"difficulty": "easy", "num_tasks": 9},
    ],
)
def test_generator_kwargs_are_refused_with_games(games: Path, kwargs: dict):
    with pytest.raises(ValueError, match="not apply with games="):
        TextWorldEnv(games=str(games), **kwargs)


@pytest.mark.parametrize(
    "options", [{"difficulty": "hard"}, {"world_size": 3}, {"quest_length": 2, "nb_objects": 4}]
)
def test_generator_options_are_refused_with_games(games: Path, options: dict):
    env = TextWorldEnv(games=str(games))
    with pytest.raises(TaskOptionError, match="do not apply with games="):
        env.reset(options=options)
    env.close()


# ---- bad paths: clear errors at construction, no server path in them -----------------------
def write(path: Path, content: str | bytes = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def bad_case(case: str, games: Path, root: Path) -> str:
    """The `games=` value of a bad case, made under `root`."""
    if case == "missing file":
        return str(root / "nowhere.z8")
    if case == "missing folder":
        return str(root / "no-such-folder")
    if case == "empty folder":
        (root / "empty").mkdir()
        return str(root / "empty")
    if case == "folder of other files":
        write(root / "notes" / "readme.txt")
        write(root / "notes" / "game.json", "{}")
        return str(root / "notes")
    if case == "glob matching nothing":
        return str(root / "*.z8")
    if case == "glob matching only sidecars":
        shutil.copy(games / "simple.json", root / "simple.json")
        return str(root / "*.json")
    if case == "text file":
        return str(write(root / "notes.txt"))
    if case == "sidecar given":
        return str(copy_game(games, "simple", root / "simple.z8").with_suffix(".json"))
    if case == "text named .z8":
        return str(write(root / "fake.z8", "this is not a story file" * 10))
    if case == "other Z-machine version":
        return str(write(root / "zork.z8", bytes([5]) + bytes(200)))
    if case == "no sidecar":
        shutil.copy(games / "coin_collector.z8", root / "lonely.z8")
        return str(root / "lonely.z8")
    if case == "sidecar not JSON":
        game = copy_game(games, "coin_collector", root / "broken.z8")
        write(game.with_suffix(".json"), "{not json")
        return str(game)
    if case == "sidecar of something else":
        game = copy_game(games, "coin_collector", root / "other.z8")
        write(game.with_suffix(".json"), json.dumps({"name": "a package"}))
        return str(game)
    if case == "sidecar of another version":
        game = copy_game(games, "coin_collector", root / "old.z8")
        data = json.loads(game.with_suffix(".json").read_text())
        write(game.with_suffix(".json"), json.dumps({**data, "version": 99}))
        return str(game)
    if case == "one bad game in a folder":
        copy_game(games, "coin_collector", root / "mixed" / "good.z8")
        shutil.copy(games / "cooking.z8", root / "mixed" / "sidecarless.z8")
        return str(root / "mixed")
    if case == "glulx game":
        return str(write(root / "old.ulx", b"Glul" + bytes(100)))
    if case == "glulx game in a folder":
        copy_game(games, "coin_collector", root / "olds" / "good.z8")
        write(root / "olds" / "old.ulx", b"Glul" + bytes(100))
        return str(root / "olds")
    if case == "empty":
        return "  "
    raise AssertionError(case)


BAD_CASES = {
    "missing file": "'nowhere.z8' does not exist",
    "missing folder": "'no-such-folder' does not exist",
    "empty folder": "folder 'empty' holds no .z8 game made by tw-make \\(found nothing\\)",
    "folder of other files": "folder 'notes' holds no .z8 game made by tw-make \\(found 2 other file",
    "glob matching nothing": "pattern '\\*.z8' in '[^'/]+' holds no .z8 game made by tw-make \\(found nothing",
    "glob matching only sidecars": "pattern '\\*.json' in '[^'/]+' holds no .z8 game .*found 1 other",
    "text file": "'notes.txt' is not a TextWorld game: expected a .z8 file",
    "sidecar given": "'simple.json' is not a TextWorld game: .*give the .z8 file beside it",
    "text named .z8": "'fake.z8' is not a Z-machine story file",
    "other Z-machine version": "'zork.z8' is not a Z-machine story file \\(version 8\\)",
    "no sidecar": "'lonely.z8' has no 'lonely.json' beside it",
    "sidecar not JSON": "the sidecar of 'broken.z8' is not JSON",
    "sidecar of something else": "the sidecar of 'other.z8' is not a TextWorld game description",
    "sidecar of another version": "'old.z8' was made by a TextWorld whose games are version 99",
    "one bad game in a folder": "'sidecarless.z8' has no 'sidecarless.json' beside it",
    "glulx game": "'old.ulx' is a Glulx game, which TextWorld .* no longer plays",
    "glulx game in a folder": "'old.ulx' is a Glulx game",
    "empty": "games= is empty",
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_games_fail_at_construction_naming_the_file_but_not_where_it_lies(
    games: Path, tmp_path: Path, case: str
):
    value = bad_case(case, games, tmp_path)
    with pytest.raises(ValueError, match=BAD_CASES[case]) as refused:
        envs.make(ENV_ID, games=value)
    message = str(refused.value)
    assert str(tmp_path) not in message and str(games) not in message and "/tmp" not in message


# ---- games= is the server's, never a client's ---------------------------------------------
def test_a_client_cannot_set_games_in_kwargs_or_reset_options(games: Path):
    with pytest.raises(ParamError, match="games is set by the server only"):
        envs.check_kwargs(ENV_ID, {"games": str(games)})
    with pytest.raises(TaskOptionError, match="unknown option"):
        envs.check_options(ENV_ID, {"games": str(games)})
    env = TextWorldEnv(games=str(games / "coin_collector.z8"))
    for options in ({"games": str(games)}, {"task": 0, "games": str(games / "cooking.z8")}):
        with pytest.raises(TaskOptionError, match="unknown option"):
            env.reset(options=options)
    assert env.reset(options={"task": 0})[1]["task"]["game"] == "coin_collector.z8"
    env.close()


def test_a_server_plays_its_games_and_refuses_them_from_clients(games: Path, start_server):
    kwargs = json.dumps({ENV_ID: {"games": str(games)}})
    server = start_server([ENV_ID], "--env-kwargs", kwargs)
    env = envs.make(ENV_ID, url=server.url)
    for task, name in enumerate(GAME_NAMES):
        _, info = env.reset(options={"task": task})
        assert info["task"]["game"] == name
        episode = envs.run_expert(env, options={"task": task})
        assert episode.success and sum(episode.rewards) == pytest.approx(1.0)
    env.close()

    refused = [
        requests.post(f"{server.url}/sessions", json={"env": ENV_ID, "kwargs": {"games": "/etc"}}, timeout=30)
    ]
    sid = requests.post(f"{server.url}/sessions", json={"env": ENV_ID}, timeout=30).json()["session"]
    for options in ({"games": "/etc/passwd"}, {"task": 99}, {"difficulty": "hard"}):
        refused.append(
            requests.post(f"{server.url}/sessions/{sid}/reset", json={"options": options}, timeout=30)
        )
    for answer in refused:
        assert answer.status_code == 400, answer.text
        assert str(games) not in answer.text
    assert "set by the server only" in refused[0].json()["error"]["message"]


def test_a_server_with_a_bad_games_path_says_so_without_the_path(tmp_path: Path, start_server):
    missing = tmp_path / "my-games"
    server = start_server([ENV_ID], "--env-kwargs", json.dumps({ENV_ID: {"games": str(missing)}}))
    answer = requests.post(f"{server.url}/sessions", json={"env": ENV_ID}, timeout=30)
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert "'my-games' does not exist" in message and str(tmp_path) not in message
