"""`evol/TextWorld-v0`: text adventures made by TextWorld's generator, or a user's games made by `tw-make`."""

from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import textworld

from envs.core import RENDER_MODE, TextEnv, turns_param
from envs.errors import ResetNeeded, TaskOptionError
from envs.params import Param, choice_param, task_param
from envs.textworld.game_files import GameFile, find_games
from envs.textworld.games import (
    DIFFICULTIES,
    PARAM_LIMITS,
    TEXTWORLD_LOCK,
    GameCache,
    GameGenerationError,
    GameParams,
    generator_seed,
)

SPLITS = ("train", "test")
DEFAULT_NUM_TASKS = {"train": 10_000, "test": 1_000}
MAX_NUM_TASKS = 1_000_000  # tasks of a split a client may ask for (each game is made on first use)
REQUESTED = dict.fromkeys(
    ("admissible_commands", "policy_commands", "objective", "score", "max_score", "won", "lost", "moves"),
    True,
)
REQUEST_INFOS = textworld.EnvInfos(**REQUESTED)
# A user's game may carry a walkthrough (in its .json sidecar) beyond what its quests give.
FILE_REQUEST_INFOS = textworld.EnvInfos(**REQUESTED, extras=["walkthrough"])

# Commands that would leave the story (quit, restart, files) or switch off TextWorld's
# own tracking (its `tw-` debug commands): the game never sees them.
BLOCKED_VERBS = frozenset(
    {"quit", "q", "die", "restart", "save", "restore", "undo", "script", "transcript", "unscript", "noscript"}
)
COMMAND = re.compile(r"[\w' -]+")  # words only: `.`, `,` and `then` would chain commands in one turn
BANNER_LINE = re.compile(r"[\s_|\\/$<>]*")  # the lines of TextWorld's ASCII-art title
PROMPT = re.compile(r"\s*>[^\n]*\s*$")  # the interpreter's `>` prompt and its status line
# LLMs like to write `go east`. The kept text ends at its last unquoted character: linear.
QUOTED = re.compile(r"[`\"\s]*((?:.*[^`\".\s])?)[`\".\s]*", re.DOTALL)
RESTART_QUESTION = re.compile(r"\s*Would you like to RESTART.*$", re.DOTALL)


def clean_feedback(text: str) -> str:
    """The game's text without the banner, the prompt, the status line and the restart question."""
    lines = text.splitlines()
    while lines and BANNER_LINE.fullmatch(lines[0]):
        lines.pop(0)
    text = "\n".join(line.strip() if "***" in line else line.rstrip() for line in lines)
    text = RESTART_QUESTION.sub("", PROMPT.sub("", text))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def normalise(command: str) -> str:
    return " ".join(command.lower().split())


class NoExpertError(RuntimeError):
    """The expert cannot play this game from here: it has no walkthrough, or the episode left it."""


def default_cache_dir() -> Path:
    root = os.environ.get("EVOL_CACHE_DIR")
    return Path(root) / "textworld" if root else Path("~/.cache/evolgym/textworld").expanduser()


