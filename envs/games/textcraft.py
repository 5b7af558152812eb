"""`evol/TextCraft-v0`: craft a Minecraft-like item from base items, following crafting commands."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs.core import RENDER_MODE, TextEnv, turns_param
from envs.errors import ResetNeeded
from envs.params import Param, choice_param, task_param

RECIPES_PATH = Path(__file__).with_name("recipes.json")
SPLITS = ("train", "test")
TASKS_PER_SPLIT = {"train": 10_000, "test": 1_000}
MAX_DEPTH = 4  # the deepest recipe tree of recipes.json
TEST_EVERY = 5  # every fifth goal item of each depth (in a fixed hashed order) is a test goal
DISTRACTORS = 4  # crafting commands listed that the goal does not need
MAX_GET = 64  # the most of one item a single `get` gives

GET = re.compile(r"get (?:(\d+) )?(.+)")
CRAFT = re.compile(r"craft (?:(\d+) )?(.+?) using (.+)")
INGREDIENT = re.compile(r"(\d+) (.+)")
# The kept text ends at its last undecorated character: linear (a lazy `(.*?)` is quadratic).
DECORATION = re.compile(r"[`'\"\s]*((?:.*[^`\".!\s])?)[`\".!\s]*", re.DOTALL)


@dataclass(frozen=True)
class Recipe:
    """`count` of `item` from `ingredients` (name, count), in the order the command lists them."""

    item: str
    count: int
    ingredients: tuple[tuple[str, int], ...]

    def command(self, batches: int = 1) -> str:
        using = ", ".join(f"{k * batches} {name}" for name, k in self.ingredients)
        return f"craft {self.count * batches} {self.item} using {using}"


@dataclass(frozen=True)
class RecipeBook:
    """The shipped recipe graph: base items (got with `get`) and one recipe per crafted item."""

    base: frozenset[str]
    recipes: dict[str, Recipe]

    @functools.cached_property
    def depth(self) -> dict[str, int]:
        """Crafting depth: 0 for a base item, else 1 + the deepest ingredient's depth."""
        depth = dict.fromkeys(self.base, 0)

        def visit(item: str) -> int:
            if item not in depth:
                depth[item] = 1 + max(visit(name) for name, _ in self.recipes[item].ingredients)
            return depth[item]

        for item in self.recipes:
            visit(item)
        return depth

    def crafted_below(self, goal: str) -> list[str]:
        """The crafted items of `goal`'s recipe tree, each after every item that uses it."""
        seen: set[str] = set()
        postorder: list[str] = []

        def visit(item: str) -> None:
            if item in seen or item in self.base:
                return
            seen.add(item)
            for name, _ in self.recipes[item].ingredients:
                visit(name)
            postorder.append(item)

        visit(goal)
        return postorder[::-1]

    def canonical(self, name: str) -> str | None:
        """The item called `name` (plural forms such as "sticks" accepted), or None."""
        name = " ".join(name.lower().removeprefix("minecraft:").replace("_", " ").split())
        for candidate in (name, name.removesuffix("s"), name.removesuffix("es"), name + "s"):
            if candidate in self.base or candidate in self.recipes:
                return candidate
        return None


@functools.cache
def recipe_book() -> RecipeBook:
    data = json.loads(RECIPES_PATH.read_text())
    recipes = {
        r["item"]: Recipe(r["item"], int(r["count"]), tuple((k, int(v)) for k, v in r["ingredients"].items()))
        for r in data["recipes"]
    }
    return RecipeBook(frozenset(data["base_items"]), recipes)


def _order_key(item: str) -> bytes:
    return hashlib.sha256(f"evol-textcraft:{item}".encode()).digest()


@functools.cache
def goal_items(split: str, depth: int | None) -> tuple[str, ...]:
    """The goal items of `split` (of one crafting depth, or all), in a fixed mixed order."""
    book = recipe_book()
    chosen = []
    for d in range(1, max(book.depth.values()) + 1):
        items = sorted((i for i in book.recipes if book.depth[i] == d), key=_order_key)
        test = items[::TEST_EVERY]
        chosen += test if split == "test" else [i for i in items if i not in test]
    if depth is not None:
        chosen = [i for i in chosen if book.depth[i] == depth]
    return tuple(sorted(chosen, key=_order_key))


def expert_plan(goal: str, inventory: Counter) -> list[str]:
    """Every action still needed to craft `goal` from `inventory`: gets first, then crafts bottom-up.

    Needs are summed over the whole recipe tree before anything is crafted (an item used
    by two parents is crafted once, in one batch), and what the inventory holds is used.
    """
    book = recipe_book()
    order = book.crafted_below(goal)
    need: Counter = Counter({goal: 1})
    batches: dict[str, int] = {}
    for item in order:  # every user of an item comes before it: its need is complete
        deficit = need[item] - inventory[item]
        if deficit > 0:
            recipe = book.recipes[item]
            batches[item] = math.ceil(deficit / recipe.count)
            for name, k in recipe.ingredients:
                need[name] += batches[item] * k
    actions = [
        f"get {min(need[name] - inventory[name], MAX_GET)} {name}"
        for name in need
        if name in book.base and need[name] > inventory[name]
    ]
    actions += [book.recipes[item].command(batches[item]) for item in reversed(order) if item in batches]
    return actions


