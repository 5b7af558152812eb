"""AgentGym's own env clients (vendored, unchanged, in `agentgym_clients/`) run episodes to success
against `evol serve ENV --agentgym` servers on loopback, through AgentGym's own `BaseTask` loop.

The agent is AgentGym's API agent whose replies are EvolGym's expert actions, read off a local
twin of the served episode (the same env and task) that steps in lockstep: every observation the
client shows must be the twin's, which also proves that each family's reset key selects the task.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

import envs
from evol.trajectory import agentgym_filler

sys.path.insert(0, str(Path(__file__).with_name("agentgym_clients")))
from agentenv.controller import APIAgent  # noqa: E402
from agentenv.envs import (  # noqa: E402
    BabyAITask,
    MazeTask,
    SciworldTask,
    TextCraftTask,
    WebshopTask,
    WordleTask,
)


def react(action: str) -> str:
    return f"Thought:\nI follow the plan.\n\nAction:\n{action}"


def spelled(word: str) -> str:
    """A Wordle guess as AgentGym's Wordle data writes it: "s l a t e"."""
    return " ".join(word.lower())


def wordle_letters(text: str) -> str:
    """The twin's feedback line ("Feedback: S grey, L green, ...") as AgentGym's Wordle writes it."""
    said = text.split("Feedback: ", 1)[1].split("\n", 1)[0]
    if said.startswith("all green"):
        return "g g g g g"
    return " ".join({"grey": "b", "yellow": "y", "green": "g"}[part.split()[1]] for part in said.split(", "))


@dataclass
class Family:
    env_id: str
    task_class: type
    index: int  # the task the client asks for (its data_idx, game, seed or session_id)
    prefix: str = ""  # where AgentGym's own server of the family serves it
    spell: Callable[[str], str] = lambda action: action
    first: Callable[[str, str], bool] = lambda shown, twin: shown == twin  # the observation after reset
    later: Callable[[str], str] = lambda twin: twin  # an observation after a step, as the client shows it
    needs: list[str] = field(default_factory=list)  # programs the env runs


FAMILIES = [
    Family("evol/BabyAI-v0", BabyAITask, 7),
    Family(
        "evol/Maze-v0", MazeTask, 3, prefix="/maze", first=lambda shown, twin: shown.endswith("\n" + twin)
    ),
    Family(
        "evol/Wordle-v0",
        WordleTask,
        11,
        prefix="/wordle",
        spell=spelled,
        first=lambda shown, twin: "Welcome to the game of Wordle." in shown,  # the client's own text
        later=wordle_letters,
    ),
    Family("evol/TextCraft-v0", TextCraftTask, 5),
    Family("evol/WebShop-v0", WebshopTask, 2),
    Family(
        "evol/SciWorld-v0",
        SciworldTask,
        4,
        first=lambda shown, twin: shown == twin.replace("\n\n", "\n", 1),  # task_description + "\n" + room
        needs=["java"],
    ),
]


class TwinExpert(APIAgent):
    """AgentGym's API agent replying with EvolGym's expert actions, from a local twin episode."""

    def __init__(self, family: Family):
        self.family = family
        self.twin = envs.make(family.env_id)
        observation, _ = self.twin.reset(options={"task": family.index})
        self.expected = [observation]  # what the client must have shown before each reply
        self.info: dict = {}

    def generate(self, conversation):
        shown = conversation[-1]["content"]
        if len(self.expected) == 1:
            assert self.family.first(shown, self.expected[0]), (shown, self.expected[0])
        else:
            assert shown == self.family.later(self.expected[-1]), (shown, self.expected[-1])
        action = self.twin.expert_action()
        observation, _, terminated, truncated, self.info = self.twin.step(action)
        self.expected.append(observation)
        return react(self.family.spell(action)), None


@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.env_id.split("/")[1])
def test_agentgym_client_plays_an_episode_to_success(start_server, family):
    missing = [program for program in family.needs if shutil.which(program) is None]
    if missing or (family.env_id == "evol/SciWorld-v0" and not _has_scienceworld()):
        pytest.skip(f"{family.env_id} needs {missing or 'the scienceworld package'}")
    flags = ["--agentgym", "--workers", "1"] + (["--agentgym-prefix", family.prefix] if family.prefix else [])
    server = start_server([family.env_id], *flags)
    base = server.url + family.prefix
    task = family.task_class({"env_server_base": base, "data_len": 50, "timeout": 120}, n_clients=1)
    (client,) = task.clients
    assert client.conversation_start[1] == {
        "from": "gpt",
        "loss": False,
        "value": agentgym_filler(family.env_id),
    }
    agent = TwinExpert(family)
    max_turns = envs.env_spec(family.env_id)["max_turns"]
    (experience,) = task.generate_experience(agent, [family.index], max_rounds=max_turns)
    assert agent.info.get("success") is True, agent.expected[-1]
    assert experience.conversation[-1]["content"] == family.later(agent.expected[-1])
    assert experience.reward == 100 if family.env_id == "evol/SciWorld-v0" else experience.reward > 0
    replies = [m["content"] for m in experience.conversation if m["role"] == "assistant"][1:]
    assert len(replies) == len(agent.expected) - 1 and replies[0].startswith("Thought:")
    id_key = "env_idx" if family.env_id == "evol/WebShop-v0" else "id"
    if hasattr(client, "close"):
        client.close()
    else:  # AgentGym's Maze and Wordle clients have no close()
        assert requests.post(f"{base}/close", json={id_key: client.env_id}, timeout=30).json() is True
    gone = requests.post(f"{base}/step", json={id_key: client.env_id, "action": "look"}, timeout=30)
    assert gone.status_code == 404 and "no env" in gone.json()["error"]


def _has_scienceworld() -> bool:
    try:
        import scienceworld  # noqa: F401
    except ImportError:
        return False
    return True
