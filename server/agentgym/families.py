"""AgentGym's env families as EvolGym serves them: per family, the keys of its requests, the
shapes of its answers and the few texts translated between AgentGym's clients and the env.

Read from AgentGym's servers (`agentenv-<family>/agentenv_<family>/server.py` and
`environment.py`) and clients (`agentenv/agentenv/envs/<family>.py`):

| family | env | instance key | reset key | create answers | step answers |
|---|---|---|---|---|---|
| babyai | evol/BabyAI-v0 | `id` | `data_idx` | `{id}` | `{observation, reward, score, done}` |
| webshop | evol/WebShop-v0 | `env_idx` | `session_id` (optional) | a bare int | `{state, reward, done, info}` |
| maze | evol/Maze-v0 | `id` | `game` | `{id}` | `{observation, reward, score, done}` |
| wordle | evol/Wordle-v0 | `id` | `seed` | `{id}` | `{observation, reward, score, done}` |
| textcraft | evol/TextCraft-v0 | `id` | `data_idx` (optional) | `{id, observation, reward, done}` | `{observation, reward, score, done}` |
| sciworld | evol/SciWorld-v0 | `id` | `data_idx` | `{id}` | `{observation, reward, score, done}` |

The reset key is the env's `task` option. `score` is the episode's running sum of rewards, except
for SciWorld, where it is ScienceWorld's own 0-100 score, as AgentGym's SciWorld server sends it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from server.errors import ApiError


@dataclass(eq=False)
class Instance:
    """One AgentGym env instance: the EvolGym session behind its integer id, and what the
    protocol answers from between calls."""

    id: int
    sid: str
    observation: str | None = None
    reward: float = 0.0
    score: float = 0.0
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)  # the env's last info
    parts: dict[str, Any] = field(default_factory=dict)  # a family's pieces of the last observation
    history: list[tuple[str, str]] = field(default_factory=list)  # Wordle: (guess, feedback letters)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one call of an instance at a time

    def state(self) -> dict[str, Any]:
        return {
            "observation": self.observation,
            "reward": self.reward,
            "score": self.score,
            "done": self.done,
        }


def not_served(what: str, env_id: str) -> ApiError:
    # Messages name routes without their slash: a client-bound message loses anything path-like.
    return ApiError(404, "not_found", f"the {what} route is not part of AgentGym's protocol for {env_id}")


class Family:
    """A family's defaults: AgentGym's BabyAI, SciWorld and TextCraft servers share them."""

    title = ""  # as AgentGym's servers greet on GET /
    env_id = ""
    id_key = "id"  # the body field and query parameter naming an instance
    reset_key = "data_idx"  # the reset field naming the task
    reset_key_optional = False  # absent or null: a task drawn at random (WebShop) or the default
    reset_default: int | None = None
    create_fields: tuple[str, ...] = ()  # fields POST /create takes (all optional)
    lists_actions = False  # whether the env lists its valid actions (GET /available_actions)

    def check_create(self, body: dict[str, Any]) -> None:
        """Refuse what the family's POST /create body asks for and EvolGym cannot give."""

    def creates_with_task(self, instance: Instance) -> int | None:
        """The task a new instance starts with (None: it waits for a reset)."""
        return None

    def action(self, text: str) -> str:
        """AgentGym's action text as the env reads it."""
        return text

    def observe(self, instance: Instance, observation: Any, info: dict[str, Any], reset: bool) -> None:
        """Keep an answer of the env (a reset's, or a step's) as the protocol shows it."""
        instance.observation = observation["text"] if isinstance(observation, dict) else str(observation)
        instance.info = info

    # ---- answers ------------------------------------------------------------------------
    def created(self, instance: Instance) -> Any:
        return {"id": instance.id}

    def reset_answer(self, instance: Instance) -> Any:
        return instance.state()

    def step_answer(self, instance: Instance) -> Any:
        return instance.state()

    def observation_answer(self, instance: Instance) -> Any:
        return instance.observation

    def available_actions(self, instance: Instance | None) -> Any:
        """The actions the env lists now (none once the episode has ended)."""
        if not self.lists_actions:
            raise not_served("available_actions", self.env_id)
        if instance is None:
            raise ApiError(
                400, "missing_field", f"'{self.id_key}' (the env's id that create answered) is required"
            )
        return list(instance.info.get("valid_actions") or [])

    def filtered_vocab(self, instance: Instance) -> Any:
        raise not_served("filtered_vocab", self.env_id)

    def instruction_text(self, instance: Instance) -> Any:
        raise not_served("instruction_text", self.env_id)


class BabyAI(Family):
    title, env_id = "BabyAI", "evol/BabyAI-v0"
    lists_actions = True

    def reset_answer(self, instance: Instance) -> Any:
        return {**instance.state(), "deleted": False}

    def observation_answer(self, instance: Instance) -> Any:
        return {**instance.state(), "deleted": False}


