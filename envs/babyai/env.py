"""`evol/BabyAI-v0`: minigrid's BabyAI levels as a text game with AgentGym's actions."""

from __future__ import annotations

import contextlib
import io
import re
from itertools import pairwise
from typing import Any

import gymnasium as gym
import numpy as np
from minigrid.minigrid_env import MiniGridEnv
from minigrid.utils.baby_ai_bot import BabyAIBot

from envs.babyai.describe import DIR_VECTORS, OBJECT_TYPES, SeenObject, View, render, scan_view
from envs.babyai.expert import high_level_action, new_bot
from envs.babyai.levels import (
    DEFAULT_LEVELS,
    KNOWN_LEVELS,
    TASKS_PER_SPLIT,
    level_env_id,
    level_name,
    task_seed,
)
from envs.core import RENDER_MODE, TextEnv, turns_param
from envs.params import Param, choice_param, task_param

LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE = range(6)  # minigrid's action ids
PRIMITIVE_NAMES = {
    LEFT: "turn left",
    RIGHT: "turn right",
    FORWARD: "move forward",
    PICKUP: "pick up",
    DROP: "drop",
    TOGGLE: "toggle",
}
CHECK = "check available actions"
HIGH_LEVEL = re.compile(r"^(go to|pick up|go through|toggle and go through) (\w+) (\w+) (\d+)$")
UNNUMBERED = re.compile(r"^(go to|pick up|go through|toggle and go through) (\w+) (\w+)$")

INSTRUCTION = """\
You are an agent in BabyAI, a grid world of rooms with walls, doors and objects (balls, keys, boxes).
Your goal: {mission}.

Every turn you get what you see in front of you (a 7x7 view that walls and closed doors block; \
positions are counted in steps forward and to your left or right), what you carry, and the list of \
actions available now. Objects are numbered by distance: "red ball 1" is the nearest red ball you \
see, "red ball 2" the next one; doors are numbered per colour.

Reply with exactly one action per turn, written exactly as one of the strings listed after \
"Available actions:" (case does not matter), and nothing else. The actions:
- turn left / turn right: turn 90 degrees where you stand.
- move forward: step one cell forward.
- pick up: pick up the object right in front of you (you carry at most one object).
- drop: put the object you carry on the empty cell in front of you.
- toggle: open or close the door in front of you (a locked door opens only while you carry the key of \
its colour), or open the box in front of you.
- go to <color> <type> <n>: walk to that visible object and face it.
- pick up <color> <type> <n>: walk to that visible object and pick it up.
- go through <color> door <n>: walk through that visible open door.
- toggle and go through <color> door <n>: walk to that visible closed door, open it and walk through.
- check available actions: list the available actions again.
An action that is not available wastes the turn. You have {max_turns} turns."""


def normalize(action: str) -> str:
    return " ".join(action.lower().split()).rstrip(".!")


def _no_observation() -> None:
    return None


