"""evol/Maze-v0, evol/Wordle-v0, evol/TextCraft-v0: rules, feedback, tasks, invalid actions, experts."""

from __future__ import annotations

import random
from collections import Counter

import pytest

import envs
from envs.errors import TaskOptionError
from envs.games import maze as maze_module
from envs.games import textcraft as craft
from envs.games import wordle
from envs.games.maze import DIRECTIONS, generate_maze, turn_limit
from envs.games.wordle import GREEN, GREY, YELLOW, feedback

G, Y, X = GREEN, YELLOW, GREY
EXPERT_TASKS = 30


# ---- Maze --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def maze_env():
    return envs.make("evol/Maze-v0")


def test_maze_observation_states_position_goal_walls_and_moves(maze_env):
    obs, info = maze_env.reset(options={"task": 0, "split": "test"})
    maze = maze_env._maze
    (r, c), (gr, gc) = maze.start, maze.goal
    assert obs.startswith(f"You are at row {r + 1}, column {c + 1} of a 5 by 5 maze. ")
    assert f"The goal is at row {gr + 1}, column {gc + 1} (" in obs
    assert f"reach the goal at row {gr + 1}, column {gc + 1}" in info["instruction"]
    assert info["valid_actions"] == [f"move {d}" for d in maze.moves(maze.start)]
    for direction, (_, _, where) in DIRECTIONS.items():
        walled = direction not in maze.moves(maze.start)
        assert (where in obs.splitlines()[1]) == walled, (direction, obs)


def test_maze_moves_follow_the_walls(maze_env):
    rng = random.Random(0)
    for k in range(10):
        _, info = maze_env.reset(options={"task": k, "size": 6})
        for _ in range(10):
            before = maze_env._position
            direction = rng.choice(list(DIRECTIONS))
            obs, _, terminated, _, info = maze_env.step(f"move {direction}")
            if direction in maze_env._maze.moves(before):
                dr, dc, _ = DIRECTIONS[direction]
                assert maze_env._position == (before[0] + dr, before[1] + dc)
                assert obs.startswith(f"You moved {direction}")
                assert info["invalid"] is False
            else:
                assert maze_env._position == before
                assert obs.startswith(
                    f"You cannot move {direction}: there is a wall {DIRECTIONS[direction][2]}."
                )
                assert info["invalid"] is True
            if terminated:
                break


def test_maze_invalid_replies_are_explained_and_counted(maze_env):
    maze_env.reset(options={"task": 3})
    for turn, action in enumerate(["", "jump", "move north", "move up and then left"], start=1):
        obs, reward, terminated, truncated, info = maze_env.step(action)
        assert obs.startswith("Invalid action: ") and "move up, move down, move left, move right" in obs
        assert info["invalid"] is True and info["turn"] == turn and reward == 0 and not terminated
    assert maze_env._position == maze_env._maze.start


@pytest.mark.parametrize("size", [3, 5, 8, 12])
def test_maze_expert_takes_a_shortest_path_on_every_test_task(maze_env, size):
    for k in range(EXPERT_TASKS):
        episode = envs.run_expert(maze_env, options={"task": k, "split": "test", "size": size})
        _, info = maze_env.reset(options={"task": k, "split": "test", "size": size})
        assert episode.success and episode.rewards[-1] == 1.0
        assert len(episode.actions) == info["shortest_path"] <= turn_limit(size) - maze_module.SLACK_TURNS


def test_maze_turn_limit_scales_with_size_unless_fixed(maze_env):
    assert maze_env.reset(options={"task": 0, "size": 5})[1]["max_turns"] == 15
    assert maze_env.reset(options={"task": 0, "size": 10})[1]["max_turns"] == 30
    fixed = envs.make("evol/Maze-v0", max_turns=40)
    assert fixed.reset(options={"task": 0, "size": 3})[1]["max_turns"] == 40


def test_maze_tasks_are_reproducible_and_splits_disjoint():
    assert generate_maze(6, "test", 4) == generate_maze(6, "test", 4)
    train = {generate_maze(5, "train", k).digest() for k in range(200)}
    test = {generate_maze(5, "test", k).digest() for k in range(200)}
    assert not train & test
    assert all(d[0] & 1 == 0 for d in train) and all(d[0] & 1 == 1 for d in test)


def test_maze_rejects_bad_options(maze_env):
    for options in ({"size": 2}, {"size": 13}, {"size": "5"}, {"level": 1}, {"split": "dev"}):
        with pytest.raises(TaskOptionError):
            maze_env.reset(options=options)


# ---- Wordle ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wordle_env():
    return envs.make("evol/Wordle-v0")


@pytest.mark.parametrize(
    ("guess", "answer", "colours"),
    [
        ("crane", "crane", (G, G, G, G, G)),
        ("crane", "slate", (X, X, G, X, G)),
        ("slate", "least", (Y, Y, G, Y, Y)),
        # A doubled letter: the first copy takes the answer's only E, the second is grey.
        ("speed", "abide", (X, X, Y, X, Y)),
        # A green copy uses the answer's E and S: the other copies are grey, not yellow.
        ("geese", "those", (X, X, X, G, G)),
        ("lolly", "hello", (X, Y, G, G, X)),
        # Two Rs guessed, one in the answer: only the first is yellow.
        ("array", "ratty", (Y, Y, X, X, G)),
        ("mamma", "maxim", (G, G, Y, X, X)),
        ("eerie", "there", (Y, X, Y, X, G)),
    ],
)
def test_wordle_feedback_hand_checked(guess, answer, colours):
    assert feedback(guess, answer) == colours