class TextWorldEnv(TextEnv):
    """Text adventures made by TextWorld's generator: explore rooms, use objects, complete the quest.

    ## Description
    Each task is a small text adventure made by [TextWorld](https://github.com/microsoft/TextWorld)'s
    own generator: a few connected rooms, containers, supporters, doors, keys and food,
    and one quest (a chain of actions such as "go east, take the key, unlock the chest
    with the key, open the chest, put the apple on the table"). A task is generated the
    first time it is used and cached on disk (`cache_dir`, at most 512 MB: the least recently
    used games are deleted past it); later resets reuse the file.

    With `games=` (set by whoever runs the env or the server, never by a client) the tasks
    are the user's own games made by TextWorld's `tw-make` instead, of any challenge
    (`tw-simple`, `tw-coin_collector`, `tw-treasure_hunter`, `tw-cooking`, `custom`):
    `games` is a `.z8` file, a folder (its `.z8` files, not its subfolders) or a glob
    (`games/**/*.z8`). Each `.z8` needs the `.json` that `tw-make` writes beside it (TextWorld
    reads the quests, the score and the walkthrough from it). A missing path, a pattern or
    folder with no game, a file that is not a version-8 Z-machine story, a game without its
    `.json`, or a Glulx `.ulx` game (TextWorld 1.7 no longer plays them: make it again with
    `tw-make`) is refused when the env is built, the error naming the file relative to what
    was given.

    ## Instruction and action format
    `info["instruction"]` says that this is a text adventure and gives the quest's goal.
    Each turn the action is one text command in the game's words, for example `go east`,
    `take key`, `open chest`, `unlock door with key`, `put apple on table`,
    `insert key into box`, `examine book`, `eat apple`, `look`, `inventory`. Use the
    object names the game prints. Commands the game accepts right now are in
    `info["valid_actions"]` (`valid_actions()`): the admissible commands, sorted.

    | action | effect |
    |---|---|
    | `go north/south/east/west` | move through an open exit |
    | `take X`, `take X from Y`, `drop X` | pick up or drop an object |
    | `put X on Y`, `insert X into Y` | place an object on a supporter or in a container |
    | `open X`, `close X`, `unlock X with K`, `lock X with K` | doors and containers |
    | `examine X`, `look`, `inventory`, `eat X` | look around, carry on |

    The observation is the game's reply (at reset: the goal and the first room). Surrounding
    backticks or quotes and a final `.` are ignored. These are not sent to the game, and
    the observation says why: an empty command; one with punctuation other than `'` and
    `-` (`.`, `,` and `then` would chain several commands into one turn); a story-level
    command (`quit`, `restart`, `save`, `restore`, `undo`). Any other command is sent; one
    the game does not understand gets the game's own reply ("That's not a verb I
    recognise."). `info["invalid"]` is true when the command was not admissible and
    changed nothing in the game. Every command, valid or not, uses a turn.

    ## Rewards
    The game's score gained this step divided by its maximum score, so the rewards of an
    episode add up to the normalised score (1.0 for a won game). `info` carries `score`,
    `max_score`, `won` and `lost`. Range [0, 1]. The same holds for `games=`: a dense
    `tw-simple` game rewards each step of its quest, a `tw-cooking` game each ingredient and
    step of the recipe, a coin or treasure hunt only the find; winning tops the sum up to
    1.0 even where a game scores past its maximum or has none, and the normalised score
    never goes down.

    ## Success
    The quest is completed (`won`).

    ## Termination
    Terminated when the game is won or lost (a `tw-cooking` game is lost, for example, by
    eating an ingredient the recipe needs); truncated after `max_turns` turns (default 30;
    a large `tw-cooking` game's walkthrough can be longer: raise it).

    ## Task options
    `reset(seed, options)` with:

    | option | values | default |
    |---|---|---|
    | `task` | integer in [0, `num_tasks[split]`) | drawn from the seed |
    | `split` | `"train"` (10,000 tasks), `"test"` (1,000 tasks) | `"train"` |
    | `difficulty` | `"easy"` (3 rooms, 5 objects, quest of 3), `"medium"` (6, 10, 6), `"hard"` (10, 20, 10) | the `difficulty` kwarg (`"easy"`) |
    | `world_size` | rooms, 1 to 12 | from `difficulty` |
    | `nb_objects` | objects, 1 to 25 | from `difficulty` |
    | `quest_length` | actions in the quest, 1 to 10 | from `difficulty` |

    The generator seed is a hash of (split, task, rooms, objects, quest length): the same
    options give the same game on any machine, and train and test seeds never meet.

    With `games=`, task `k` is the `k`-th game of the list sorted by name (a folder's file
    names; a glob's paths below its fixed part), drawn from the seed when not given;
    `split` is accepted and ignored (the games are one split), and `difficulty`,
    `world_size`, `nb_objects`, `quest_length` (like the `difficulty` and `num_tasks`
    kwargs) are refused. `info["task"]` is `{"task": k, "game": NAME, "walkthrough": bool}`.

    ## Expert
    `expert_action()` plays TextWorld's winning policy from the current state, so it recovers
    after an agent's detour. With `games=` that needs the game's quests (every `tw-make`
    challenge has them). A game without quests is played by the walkthrough in its `.json`,
    from the start and only while the episode follows it; a game with neither has no
    expert (`info["task"]["walkthrough"]` is false and `expert_action()` raises
    `NoExpertError`).

    ## Registered configurations
    - `evol/TextWorld-v0`: kwargs `difficulty="easy"`, `max_turns=30`,
      `num_tasks={"train": 10000, "test": 1000}`, `cache_dir=$EVOL_CACHE_DIR/textworld`
      (else `~/.cache/evolgym/textworld`); `games=PATH` for the user's games, e.g.
      `evol serve evol/TextWorld-v0 --env-kwargs '{"evol/TextWorld-v0": {"games": "my_games/"}}'`.
    """

    reward_range = (0.0, 1.0)
    max_turns = 30
    success_rule = "the game is won (its quest is completed)"
    splits = SPLITS
    max_action_length = 512
    kwarg_params = {
        "cache_dir": Param("object", of=(str, os.PathLike), server_only=True, help="where games are cached"),
        "difficulty": choice_param(tuple(DIFFICULTIES), default="easy", help="the default difficulty"),
        "games": Param(
            "object",
            of=(str, os.PathLike),
            server_only=True,
            help="games made by tw-make: a .z8 file, a folder of them or a glob",
        ),
        "max_turns": turns_param(30),
        "num_tasks": Param(
            ("int", "dict"),
            minimum=1,
            maximum=MAX_NUM_TASKS,
            keys=SPLITS,
            items=Param("int", minimum=1, maximum=MAX_NUM_TASKS),
            help="tasks per split: one count for both, or a mapping of split to count",
        ),
        "render_mode": RENDER_MODE,
    }
    option_params = {
        "task": task_param(MAX_NUM_TASKS, "task index, below the split's num_tasks"),
        "split": choice_param(SPLITS, help='"train" (default) or "test"'),
        "difficulty": choice_param(tuple(DIFFICULTIES), help="default: the difficulty kwarg"),
        **{
            name: Param("int", minimum=low, maximum=high, help=f"{name} (default: from difficulty)")
            for name, (low, high) in PARAM_LIMITS.items()
        },
    }

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        difficulty: str | None = None,
        games: str | os.PathLike[str] | None = None,
        max_turns: int | None = None,
        num_tasks: int | dict[str, int] | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        if difficulty is not None and difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {list(DIFFICULTIES)}, got {difficulty!r}")
        # With games=, the tasks are the given games; otherwise they are generated.
        self.games: list[GameFile] | None = None
        if games is not None:
            given = [
                name
                for name, value in (("difficulty", difficulty), ("num_tasks", num_tasks))
                if value is not None
            ]
            if given:
                verb = "does" if len(given) == 1 else "do"
                raise ValueError(
                    f"{' and '.join(given)} {verb} not apply with games=: the tasks are the given games"
                )
            self.games = find_games(games)
        self.difficulty = difficulty or "easy"
        self.num_tasks = self._num_tasks(num_tasks)
        self.cache = GameCache(cache_dir if cache_dir is not None else default_cache_dir())
        self._game: Any = None  # the open TextWorld environment
        self._game_path: Path | None = None
        self._state: Any = None  # TextWorld's GameState after the last command
        self._progress_given = Fraction(0)  # the normalised score handed out as reward so far
        self._current: GameFile | None = None  # the game of this episode (games= only)
        self._commands: list[str] = []  # the commands sent to the game this episode
        self._walkthrough: list[str] = []  # the game's own walkthrough (games= only)

    @staticmethod
    def _num_tasks(num_tasks: int | dict[str, int] | None) -> dict[str, int]:
        if num_tasks is None:
            return dict(DEFAULT_NUM_TASKS)
        counts = dict.fromkeys(SPLITS, num_tasks) if isinstance(num_tasks, int) else dict(num_tasks)
        if set(counts) != set(SPLITS) or not all(isinstance(n, int) and n > 0 for n in counts.values()):
            raise ValueError(f"num_tasks must be a positive int or a mapping of {list(SPLITS)} to one")
        return counts

    # ---- tasks ----------------------------------------------------------------------
    def _task_params(self, options: dict[str, Any]) -> tuple[dict[str, Any], GameParams]:
        split = self.select_choice(options, "split", SPLITS, "train")
        difficulty = self.select_choice(options, "difficulty", tuple(DIFFICULTIES), self.difficulty)
        task = self.select_task(options, self.num_tasks[split])
        sizes = dict(zip(PARAM_LIMITS, DIFFICULTIES[difficulty], strict=True))
        for name, (low, high) in PARAM_LIMITS.items():
            value = options.get(name, sizes[name])
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or not low <= value <= high
            ):
                raise TaskOptionError(f"options.{name} must be an integer in [{low}, {high}], got {value!r}")
            sizes[name] = int(value)
        params = GameParams(**sizes, seed=generator_seed(split, task, *sizes.values()))
        return {"task": task, "split": split, "difficulty": difficulty, **sizes}, params

    def _game_file(self, options: dict[str, Any]) -> tuple[dict[str, Any], GameFile]:
        """The game of `options["task"]` among the given games (`split` is accepted and ignored)."""
        assert self.games is not None
        fixed = sorted(key for key in ("difficulty", *PARAM_LIMITS) if key in options)
        if fixed:
            raise TaskOptionError(
                f"options {fixed} do not apply with games=: each task is one of the given games"
            )
        task = self.select_task(options, len(self.games))
        game = self.games[task]
        return {"task": task, "game": game.name, "walkthrough": game.walkthrough}, game

    def _open(self, path: Path) -> Any:
        # Loading a game parses its logic with TextWorld's shared parser: one at a time per process.
        with TEXTWORLD_LOCK:
            if self._game is None or path != self._game_path:
                self._close_game()
                infos = REQUEST_INFOS if self.games is None else FILE_REQUEST_INFOS
                self._game = textworld.start(str(path), request_infos=infos)
                self._game_path = path
            return self._game.reset()

    def _close_game(self) -> None:
        if self._game is not None:
            self._game.close()
        self._game = None
        self._game_path = None
        self._state = None

    # ---- the contract ---------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if self.games is None:
            task_info, params = self._task_params(options)
            try:
                path = self.cache.get(params)
            except GameGenerationError as exc:
                raise TaskOptionError(str(exc)) from exc
        else:
            task_info, self._current = self._game_file(options)
            path = self._current.path
        self._state = self._open(path)
        self._progress_given = Fraction(0)
        self._commands = []
        self._walkthrough = list(self._state.get("extra.walkthrough") or []) if self.games is not None else []
        info = {"instruction": self._instruction(), "task": task_info, **self._progress()}
        return clean_feedback(self._state.feedback), info

    def _instruction(self) -> str:
        goal = " ".join(str(self._state.objective or "").split())
        if not goal:  # tw-make's `--goal none`: the game keeps its goal to itself
            goal = "the game does not say; explore, and the score tells you when you make progress."
        return (
            "You are playing a text adventure game. You explore rooms and use objects by typing commands.\n"
            f"Your goal: {goal}\n"
            "Each turn, reply with exactly one command in plain words, such as `go east`, `take key`, "
            "`open chest`, `unlock door with key`, `put apple on table`, `insert key into box`, "
            "`examine book`, `look` (describe the room) or `inventory` (what you carry). "
            "Use the object names the game prints. The commands the game accepts right now are "
            'listed in info["valid_actions"]. You win by completing the goal.'
        )

    def _progress(self) -> dict[str, Any]:
        return {
            "score": int(self._state.score or 0),
            "max_score": int(self._state.max_score),
            "won": bool(self._state.won),
            "lost": bool(self._state.lost),
        }

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        command = " ".join(QUOTED.fullmatch(action).group(1).split())
        refusal = self._refusal(command)
        if refusal is not None:
            observation, reward, terminated, info = self.invalid(refusal)
            return observation, reward, terminated, {**info, **self._progress()}
        admissible = {normalise(c) for c in self._state.admissible_commands or ()}
        moves = self._state.moves
        self._state, _, _ = self._game.step(command)
        self._commands.append(normalise(command))
        gained = max(Fraction(0), self._normalised_score() - self._progress_given)
        self._progress_given += gained
        reward = float(gained)
        invalid = normalise(command) not in admissible and self._state.moves == moves
        observation = clean_feedback(self._state.feedback) or "Nothing happens."
        progress = self._progress()
        return observation, reward, progress["won"] or progress["lost"], {"invalid": invalid, **progress}

    def _normalised_score(self) -> Fraction:
        """The score as a share of the maximum: 1 once the game is won (a user's game may score
        past its maximum, or have none), never above 1."""
        if self._state.won:
            return Fraction(1)
        max_score = int(self._state.max_score or 0)
        return (
            min(Fraction(1), Fraction(int(self._state.score or 0), max_score))
            if max_score > 0
            else Fraction(0)
        )

    @staticmethod
    def _refusal(command: str) -> str | None:
        """Why `command` is not sent to the game, or None if it is."""
        if not command:
            return "Invalid action: the command is empty. Type one command, such as `look` or `go east`."
        shown = command if len(command) <= 60 else command[:57] + "..."
        if not COMMAND.fullmatch(command):
            return (
                f"Invalid action: {shown!r} is not a command. Type one command in plain words, without "
                "punctuation, such as `take key` or `open chest`."
            )
        words = command.lower().split()
        if "then" in words:
            return "Invalid action: type one command per turn (no `then`)."
        if words[0] in BLOCKED_VERBS or any(word.startswith("tw-") for word in words):
            return (
                f"Invalid action: `{words[0]}` is not available here. Play on with commands such as `look`."
            )
        return None

    def _success(self) -> bool:
        return bool(self._state is not None and self._state.won)

    def expert_action(self) -> str:
        """The next command of TextWorld's walkthrough from the current state.

        With games=, a game whose quests give no walkthrough is played by the walkthrough in its
        .json sidecar, from the start and as long as the episode follows it; a game with neither
        has no expert (`NoExpertError`)."""
        if self._state is None:
            raise ResetNeeded("call reset() before expert_action()")
        policy = self._state.policy_commands or []
        if policy or self.games is None:
            return policy[0] if policy else "look"
        done = len(self._commands)
        steps = [normalise(command) for command in self._walkthrough]
        if done < len(steps) and steps[:done] == self._commands:
            return self._walkthrough[done]
        game = self._current.name if self._current is not None else "?"
        why = (
            "the episode has left its walkthrough"
            if self._walkthrough
            else "it has neither quests nor a walkthrough in its .json"
        )
        raise NoExpertError(f"no expert for the game {game!r}: {why}")

    def valid_actions(self) -> list[str] | None:
        if self._state is None:
            return None
        return sorted(self._state.admissible_commands or [])

    def close(self) -> None:
        self._close_game()
        super().close()
