"""`evol/Maze-v0`: find the way to the goal in a maze described in words (LMRL-Gym style)."""

from __future__ import annotations

import hashlib
import random
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.core import RENDER_MODE, TextEnv, turns_param
from envs.errors import ResetNeeded, TaskOptionError
from envs.params import Param, choice_param, task_param

SPLITS = ("train", "test")
TASKS_PER_SPLIT = {"train": 100_000, "test": 1_000}
MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 3, 12, 5
SLACK_TURNS = 5  # turns a task leaves beyond its shortest path (mistakes, invalid replies)

# direction -> (row step, column step, where a wall that way is, in words)
DIRECTIONS: dict[str, tuple[int, int, str]] = {
    "up": (-1, 0, "above you"),
    "down": (1, 0, "below you"),
    "left": (0, -1, "to your left"),
    "right": (0, 1, "to your right"),
}
MOVE = re.compile(r"(?:(?:move|go) )?(up|down|left|right)")
# The kept text ends at its last undecorated character: linear (a lazy `(.*?)` is quadratic).
DECORATION = re.compile(r"[`'\"\s]*((?:.*[^`'\".!\s])?)[`'\".!\s]*", re.DOTALL)

Cell = tuple[int, int]


def turn_limit(size: int) -> int:
    """The turn limit of a `size` x `size` maze: AgentGym's 15 up to size 5, then 3 per row."""
    return max(15, 3 * size)


@dataclass(frozen=True)
class Maze:
    """A `size` x `size` grid of cells; `open[r][c]` are the directions without a wall."""

    size: int
    open: tuple[tuple[frozenset[str], ...], ...]
    start: Cell
    goal: Cell

    def moves(self, cell: Cell) -> list[str]:
        return [d for d in DIRECTIONS if d in self.open[cell[0]][cell[1]]]

    def distances_to(self, target: Cell) -> np.ndarray:
        """Shortest-path length from every cell to `target` (breadth-first search)."""
        dist = np.full((self.size, self.size), -1, dtype=np.int32)
        dist[target] = 0
        queue = deque([target])
        while queue:
            r, c = queue.popleft()
            for d in self.open[r][c]:
                dr, dc, _ = DIRECTIONS[d]
                if dist[r + dr, c + dc] < 0:
                    dist[r + dr, c + dc] = dist[r, c] + 1
                    queue.append((r + dr, c + dc))
        return dist

    def digest(self) -> bytes:
        text = repr((self.size, [[sorted(cell) for cell in row] for row in self.open], self.start, self.goal))
        return hashlib.sha256(text.encode()).digest()