def test_wordle_vectorised_table_agrees_with_feedback():
    answers, guesses = wordle.word_lists()
    table = wordle.pattern_table()
    rng = random.Random(1)
    for _ in range(3000):
        g, a = rng.randrange(len(guesses)), rng.randrange(len(answers))
        assert table[g, a] == wordle.pattern_code(feedback(guesses[g], answers[a]))


def test_wordle_word_list_is_clean():
    answers, guesses = wordle.word_lists()
    assert len(answers) >= 1500 and len(guesses) >= 2800
    assert len(set(guesses)) == len(guesses) and guesses[: len(answers)] == answers
    assert all(len(w) == 5 and w.isascii() and w.isalpha() and w.islower() for w in guesses)
    test, train = wordle.split_answers("test"), wordle.split_answers("train")
    assert not set(test) & set(train) and len(test) + len(train) == len(answers)


def test_wordle_observation_gives_colours_and_guesses_left(wordle_env):
    wordle_env.reset(options={"task": 0})
    wordle_env._answer = "abide"
    obs, reward, terminated, _, info = wordle_env.step("Speed.")
    assert (
        obs
        == "Guess 1 of 6: SPEED\nFeedback: S grey, P grey, E yellow, E grey, D yellow\nYou have 5 guesses left."
    )
    assert reward == 0 and not terminated and info["invalid"] is False
    obs, reward, terminated, _, info = wordle_env.step("ABIDE")
    assert obs == "Guess 2 of 6: ABIDE\nFeedback: all green. You found the word ABIDE!"
    assert reward == 1.0 and terminated and info["success"] is True


def test_wordle_invalid_words_cost_a_turn_not_a_guess(wordle_env):
    wordle_env.reset(options={"task": 5, "split": "test"})
    answer = wordle_env._answer
    replies = {
        "": "is not a five-letter word",
        "hello world": "is not a five-letter word",
        "toolong": "is not a five-letter word",
        "abcde": "ABCDE is not in the word list",
    }
    for turn, (reply, message) in enumerate(replies.items(), start=1):
        obs, reward, terminated, truncated, info = wordle_env.step(reply)
        assert message in obs and "you have 6 guesses left" in obs
        assert info["invalid"] is True and info["turn"] == turn and not terminated and not truncated
    obs, *_ = wordle_env.step("crane" if answer != "crane" else "slate")
    assert obs.startswith("Guess 1 of 6: ")


def test_wordle_ends_after_six_guesses_and_reveals_the_word(wordle_env):
    _, info = wordle_env.reset(options={"task": 2})
    answer = wordle_env._answer
    wrong = [w for w in ("crane", "slate", "moist", "pudgy", "flock", "wheat", "brick") if w != answer][:6]
    for i, word in enumerate(wrong, start=1):
        obs, reward, terminated, truncated, info = wordle_env.step(word)
        assert terminated == (i == 6) and reward == 0
    assert obs.endswith(f"You have no guesses left. The word was {answer.upper()}.")
    assert info["success"] is False and info["answer"] == answer


def test_wordle_expert_wins_every_test_task_within_six_guesses(wordle_env):
    counts = Counter()
    for k in range(len(wordle.split_answers("test"))):
        episode = envs.run_expert(wordle_env, options={"task": k, "split": "test"})
        assert episode.success, (k, episode.actions)
        counts[len(episode.actions)] += 1
    assert max(counts) <= 5
    assert sum(n * c for n, c in counts.items()) / sum(counts.values()) < 3.6


def test_wordle_expert_uses_the_agents_own_guesses(wordle_env):
    wordle_env.reset(options={"task": 7, "split": "test"})
    answer = wordle_env._answer
    for word in ("moist", "pudgy"):
        if word != answer:
            wordle_env.step(word)
    while not wordle_env.episode_over:
        _, _, terminated, truncated, info = wordle_env.step(wordle_env.expert_action())
    assert info["success"] is True


# ---- TextCraft ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def craft_env():
    return envs.make("evol/TextCraft-v0")


def test_recipe_graph_is_closed_and_has_depths_one_to_four():
    book = craft.recipe_book()
    for recipe in book.recipes.values():
        assert recipe.count >= 1 and recipe.ingredients
        for name, k in recipe.ingredients:
            assert k >= 1 and (name in book.base or name in book.recipes), (recipe.item, name)
    assert not book.base & set(book.recipes)
    used = {name for recipe in book.recipes.values() for name, _ in recipe.ingredients}
    assert book.base <= used
    depth = book.depth
    assert (
        depth["oak log"],
        depth["oak planks"],
        depth["stick"],
        depth["wooden pickaxe"],
        depth["lectern"],
    ) == (
        0,
        1,
        2,
        3,
        4,
    )
    assert set(depth[i] for i in book.recipes) == {1, 2, 3, 4}


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_textcraft_depth_option_sets_the_goal_depth(craft_env, depth):
    goals = set()
    for k in range(12):
        obs, info = craft_env.reset(options={"task": k, "split": "test", "depth": depth})
        assert info["depth"] == craft.recipe_book().depth[info["goal"]] == depth
        assert (
            obs.endswith(f"Goal: craft {info['goal']}.")
            and f"Your goal: craft {info['goal']}." in info["instruction"]
        )
        goals.add(info["goal"])
    assert len(goals) == min(12, len(craft.goal_items("test", depth)))