class WebShop(Family):
    title, env_id = "WebShop", "evol/WebShop-v0"
    id_key, reset_key, reset_key_optional = "env_idx", "session_id", True
    lists_actions = True

    def created(self, instance: Instance) -> Any:
        return instance.id

    def reset_answer(self, instance: Instance) -> Any:
        return [instance.observation, None]

    def step_answer(self, instance: Instance) -> Any:
        return {"state": instance.observation, "reward": instance.reward, "done": instance.done, "info": None}

    def available_actions(self, instance: Instance | None) -> Any:
        actions = super().available_actions(instance)
        search = any(action.startswith("search[") for action in actions)
        clicks = [action[len("click[") : -1] for action in actions if action.startswith("click[")]
        return {"has_search_bar": search, "clickables": ["search"] * search + clicks}

    def instruction_text(self, instance: Instance) -> str:
        return f"Instruction: {instance.parts.get('goal', '')}"

    def observe(self, instance: Instance, observation: Any, info: dict[str, Any], reset: bool) -> None:
        super().observe(instance, observation, info, reset)
        if reset:
            instance.parts["goal"] = str(info.get("goal", ""))


class Maze(Family):
    title, env_id = "LMRL-Gym", "evol/Maze-v0"
    reset_key = "game"
    lists_actions = True
    MOVES = ["move up", "move down", "move left", "move right"]

    def available_actions(self, instance: Instance | None) -> Any:
        """The moves open now; without an instance, every move (AgentGym's answer)."""
        if instance is None:
            return list(self.MOVES)
        return super().available_actions(instance)


class Wordle(Family):
    """AgentGym's Wordle (LMRL-Gym's) spells guesses letter by letter ("s l a t e") and answers
    with one letter per position: b (not in the word), y (elsewhere), g (right place)."""

    title, env_id = "LMRL-Gym", "evol/Wordle-v0"
    reset_key = "seed"
    SPELLED = re.compile(r"[A-Za-z](?:\s+[A-Za-z]){4}")
    FEEDBACK = re.compile(r"Guess \d+ of \d+: ([A-Z]{5})\nFeedback: ([^\n]*)")
    COLOUR = re.compile(r"([A-Z]) (grey|yellow|green)")
    LETTERS = {"grey": "b", "yellow": "y", "green": "g"}

    def action(self, text: str) -> str:
        guess = text.strip().strip("`'\"")
        return "".join(guess.split()) if self.SPELLED.fullmatch(guess) else text

    def observe(self, instance: Instance, observation: Any, info: dict[str, Any], reset: bool) -> None:
        super().observe(instance, observation, info, reset)
        if reset:
            instance.history.clear()
            return
        match = self.FEEDBACK.match(instance.observation or "")
        if info.get("invalid") or match is None:
            return
        guess, said = match.groups()
        if said.startswith("all green"):
            letters = "g" * len(guess)
        else:
            letters = "".join(self.LETTERS[colour] for _, colour in self.COLOUR.findall(said))
        if len(letters) == len(guess):
            instance.history.append((guess.lower(), letters))
            instance.observation = " ".join(letters)

    def filtered_vocab(self, instance: Instance) -> Any:
        """The words of the game's list that fit every feedback so far (all of them before a guess)."""
        from envs.games.wordle import COLOUR_NAMES, feedback, word_lists

        def letters(guess: str, word: str) -> str:
            return "".join(self.LETTERS[COLOUR_NAMES[c]] for c in feedback(guess, word))

        words = word_lists()[1]
        return [w for w in words if all(letters(guess, w) == said for guess, said in instance.history)]


class TextCraft(Family):
    title, env_id = "TextCraft", "evol/TextCraft-v0"
    reset_key_optional, reset_default = True, 0
    create_fields = ("minecraft_dir", "commands", "goal")

    def check_create(self, body: dict[str, Any]) -> None:
        # `minecraft_dir` names a recipe folder on AgentGym's server; EvolGym's recipes are built in.
        given = [name for name in ("commands", "goal") if body.get(name) is not None]
        if given:
            raise ApiError(
                400,
                "bad_request",
                f"{' and '.join(given)}: EvolGym's TextCraft makes its own crafting commands and goals; "
                "create with neither and reset with data_idx to pick a task",
            )

    def creates_with_task(self, instance: Instance) -> int | None:
        return self.reset_default  # AgentGym's clients read an observation from POST /create

    def created(self, instance: Instance) -> Any:
        return {"id": instance.id, "observation": instance.observation, "done": False, "reward": 0}

    def reset_answer(self, instance: Instance) -> Any:
        return {"id": instance.id, **instance.state()}


class SciWorld(Family):
    title, env_id = "ScienceWorld", "evol/SciWorld-v0"

    def observe(self, instance: Instance, observation: Any, info: dict[str, Any], reset: bool) -> None:
        super().observe(instance, observation, info, reset)
        if isinstance(info.get("score"), (int, float)):
            instance.score = info["score"]
        if reset:  # the env's first observation: the task, a blank line, then the room
            task, _, room = (instance.observation or "").partition("\n\n")
            instance.observation = room
            instance.parts = {
                "task_name": info.get("task_name"),
                "var_num": info.get("variation"),
                "task_description": task,
            }

    def reset_answer(self, instance: Instance) -> Any:
        return {
            "task_name": instance.parts["task_name"],
            "var_num": instance.parts["var_num"],
            "task_description": instance.parts["task_description"],
            **instance.state(),
            "deleted": False,
        }


FAMILIES: dict[str, Family] = {
    family.env_id: family for family in (BabyAI(), WebShop(), Maze(), Wordle(), TextCraft(), SciWorld())
}
