"""The agent interface: a batch of live episodes in, one action each out.

A conversation is chat messages: the env's instruction as the system message,
observations as user messages, the agent's replies as assistant messages. Backends
(`agents.hf`, `agents.vllm_backend`, `agents.openai_compat`, `agents.scripted`) turn a batch of
conversations into replies in one call; `parse_action` turns a reply into the action
text the env receives (in one place, for every backend), and the raw reply is kept.
`Agent.complete` makes any agent an env's model counterpart (a critic, a defender, a judge:
the `Completer` protocol of `envs.counterparts`, met here without importing envs).
"""

from __future__ import annotations

import random
import re
import secrets
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]  # {"role": "system" | "user" | "assistant", "content": str | list}


@dataclass
class SamplingParams:
    """How a backend samples; every field has the same meaning in every backend."""

    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 128
    stop: list[str] = field(default_factory=list)  # generation stops before any of these
    n: int = 1  # samples per conversation

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.max_new_tokens < 1 or self.n < 1:
            raise ValueError("max_new_tokens and n must be >= 1")


def cut_at_stop(text: str, stop: list[str]) -> str:
    """`text` up to the first occurrence of any of the `stop` strings (backends may return them whole)."""
    cuts = [index for index in (text.find(s) for s in stop if s) if index >= 0]
    return text[: min(cuts)] if cuts else text


@dataclass
class AgentInput:
    """One live episode as an agent sees it.

    `messages` is the conversation; `info` the env's last info (its `valid_actions` where
    listed); `env` the env itself, for agents with privileged access (the expert).
    """

    messages: list[Message]
    info: dict[str, Any] = field(default_factory=dict)
    env: Any = None


@dataclass
class AgentOutput:
    """A reply: the raw text (kept in the trajectory) and the action parsed from it."""

    text: str
    action: str
    tokens: int = 0  # tokens generated, where the backend counts them
    samples: list[str] = field(default_factory=list)  # all n samples' raw texts


class Agent:
    """Base class: subclasses implement `generate`; `act` parses actions from the replies;
    `complete` answers plain chat conversations (an env's counterpart calls it)."""

    name: str = "agent"
    needs_env: bool = False  # acts by reading the episode's env object (AgentInput.env), not text alone

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        """`sampling.n` raw replies for each input, in order."""
        raise NotImplementedError

    def act(self, inputs: list[AgentInput], sampling: SamplingParams | None = None) -> list[AgentOutput]:
        sampling = sampling or SamplingParams()
        if not inputs:
            return []
        outputs = []
        for replies in self.generate(inputs, sampling):
            text = replies[0] if replies else ""
            outputs.append(AgentOutput(text=text, action=parse_action(text), samples=list(replies)))
        return outputs

    def complete(
        self,
        conversations: list[list[Message]],
        *,
        temperature: float = 0.0,
        max_new_tokens: int = 256,
        n: int = 1,
        seed: int | None = None,
    ) -> list[list[str]]:
        """`n` raw replies to each conversation: `envs.counterparts.Completer`, so that any agent
        can be an env's critic, defender, attacker or judge model. A `seed` seeds the RNGs the
        backend samples from first (`seed_rngs`)."""
        if not conversations:
            return []
        if seed is not None:
            seed_rngs(seed)
        sampling = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, n=n)
        outputs = self.act([AgentInput(messages=list(messages)) for messages in conversations], sampling)
        return [list(output.samples or [output.text]) for output in outputs]

    def close(self) -> None:
        """Free what the backend holds (models, connections)."""


def seed_rngs(seed: int | None) -> None:
    """Seed the RNGs a backend samples from: with `seed`, else with a fresh random one.

    A fresh seed per call keeps unseeded calls independent even for a backend that restores
    torch's global RNG after sampling (then every call would replay one stream).
    """
    seed = secrets.randbits(63) if seed is None else seed % 2**63
    random.seed(seed)
    torch = sys.modules.get("torch")  # only a backend that already imported torch samples with it
    if torch is not None:
        torch.manual_seed(seed)


# `^[ \t]*`: a `^\s*` spans the blank lines below, retried at each line (quadratic on many newlines).
_ACTION_LINE = re.compile(r"^[ \t]*Action\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)


def parse_action(text: str) -> str:
    """The action in a reply: the last `Action: ...` line if there is one, else the whole reply.

    The ReAct form (`Thought: ...` then `Action: ...`) and a bare command both work; a
    tool call's `Action Input:` lines are kept with their action.
    """
    matches = list(_ACTION_LINE.finditer(text))
    if not matches:
        return text.strip()
    last = matches[-1]
    rest = text[last.end() :]
    tail = rest.strip()
    if tail.lower().startswith("action input"):
        return (last.group(1).strip() + "\n" + tail).strip()
    return last.group(1).strip()


def sees_instruction(setting: bool | Collection[str], env_id: str) -> bool:
    """Whether an agent sees `env_id`'s instruction: `setting` is a flag for every env, or the env ids that keep it."""
    return setting if isinstance(setting, bool) else env_id in setting


def window(messages: list[Message], history_turns: int | None, instruction: bool = True) -> list[Message]:
    """What an agent with a bounded memory sees: the system message (unless
    `instruction=False`), the last `history_turns` (observation, action) turns, and the
    current observation. `None` keeps every turn. Training examples are cut the same way."""
    head = messages[:1] if instruction else []
    if history_turns is None:
        return head + messages[1:]
    return head + messages[1:][-(2 * history_turns + 1) :]


def conversation(instruction: str, observations: list[str], actions: list[str]) -> list[Message]:
    """The chat form of an episode so far: instruction, then observation/action turns."""
    messages: list[Message] = [{"role": "system", "content": instruction}]
    for i, observation in enumerate(observations):
        messages.append({"role": "user", "content": observation})
        if i < len(actions):
            messages.append({"role": "assistant", "content": actions[i]})
    return messages