class BabyAIEnv(TextEnv):
    """
    BabyAI: follow a language instruction in minigrid's grid world, seen as text.

    ## Description

    Minigrid's BabyAI levels (go to, pick up, open a door; one room or a few rooms), with
    the observations and actions of AgentGym's BabyAI. The agent sees a 7x7 egocentric
    view that walls and closed doors occlude; each turn it reads the mission, every visible
    object with its colour, type, door state and position relative to it in steps ("a red
    ball 1, 2 steps forward and 1 step to your left"), the walls straight ahead and
    directly beside it, what it carries, and the actions available now. Same-looking
    objects are numbered from the nearest ("red ball 1", "red ball 2"); doors are
    numbered per colour. High-level actions plan a shortest path over the cells the agent
    has seen (through open doors, around objects) and run its primitive moves within one
    turn. The default mix is GoToRedBallGrey, GoToRedBall, GoToObj, GoToLocal, PickupLoc,
    GoToDoor, OpenDoor, OpenRedDoor, UnlockLocal and PutNextLocal (the expert solves more
    than 99.9% of them within 20 turns).

    ## Instruction and action format

    `info["instruction"]` gives the mission and this format. One action per turn, exactly
    one of the strings after "Available actions:" (case and spacing do not matter):

    | Action | Effect |
    |---|---|
    | `turn left`, `turn right` | turn 90 degrees in place |
    | `move forward` | step one cell forward (listed only when the cell is free) |
    | `pick up` | pick up the object in front (carry at most one) |
    | `drop` | drop the carried object on the empty cell in front |
    | `toggle` | open/close the door in front (a locked one with its key), open a box |
    | `go to <color> <type> <n>` | walk to a visible object and face it |
    | `pick up <color> <type> <n>` | walk to a visible object and pick it up |
    | `go through <color> door <n>` | walk through a visible open door |
    | `toggle and go through <color> door <n>` | walk to a visible closed door, open it, go through |
    | `check available actions` | list the actions again (the turn counts) |

    Anything else (unknown text, an object that is not visible or not reachable, a blocked
    move) is invalid: the observation says exactly what was wrong and lists the available
    actions, `info["invalid"]` is true, and the turn counts.

    ## Rewards

    Minigrid's reward when the mission is completed: `1 - 0.9 * moves / max_moves`, in
    (0, 1], where moves counts primitive moves (a high-level action counts all of its
    moves) and max_moves is the level's limit. 0 on every other turn.

    ## Success

    The mission was completed (minigrid's verifier says success).

    ## Termination

    Terminated when the mission is completed, when the verifier says it failed, or when the
    level's own limit of primitive moves is reached (no success). Truncated after
    `max_turns` turns (default 20, as in AgentGym).

    ## Task options

    `reset(seed, options={"task": k, "split": "train" | "test", "level": name})`. Task `k`
    (below 1,000,000 in train, 10,000 in test) fixes the minigrid seed; train and test
    seeds are disjoint ranges. `level` (a level of the mix, "GoToLocal" or
    "BabyAI-GoToLocal-v0") defaults to level `k mod len(levels)` of the mix; without
    `task`, `k` is drawn from the env's seeded generator. Same seed and options replay
    the same episode. Constructor kwargs: `levels` (the mix), `max_turns`, `render_mode`
    ("ansi" returns the last observation).

    ## Registered configurations

    - `evol/BabyAI-v0`: the default mix, 20 turns.
    """

    reward_range = (0.0, 1.0)
    max_turns = 20
    success_rule = "the mission is completed (minigrid's verifier); the reward is then in (0, 1]"
    splits = ("train", "test")
    max_action_length = 256
    max_observation_length = 16384
    kwarg_params = {
        "levels": Param(
            "list",
            max_length=len(KNOWN_LEVELS) // 2,
            items=Param("str", choices=KNOWN_LEVELS),
            help="the level mix (default: the ten levels of the card)",
        ),
        "max_turns": turns_param(20),
        "render_mode": RENDER_MODE,
    }
    option_params = {
        "task": task_param(TASKS_PER_SPLIT),
        "split": choice_param(splits, help='"train" (default) or "test"'),
        "level": choice_param(
            KNOWN_LEVELS, help="a level of the env's mix (default: level task mod mix size)"
        ),
    }

    def __init__(
        self,
        levels: list[str] | None = None,
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        levels = list(DEFAULT_LEVELS if levels is None else levels)
        if not levels:
            raise ValueError("levels must name at least one BabyAI level")
        self._level_envs: dict[str, MiniGridEnv] = {}
        for level in levels:
            env = gym.make(level_env_id(level)).unwrapped
            # Why: the text is built once per turn, not from minigrid's image at every move.
            env.gen_obs = _no_observation
            self._level_envs[level_name(level)] = env
        self.levels = tuple(self._level_envs)
        self._env: MiniGridEnv | None = None
        self._known = np.zeros((0, 0), dtype=bool)
        self._view: View | None = None
        self._actions: dict[str, tuple[str, SeenObject | None, list[int]]] = {}
        self._mission_completed = False
        self._bot: BabyAIBot | None = None
        self._expert_next: str | None = None

    # ---- episode ----------------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        for key in ("split", "level"):
            if options.get(key) is None:
                options.pop(key, None)
        split = self.select_choice(options, "split", self.splits, "train")
        task = self.select_task(options, TASKS_PER_SPLIT[split])
        if isinstance(options.get("level"), str):
            options["level"] = level_name(options["level"])
        level = self.select_choice(options, "level", self.levels, self.levels[task % len(self.levels)])
        seed = task_seed(split, task)
        env = self._env = self._level_envs[level]
        with contextlib.redirect_stdout(io.StringIO()):  # rejection sampling prints its retries
            env.reset(seed=seed)
        self._known = np.zeros((env.width, env.height), dtype=bool)
        self._mission_completed = False
        self._bot, self._expert_next = None, None
        observation = self._observe()
        info = {
            "instruction": INSTRUCTION.format(mission=env.mission, max_turns=self.max_turns),
            "mission": env.mission,
            "level": level,
            "split": split,
            "task": task,
        }
        return observation, info

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        text = normalize(action)
        if text != self._expert_next:
            self._bot = None  # the agent left the bot's plan: it replans from scratch
        self._expert_next = None
        if not text:
            return self.invalid(self._invalid_message("the action is empty"))
        entry = self._actions.get(text)
        if entry is None:
            return self.invalid(self._invalid_message(self._why_unavailable(text)))
        kind, target, plan = entry
        if kind == "check":
            return (
                self._observe("You can take the following actions: " + ", ".join(self._actions)),
                0.0,
                False,
                {},
            )
        before = self._front_snapshot()
        carried = self._env.carrying
        reward, ended, done, blocked = self._execute(plan)
        feedback = self._feedback(kind, target, before, carried, plan[:done], done == len(plan), blocked)
        if ended:
            feedback = (feedback + " " + self._ending()).strip()
        return self._observe(feedback, ended), reward, ended, {}

    def _success(self) -> bool:
        return self._mission_completed

    def valid_actions(self) -> list[str]:
        return list(self._actions)

    # ---- moves ------------------------------------------------------------------------
    def _execute(self, plan: list[int]) -> tuple[float, bool, int, str]:
        """Run primitive moves until the plan, the episode or the way ends.

        Returns (reward, episode ended, moves made, what blocked the way or "").
        """
        env = self._env
        for done, action in enumerate(plan):
            if action == FORWARD:
                front = env.grid.get(*env.front_pos)
                if front is not None and not front.can_overlap():
                    return 0.0, False, done, self._object_name(front)
            _, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                self._mission_completed = terminated and reward > 0
                return float(reward), True, done + 1, ""
        return 0.0, False, len(plan), ""

    def _ending(self) -> str:
        if self._mission_completed:
            return "The task is completed."
        if self._env.step_count >= self._env.max_steps:
            return f"The level's limit of {self._env.max_steps} moves is reached; the episode is over."
        return "The mission has failed; the episode is over."

    # ---- what the agent sees and can do -----------------------------------------------
    def _observe(self, feedback: str = "", ended: bool = False) -> str:
        """Scan the view, update the agent's map and actions, and render the text."""
        env = self._env
        view = self._view = scan_view(env)
        if view.cells:
            xs, ys = zip(*view.cells, strict=True)
            self._known[list(xs), list(ys)] = True
        self._actions = {} if ended else self._list_actions(view)
        carrying = env.carrying
        carried = f"{carrying.color} {carrying.type}" if carrying is not None else None
        return render(env.mission, view, carried, list(self._actions), feedback)

    def _list_actions(self, view: View) -> dict[str, tuple[str, SeenObject | None, list[int]]]:
        env = self._env
        front = env.grid.get(*env.front_pos)
        carrying = env.carrying
        actions: dict[str, tuple[str, SeenObject | None, list[int]]] = {
            "turn left": ("turn", None, [LEFT]),
            "turn right": ("turn", None, [RIGHT]),
        }
        if front is None or front.can_overlap():
            actions["move forward"] = ("move", None, [FORWARD])
        if carrying is None and front is not None and front.can_pickup():
            actions["pick up"] = ("pickup", None, [PICKUP])
        if carrying is not None and front is None:
            actions["drop"] = ("drop", None, [DROP])
        if front is not None and self._can_toggle(front):
            actions["toggle"] = ("toggle", None, [TOGGLE])
        if view.objects:
            paths = self._paths()
            goto, pickup, through, open_through = {}, {}, {}, {}
            for obj in view.objects:
                facing = self._plan_facing(paths, obj.pos)
                if facing:
                    goto[f"go to {obj.label}"] = ("go to", obj, facing)
                if obj.type == "door":
                    if obj.state == "open":
                        plan = self._plan_through(paths, obj.pos)
                        if plan:
                            through[f"go through {obj.label}"] = ("go through", obj, plan)
                    elif facing is not None and self._can_toggle(env.grid.get(*obj.pos)):
                        plan = [*facing, TOGGLE, FORWARD, FORWARD]
                        open_through[f"toggle and go through {obj.label}"] = (
                            "toggle and go through",
                            obj,
                            plan,
                        )
                elif carrying is None and facing is not None:
                    pickup[f"pick up {obj.label}"] = ("pick up", obj, [*facing, PICKUP])
            for group in (goto, pickup, through, open_through):
                actions.update(group)
        actions[CHECK] = ("check", None, [])
        return actions

    def _can_toggle(self, cell: Any) -> bool:
        if cell.type == "box":
            return True
        if cell.type != "door":
            return False
        if not cell.is_locked:
            return True
        carrying = self._env.carrying
        return carrying is not None and carrying.type == "key" and carrying.color == cell.color

    # ---- path planning over the cells the agent has seen ------------------------------
    def _paths(self) -> dict[int, int]:
        """Breadth-first search from the agent over seen free cells: cell index -> parent.

        Cells are `y * width + x`; moves that keep the heading are tried first, so among
        shortest paths the one with fewer turns tends to win.
        """
        env = self._env
        width = env.width
        cells = env.grid.grid
        known = self._known.T.ravel().tolist()
        deltas = (1, width, -1, -width)
        start = env.agent_pos[1] * width + env.agent_pos[0]
        parents = {start: -1}
        queue = [(start, env.agent_dir)]
        head = 0
        while head < len(queue):
            index, heading = queue[head]
            head += 1
            for direction in (heading, (heading + 1) % 4, (heading + 3) % 4, (heading + 2) % 4):
                nxt = index + deltas[direction]
                if nxt in parents or not known[nxt]:
                    continue
                cell = cells[nxt]
                if cell is None or cell.can_overlap():
                    parents[nxt] = index
                    queue.append((nxt, direction))
        return parents

    def _moves_to(self, parents: dict[int, int], goal: int) -> tuple[list[int], int]:
        """Primitive moves along the searched path to cell `goal`, and the final heading."""
        env = self._env
        width = env.width
        route = []
        while goal != -1:
            route.append(goal)
            goal = parents[goal]
        route.reverse()
        moves: list[int] = []
        heading = env.agent_dir
        for here, there in pairwise(route):
            direction = (1, width, -1, -width).index(there - here)
            moves += _turns(heading, direction)
            moves.append(FORWARD)
            heading = direction
        return moves, heading

    def _plan_facing(self, parents: dict[int, int], pos: tuple[int, int]) -> list[int] | None:
        """Moves that end next to `pos` and facing it; None if no seen free path."""
        width = self._env.width
        best = None
        for direction, (dx, dy) in enumerate(DIR_VECTORS):
            stand = (pos[1] - dy) * width + (pos[0] - dx)
            if stand in parents:
                moves, heading = self._moves_to(parents, stand)
                moves += _turns(heading, direction)
                if best is None or len(moves) < len(best):
                    best = moves
        return best

    def _plan_through(self, parents: dict[int, int], pos: tuple[int, int]) -> list[int] | None:
        """Moves onto the open door at `pos` and one step beyond; None if unreachable."""
        door = pos[1] * self._env.width + pos[0]
        if door not in parents or parents[door] == -1:
            return None
        moves, _ = self._moves_to(parents, door)
        return [*moves, FORWARD]

    # ---- text -------------------------------------------------------------------------
    def _object_name(self, cell: Any) -> str:
        if cell is None:
            return "nothing"
        if cell.type == "door":
            state = "open" if cell.is_open else "locked" if cell.is_locked else "closed"
            return f"the {state} {cell.color} door"
        if cell.type == "wall":
            return "a wall"
        return f"the {cell.color} {cell.type}"

    def _front_snapshot(self) -> tuple[Any, tuple[bool, bool] | None]:
        """The cell in front and, for a door, its (open, locked) state before a move."""
        env = self._env
        front = env.grid.get(*env.front_pos)
        state = (front.is_open, front.is_locked) if front is not None and front.type == "door" else None
        return front, state

    def _feedback(
        self,
        kind: str,
        target: SeenObject | None,
        before: tuple[Any, tuple[bool, bool] | None],
        carried: Any,
        made: list[int],
        complete: bool,
        blocked: str,
    ) -> str:
        """What the action did, in one sentence ("" for turns and moves)."""
        env = self._env
        front, door_state = before
        if kind in ("pickup", "pick up"):
            return f"You picked up the {env.carrying.color} {env.carrying.type}." if PICKUP in made else ""
        if kind == "drop":
            return f"You dropped the {carried.color} {carried.type}."
        if kind == "toggle":
            if front.type == "box":
                return f"You opened the {front.color} box." + ("" if front.contains else " It was empty.")
            if door_state[1]:
                return f"You unlocked and opened the {front.color} door."
            return f"You {'closed' if door_state[0] else 'opened'} the {front.color} door."
        if target is None:
            return ""
        name = f"{target.color} {target.type}"
        if kind == "go to":
            return f"You went to the {name}; it is right in front of you." if complete else ""
        if kind == "go through":
            if blocked:
                return f"You stepped into the {name}, but {blocked} blocks the way beyond it."
            return f"You went through the {name}." if complete else ""
        if TOGGLE not in made:
            return ""
        opened = f"You {'unlocked and opened' if target.state == 'locked' else 'opened'} the {name}"
        if blocked:
            return f"{opened}, but {blocked} blocks the way."
        return f"{opened} and went through it." if complete else f"{opened}."

    def _invalid_message(self, reason: str) -> str:
        return f"Invalid action: {reason}.\nAvailable actions: " + ", ".join(self._actions)

    def _why_unavailable(self, text: str) -> str:
        """Say exactly why `text` is not an available action now."""
        env = self._env
        front = env.grid.get(*env.front_pos)
        carrying = env.carrying
        held = f"the {carrying.color} {carrying.type}" if carrying is not None else ""
        if text == "move forward":
            return f"you cannot move forward, {self._object_name(front)} is in the way"
        if text == "pick up":
            if carrying is not None:
                return f"you already carry {held}; drop it first"
            if front is None:
                return "there is nothing right in front of you to pick up"
            return f"{self._object_name(front)} in front of you cannot be picked up"
        if text == "drop":
            if carrying is None:
                return "you are not carrying anything"
            return f"you cannot drop {held} here, {self._object_name(front)} is in front of you"
        if text == "toggle":
            if front is not None and front.type == "door" and front.is_locked:
                return f"the {front.color} door is locked; you need to carry the {front.color} key"
            return "there is no door or box right in front of you to toggle"
        match = HIGH_LEVEL.match(text)
        if match is None and UNNUMBERED.match(text):
            return f"'{text}' lacks the object's number, as in '{text} 1'"
        if match is None:
            return f"'{text}' is not an action; use one of the available actions, written exactly"
        verb, color, kind, number = match.groups()
        label = f"{color} {kind} {number}"
        if kind not in OBJECT_TYPES:
            return f"'{kind}' is not an object type (ball, key, box, door)"
        obj = self._view.by_label().get(label)
        if obj is None:
            seen = [o.label for o in self._view.objects if o.type == kind and o.color == color]
            return f"you see no {label}" + (f" (you see: {', '.join(seen)})" if seen else "")
        if verb == "go to":
            if front is not None and tuple(env.front_pos) == obj.pos:
                return f"you are already facing the {label}"
            return f"there is no path you know of to the {label}"
        if verb == "pick up":
            if kind == "door":
                return "a door cannot be picked up"
            if carrying is not None:
                return f"you already carry {held}; drop it first"
            return f"there is no path you know of to the {label}"
        if kind != "door":
            return f"the {label} is not a door"
        if verb == "go through" and obj.state != "open":
            return f"the {label} is {obj.state}; use 'toggle and go through {label}'"
        if verb == "toggle and go through" and obj.state == "open":
            return f"the {label} is already open; use 'go through {label}'"
        if obj.state == "locked" and not self._can_toggle(env.grid.get(*obj.pos)):
            return f"the {label} is locked; you need to carry the {color} key"
        return f"there is no path you know of to the {label}"

    # ---- expert -----------------------------------------------------------------------
    def expert_action(self) -> str:
        """Minigrid's BabyAI bot's next move, as an action of this env.

        The bot keeps its plan while the agent follows it and is rebuilt from the current
        state (and the cells the agent has seen) after any other action. Where the bot
        heads for a visible object, the high-level action that gets there in one turn (`go
        to`, `pick up`, `toggle and go through`) replaces its primitive moves.
        """
        if self._env is None or not self._actions:
            return CHECK
        if self._expert_next is not None:
            return self._expert_next  # asked twice in one turn: the bot must not replan twice
        try:
            if self._bot is None:
                self._bot = new_bot(self._env, self._known)
            else:
                self._bot.vis_mask |= self._known
            action = self._bot.replan()
            text = high_level_action(self._bot, self._view, self._actions) or PRIMITIVE_NAMES.get(action)
        except Exception:  # the bot asserts on states it was not written for
            text = None
        if text not in self._actions:
            self._bot, text = None, "turn left"
        self._expert_next = text
        return text


def _turns(heading: int, direction: int) -> list[int]:
    """The turns that bring `heading` to `direction`."""
    return ([], [RIGHT], [LEFT, LEFT], [LEFT])[(direction - heading) % 4]