def test_textcraft_lists_the_goal_tree_recipes_plus_distractors(craft_env):
    book = craft.recipe_book()
    for k in range(20):
        _, info = craft_env.reset(options={"task": k})
        needed = {book.recipes[item].command() for item in book.crafted_below(info["goal"])}
        listed = craft_env._commands
        assert needed <= set(listed) and len(listed) == len(needed) + craft.DISTRACTORS
        assert all(line in info["instruction"] for line in listed)


def test_textcraft_train_and_test_goals_are_disjoint():
    for depth in (None, 1, 2, 3, 4):
        train, test = craft.goal_items("train", depth), craft.goal_items("test", depth)
        assert test and train and not set(train) & set(test)


def test_textcraft_commands_get_craft_and_inventory(craft_env):
    craft_env.reset(options={"task": 0})
    craft_env._goal = "wooden pickaxe"
    steps = [
        ("inventory", "Inventory: empty", False),
        ("get 2 oak logs", "Got 2 oak log.", False),
        ("craft 8 oak planks using 2 oak log", "Crafted 8 oak planks.", False),
        ("craft stick using 2 oak planks", "Crafted 4 stick.", False),
        ("Inventory.", "Inventory: [oak planks] (6) [stick] (4)", False),
        (
            "craft 1 wooden pickaxe using 2 stick, 3 oak planks",
            "Crafted 1 wooden pickaxe. You crafted the goal",
            True,
        ),
    ]
    for action, expected, done in steps:
        obs, reward, terminated, _, info = craft_env.step(action)
        assert obs.startswith(expected) and info["invalid"] is False
        assert terminated == done and reward == float(done)
    assert info["success"] is True


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("", "is not a command"),
        ("build a house", "is not a command"),
        (
            "get 1 stick",
            "Could not get stick: it is not a base item. Craft it: craft 4 stick using 2 oak planks.",
        ),
        ("get 2 unobtainium", "there is no item called 'unobtainium'"),
        ("get 100 oak log", "get between 1 and 64 at a time"),
        ("craft 4 oak planks using 1 birch log", "The recipe is: craft 4 oak planks using 1 oak log."),
        ("craft 8 oak planks using 1 oak log", "a whole multiple"),
        ("craft 4 stick using 2 oak planks", "you need 2 oak planks (you have 0)"),
        ("craft 1 oak log using 1 oak planks", "it is a base item"),
        ("craft 4 stick using two oak planks", "is not '<count> <item>'"),
    ],
)
def test_textcraft_invalid_actions_are_explained_and_change_nothing(craft_env, action, message):
    craft_env.reset(options={"task": 1})
    craft_env.step("get 1 oak log")
    obs, reward, terminated, _, info = craft_env.step(action)
    assert message in obs, obs
    assert info["invalid"] is True and info["turn"] == 2 and reward == 0 and not terminated
    assert craft_env._inventory == Counter({"oak log": 1})


def test_textcraft_expert_crafts_every_test_goal(craft_env):
    goals = craft.goal_items("test", None)
    for k in range(len(goals)):
        episode = envs.run_expert(craft_env, options={"task": k, "split": "test"})
        assert episode.success, (goals[k], episode.actions)
        assert len(episode.actions) <= 12


def test_textcraft_expert_recovers_after_detours(craft_env):
    rng = random.Random(3)
    for k in range(EXPERT_TASKS):
        craft_env.reset(options={"task": k, "split": "test", "depth": 1 + k % 4})
        for _ in range(3):  # get or craft things the plan did not ask for
            base = rng.choice(sorted(craft.recipe_book().base))
            craft_env.step(f"get {rng.randint(1, 5)} {base}")
        craft_env.step(craft_env._commands[0])
        while not craft_env.episode_over:
            *_, info = craft_env.step(craft_env.expert_action())
        assert info["success"] is True


def test_textcraft_expert_plan_uses_the_inventory():
    plan = craft.expert_plan("wooden pickaxe", Counter())
    assert plan == [
        "get 2 oak log",
        "craft 8 oak planks using 2 oak log",
        "craft 4 stick using 2 oak planks",
        "craft 1 wooden pickaxe using 3 oak planks, 2 stick",
    ]
    assert craft.expert_plan("wooden pickaxe", Counter({"stick": 2, "oak planks": 1})) == [
        "get 1 oak log",
        "craft 4 oak planks using 1 oak log",
        "craft 1 wooden pickaxe using 3 oak planks, 2 stick",
    ]