def carve(size: int, rng: random.Random) -> list[list[set[str]]]:
    """A perfect maze (randomised depth-first search) with a few extra openings for loops."""
    opened: list[list[set[str]]] = [[set() for _ in range(size)] for _ in range(size)]
    opposite = {"up": "down", "down": "up", "left": "right", "right": "left"}

    def connect(r: int, c: int, d: str) -> None:
        dr, dc, _ = DIRECTIONS[d]
        opened[r][c].add(d)
        opened[r + dr][c + dc].add(opposite[d])

    def inside(r: int, c: int) -> bool:
        return 0 <= r < size and 0 <= c < size

    stack = [(rng.randrange(size), rng.randrange(size))]
    seen = {stack[0]}
    while stack:
        r, c = stack[-1]
        fresh = [
            d
            for d, (dr, dc, _) in DIRECTIONS.items()
            if inside(r + dr, c + dc) and (r + dr, c + dc) not in seen
        ]
        if not fresh:
            stack.pop()
            continue
        d = rng.choice(fresh)
        dr, dc, _ = DIRECTIONS[d]
        connect(r, c, d)
        seen.add((r + dr, c + dc))
        stack.append((r + dr, c + dc))
    for _ in range(size * size // 8):
        r, c = rng.randrange(size), rng.randrange(size)
        d = rng.choice([d for d, (dr, dc, _) in DIRECTIONS.items() if inside(r + dr, c + dc)])
        connect(r, c, d)
    return opened


def generate_maze(size: int, split: str, task: int) -> Maze:
    """Task `task` of `split` at `size`: the same maze on any machine.

    The start is 2 to `turn_limit(size) - SLACK_TURNS` moves from the goal (at least
    `size - 1` where the maze allows). A maze belongs to the split named by the low bit of
    its digest, so the train and test sets never share a maze.
    """
    low, high = max(2, size - 1), turn_limit(size) - SLACK_TURNS
    attempt = 0
    while True:
        rng = random.Random(f"evol-maze:{size}:{split}:{task}:{attempt}")
        attempt += 1
        opened = carve(size, rng)
        frozen = tuple(tuple(frozenset(cell) for cell in row) for row in opened)
        goal = (rng.randrange(size), rng.randrange(size))
        dist = Maze(size, frozen, goal, goal).distances_to(goal)
        cells = [(r, c) for r in range(size) for c in range(size) if low <= dist[r, c] <= high]
        if not cells:
            reachable = dist[(dist > 0) & (dist <= high)]
            if reachable.size == 0:
                continue
            farthest = int(reachable.max())
            cells = [(r, c) for r in range(size) for c in range(size) if dist[r, c] == farthest]
        maze = Maze(size, frozen, rng.choice(cells), goal)
        if SPLITS[maze.digest()[0] & 1] == split:
            return maze


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def join_words(words: list[str], last: str = "and") -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {last} " + words[-1]


class MazeEnv(TextEnv):
    """
    Maze: walk to the goal of a maze that is described in words.

    ## Description

    A text maze in the style of LMRL-Gym's: a square grid of cells with walls between some
    of them. The agent never sees the map: every turn it is told its position, the goal's
    position, the walls around it and the moves open to it, and it must find its way
    (remembering dead ends itself). Mazes are made by a randomised depth-first search with
    a few extra openings, so there are some loops.

    ## Instruction and action format

    `info["instruction"]` gives the maze size, the goal and this format. Positions are
    "row r, column c", row 1 at the top and column 1 at the left. One action per turn:

    | Action | Effect |
    |---|---|
    | `move up` | one cell up (row - 1) |
    | `move down` | one cell down (row + 1) |
    | `move left` | one cell left (column - 1) |
    | `move right` | one cell right (column + 1) |

    Case, surrounding quotes and a final period are ignored; `up`, `go up` also work. A
    move into a wall or an unparsable reply is invalid: nothing moves, the observation
    says what was wrong and repeats the position, `info["invalid"]` is true, and the turn
    counts. `info["valid_actions"]` lists the open moves.

    Example observation: "You are at row 2, column 3 of a 5 by 5 maze. The goal is at
    row 5, column 5 (3 rows down and 2 columns to the right). There are walls above you
    and to your left. You can move down or right."

    ## Rewards

    1 on the turn the agent reaches the goal, 0 on every other turn.

    ## Success

    The agent reached the goal.

    ## Termination

    Terminated when the goal is reached. Truncated after `turn_limit(size)` turns:
    15 (AgentGym's limit) for sizes up to 5, `3 * size` for larger mazes;
    `info["max_turns"]` says the episode's limit. A `max_turns` constructor kwarg fixes
    the limit for every size. Every task's start is at most `limit - 5` moves from the
    goal, so there is room for a few mistakes.

    ## Task options

    `reset(seed, options={"task": k, "split": "train" | "test", "size": n})`: task `k`
    (below 100,000 in train, 1,000 in test; drawn from the seed when absent) of the
    split (default `"train"`) at size `n` (3 to 12 cells a side, default 5). The maze,
    start and goal depend only on (size, split, task), so a task replays identically, and
    train and test never share a maze. Constructor kwargs: `size` (the default size),
    `max_turns`, `render_mode` ("ansi" returns the last observation).

    ## Registered configurations

    - `evol/Maze-v0`: 5 by 5 mazes, 15 turns.
    """

    reward_range = (0.0, 1.0)
    max_turns = turn_limit(DEFAULT_SIZE)
    success_rule = "the agent reaches the goal cell"
    splits = SPLITS
    max_action_length = 256
    max_observation_length = 4096
    kwarg_params = {
        "size": Param(
            "int", default=DEFAULT_SIZE, minimum=MIN_SIZE, maximum=MAX_SIZE, help="default maze size"
        ),
        "max_turns": turns_param(turn_limit(DEFAULT_SIZE)),
        "render_mode": RENDER_MODE,
    }
    option_params = {
        "task": task_param(TASKS_PER_SPLIT),
        "split": choice_param(SPLITS, help='"train" (default) or "test"'),
        "size": Param("int", minimum=MIN_SIZE, maximum=MAX_SIZE, help="maze size (default: the size kwarg)"),
    }

    def __init__(
        self, size: int = DEFAULT_SIZE, max_turns: int | None = None, render_mode: str | None = None
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self._check_size(size, "size")
        self.size = size
        self._fixed_max_turns = max_turns
        self._maze: Maze | None = None
        self._position: Cell = (0, 0)
        self._to_goal = np.zeros((0, 0), dtype=np.int32)

    @staticmethod
    def _check_size(size: Any, name: str) -> None:
        if (
            isinstance(size, bool)
            or not isinstance(size, (int, np.integer))
            or not MIN_SIZE <= size <= MAX_SIZE
        ):
            raise TaskOptionError(f"{name} must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {size!r}")

    # ---- the contract ---------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        split = self.select_choice(options, "split", SPLITS, "train")
        task = self.select_task(options, TASKS_PER_SPLIT[split])
        size = options.get("size", self.size)
        self._check_size(size, "options.size")
        size = int(size)
        self.max_turns = self._fixed_max_turns or turn_limit(size)
        maze = self._maze = generate_maze(size, split, task)
        self._position = maze.start
        self._to_goal = maze.distances_to(maze.goal)
        info = {
            "instruction": self._instruction(),
            "task": task,
            "split": split,
            "size": size,
            "start": list(maze.start),
            "goal": list(maze.goal),
            "shortest_path": int(self._to_goal[maze.start]),
        }
        return self._describe(), info

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        text = DECORATION.fullmatch(action).group(1)
        match = MOVE.fullmatch(" ".join(text.lower().split()))
        if match is None:
            shown = text if len(text) <= 60 else text[:57] + "..."
            return self._refuse(
                f"Invalid action: {shown!r} is not a move. Reply with exactly one of: move up, move down, "
                "move left, move right."
            )
        direction = match.group(1)
        if direction not in self._maze.moves(self._position):
            return self._refuse(
                f"You cannot move {direction}: there is a wall {DIRECTIONS[direction][2]}. You did not move."
            )
        dr, dc, _ = DIRECTIONS[direction]
        self._position = (self._position[0] + dr, self._position[1] + dc)
        if self._position == self._maze.goal:
            r, c = self._position
            return (
                f"You moved {direction} and reached the goal at row {r + 1}, column {c + 1}. You win!",
                1.0,
                True,
                {},
            )
        return f"You moved {direction}.\n{self._describe()}", 0.0, False, {}

    def _refuse(self, message: str) -> tuple[str, float, bool, dict[str, Any]]:
        """An invalid turn: the message, then where the agent still is."""
        observation, reward, terminated, info = self.invalid(f"{message}\n{self._describe()}")
        return observation, reward, terminated, {**info, "error": message}

    def _success(self) -> bool:
        return self._maze is not None and self._position == self._maze.goal

    def expert_action(self) -> str:
        """A move along a shortest path to the goal (breadth-first search distances)."""
        if self._maze is None:
            raise ResetNeeded("call reset() before expert_action()")
        r, c = self._position
        for direction in self._maze.moves(self._position):
            dr, dc, _ = DIRECTIONS[direction]
            if self._to_goal[r + dr, c + dc] == self._to_goal[r, c] - 1:
                return f"move {direction}"
        return "move up"  # at the goal already: the episode is over

    def valid_actions(self) -> list[str] | None:
        if self._maze is None:
            return None
        return [f"move {d}" for d in self._maze.moves(self._position)]

    # ---- text -----------------------------------------------------------------------
    def _instruction(self) -> str:
        size, (gr, gc) = self._maze.size, self._maze.goal
        return (
            f"You are in a maze of {size} by {size} cells, with walls between some of them. "
            f"Your goal: reach the goal at row {gr + 1}, column {gc + 1}. Rows are numbered from 1 at the top, "
            "columns from 1 at the left. You cannot see the map: every turn you are told where you are, "
            "where the goal is, the walls around you and the moves open to you.\n"
            "Reply with exactly one action per turn and nothing else: move up, move down, move left or "
            "move right (up lowers the row number, left lowers the column number). A move into a wall "
            f"wastes the turn. You have {self.max_turns} turns."
        )

    def _describe(self) -> str:
        maze, (r, c) = self._maze, self._position
        gr, gc = maze.goal
        offsets = []
        if gr != r:
            offsets.append(plural(abs(gr - r), "row") + (" down" if gr > r else " up"))
        if gc != c:
            offsets.append(plural(abs(gc - c), "column") + (" to the right" if gc > c else " to the left"))
        moves = maze.moves((r, c))
        walls = [DIRECTIONS[d][2] for d in DIRECTIONS if d not in moves]
        lines = [
            f"You are at row {r + 1}, column {c + 1} of a {maze.size} by {maze.size} maze. "
            f"The goal is at row {gr + 1}, column {gc + 1} ({join_words(offsets)}).",
            (
                f"There {'is a wall' if len(walls) == 1 else 'are walls'} {join_words(walls)}. "
                if walls
                else "There are no walls around you. "
            )
            + f"You can move {join_words(moves, 'or')}.",
        ]
        return "\n".join(lines)