def inventory_text(inventory: Counter) -> str:
    items = [f"[{name}] ({n})" for name, n in sorted(inventory.items()) if n > 0]
    return "Inventory: " + (" ".join(items) if items else "empty")


class TextCraftEnv(TextEnv):
    """
    TextCraft: craft a Minecraft-like item from base items by following crafting commands.

    ## Description

    TextCraft's game (Prasad et al., ADaPT) on a recipe graph shipped with the package
    (`envs/games/recipes.json`: 58 base items and 314 crafted items of Minecraft, such as
    planks, sticks, tools, armour, dyes, wool, beds, rails and redstone parts). Base items
    are got directly; every other item is crafted from its recipe. The goal is one item of
    crafting depth 1 to 4 (a base item has depth 0; a crafted item is one deeper than its
    deepest ingredient: oak planks 1, stick 2, wooden pickaxe 3, lectern 4).

    ## Instruction and action format

    `info["instruction"]` and the first observation give the goal and the crafting
    commands: the recipes of the goal's whole tree plus 4 distractors, shuffled, e.g.
    `craft 4 oak planks using 1 oak log`. One action per turn:

    | Action | Effect |
    |---|---|
    | `get <n> <item>` | add n (1 to 64) of a base item to the inventory |
    | `craft <n> <item> using <k> <ingredient>, ...` | craft by a recipe; any whole multiple of it (`craft 8 oak planks using 2 oak log`) |
    | `inventory` | list the inventory |

    Case, surrounding quotes and a final period are ignored, plural item names are
    accepted, and the target count of `craft` may be left out. Anything else is invalid
    and the observation says why: unknown text, an unknown item, `get` of a crafted item,
    ingredients that do not match the item's recipe or are not a whole multiple of it,
    ingredients missing from the inventory. `info["invalid"]` is then true and the turn
    counts; the inventory is unchanged. Any recipe of the graph may be used, listed or not.

    ## Rewards

    1 when the goal item enters the inventory, 0 on every other turn.

    ## Success

    The goal item was crafted.

    ## Termination

    Terminated when the goal is crafted; truncated after `max_turns` turns (default 20,
    AgentGym's limit). The expert needs at most 12 actions for any goal.

    ## Task options

    `reset(seed, options={"task": k, "split": "train" | "test", "depth": d})`: the goals
    of the split (every fifth item of each depth is a test goal, the rest train goals;
    the two never share a goal), restricted to depth `d` (1 to 4) when given. Task `k`
    (below 10,000 in train, 1,000 in test; drawn from the seed when absent) crafts goal
    `k mod (number of goals)`; the distractors and the order of the listed commands depend
    on k as well. Same options, same task. Constructor kwargs: `max_turns`, `render_mode`
    ("ansi" returns the last observation).

    ## Expert

    A planner: from the current inventory it sums the needs of the goal's recipe tree,
    gets every missing base item in one `get` each, then crafts the intermediates
    bottom-up and the goal last.

    ## Registered configurations

    - `evol/TextCraft-v0`: goals of every depth, 20 turns.
    """

    reward_range = (0.0, 1.0)
    max_turns = 20
    success_rule = "the goal item is crafted"
    splits = SPLITS
    max_action_length = 512
    max_observation_length = 8192
    kwarg_params = {"max_turns": turns_param(20), "render_mode": RENDER_MODE}
    option_params = {
        "task": task_param(TASKS_PER_SPLIT),
        "split": choice_param(SPLITS, help='"train" (default) or "test"'),
        "depth": Param("int", minimum=1, maximum=MAX_DEPTH, help="crafting depth of the goal (default: any)"),
    }

    def __init__(self, max_turns: int | None = None, render_mode: str | None = None):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.book = recipe_book()
        self.max_depth = max(self.book.depth.values())
        self._goal = ""
        self._commands: list[str] = []
        self._inventory: Counter = Counter()

    # ---- the contract ---------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        split = self.select_choice(options, "split", SPLITS, "train")
        depth = options.get("depth")
        if depth is not None:
            depth = self.select_choice(options, "depth", tuple(range(1, self.max_depth + 1)), None)
        task = self.select_task(options, TASKS_PER_SPLIT[split])
        goals = goal_items(split, depth)
        self._goal = goals[task % len(goals)]
        self._commands = self._listed_commands(split, task)
        self._inventory = Counter()
        info = {
            "instruction": self._instruction(),
            "task": task,
            "split": split,
            "goal": self._goal,
            "depth": self.book.depth[self._goal],
        }
        return f"Crafting commands:\n{chr(10).join(self._commands)}\n\nGoal: craft {self._goal}.", info

    def _listed_commands(self, split: str, task: int) -> list[str]:
        needed = self.book.crafted_below(self._goal)
        rng = random.Random(f"evol-textcraft:{split}:{task}:{self._goal}")
        others = sorted(set(self.book.recipes) - set(needed))
        listed = needed + rng.sample(others, DISTRACTORS)
        rng.shuffle(listed)
        return [self.book.recipes[item].command() for item in listed]

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        text = " ".join(DECORATION.fullmatch(action).group(1).lower().split())
        if text in ("inventory", "inv", "check inventory"):
            return inventory_text(self._inventory), 0.0, False, {}
        if match := CRAFT.fullmatch(text):
            return self._craft(*match.groups())
        if match := GET.fullmatch(text):
            return self._get(*match.groups())
        shown = text if len(text) <= 60 else text[:57] + "..."
        return self.invalid(
            f"Invalid action: {shown!r} is not a command. Use `get <n> <item>`, "
            "`craft <n> <item> using <k> <ingredient>, ...` or `inventory`."
        )

    def _get(self, count: str | None, name: str) -> tuple[str, float, bool, dict[str, Any]]:
        item = self.book.canonical(name)
        if item is None:
            return self.invalid(f"Could not get {name}: there is no item called {name!r}.")
        if item not in self.book.base:
            return self.invalid(
                f"Could not get {item}: it is not a base item. Craft it: {self.book.recipes[item].command()}."
            )
        n = 1 if count is None else int(count)
        if not 1 <= n <= MAX_GET:
            return self.invalid(f"Could not get {n} {item}: get between 1 and {MAX_GET} at a time.")
        self._inventory[item] += n
        return f"Got {n} {item}.", 0.0, False, {}

    def _craft(self, count: str | None, name: str, using: str) -> tuple[str, float, bool, dict[str, Any]]:
        item = self.book.canonical(name)
        if item is None:
            return self.invalid(f"Could not craft {name}: there is no item called {name!r}.")
        if item in self.book.base:
            return self.invalid(f"Could not craft {item}: it is a base item. Get it with `get <n> {item}`.")
        recipe = self.book.recipes[item]
        given: Counter = Counter()
        for part in using.split(","):
            match = INGREDIENT.fullmatch(part.strip())
            ingredient = match and self.book.canonical(match.group(2))
            if ingredient is None:
                return self.invalid(
                    f"Could not craft {item}: {part.strip()!r} is not '<count> <item>'. The recipe is: "
                    f"{recipe.command()}."
                )
            given[ingredient] += int(match.group(1))
        wanted = dict(recipe.ingredients)
        batches = {given[n] // k if given[n] % k == 0 else 0 for n, k in wanted.items()}
        if count is not None:
            batches.add(int(count) // recipe.count if int(count) % recipe.count == 0 else 0)
        if set(given) != set(wanted) or len(batches) != 1 or 0 in batches:
            return self.invalid(
                f"Could not craft {item}: the ingredients must be the recipe's, or a whole multiple of it. "
                f"The recipe is: {recipe.command()}."
            )
        m = batches.pop()
        missing = [(n, m * k) for n, k in recipe.ingredients if self._inventory[n] < m * k]
        if missing:
            lacking = ", ".join(f"{k} {n} (you have {self._inventory[n]})" for n, k in missing)
            return self.invalid(f"Could not craft {m * recipe.count} {item}: you need {lacking}.")
        for n, k in recipe.ingredients:
            self._inventory[n] -= m * k
        self._inventory[item] += m * recipe.count
        if item == self._goal:
            return f"Crafted {m * recipe.count} {item}. You crafted the goal, {item}!", 1.0, True, {}
        return f"Crafted {m * recipe.count} {item}.", 0.0, False, {}

    def _success(self) -> bool:
        return self._inventory[self._goal] > 0

    def expert_action(self) -> str:
        """The planner's next action (see the card)."""
        if not self._goal:
            raise ResetNeeded("call reset() before expert_action()")
        plan = expert_plan(self._goal, self._inventory)
        return plan[0] if plan else "inventory"

    # ---- text -----------------------------------------------------------------------
    def _instruction(self) -> str:
        return (
            f"You are in a Minecraft-like crafting world. Your goal: craft {self._goal}.\n"
            "Crafting commands (some are not needed for the goal):\n"
            + "\n".join(self._commands)
            + "\n\nEach turn, reply with exactly one action and nothing else:\n"
            "- get <n> <item>: get n (1 to 64) of a base item, one that no crafting command makes, "
            "e.g. get 2 oak log\n"
            "- craft <n> <item> using <k> <ingredient>, ...: craft by a crafting command; to craft more at "
            "once, multiply every count, e.g. craft 8 oak planks using 2 oak log\n"
            "- inventory: list what you have.\n"
            f"Crafted items cannot be got, only crafted. You have {self.max_turns} turns."
        )
