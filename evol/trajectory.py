"""Trajectories: one episode a JSONL line, appended crash-safely, convertible to AgentGym's format.

Fields (docs/architecture.md): `env`, `task` (seed + options: enough to replay), `messages`
(chat form; assistant messages are the agent's raw replies), `rewards` (per step),
`reward` (the episode's return: the sum of step rewards, which for envs that reward only
at the end is the last step's, as in AgentGym), `success`, `turns`, `agent`, `timing`;
plus `actions` (what the env received), `key` (the episode's identity, for resuming),
`sample`, `truncated`, `tokens`, and for an episode that could not be completed `fault`
(`"infra"`: the serving infrastructure failed, retries included; `"env"`: the env raised or
refused; `"agent"`: the agent failed) with `error` (what happened), else both null.

A file holds one line per attempt: a failed attempt is not a finished episode, so resuming
runs it again (`TrajectoryWriter.done`), and training data and reports take each episode's
completed attempt (`final_attempts`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Trajectory:
    env: str
    task: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    reward: float = 0.0
    success: bool = False
    turns: int = 0
    truncated: bool = False
    agent: str = ""
    sample: int = 0
    key: str = ""
    tokens: int = 0
    timing: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    fault: str | None = None
    outcome: dict[str, Any] = field(default_factory=dict)  # the env's `info["outcome"]` at the end

    @property
    def completed(self) -> bool:
        """Whether the episode ran to its end (or the engine's cap) without a fault."""
        return self.error is None and self.fault is None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def episode_key(env_id: str, seed: int | None, options: dict[str, Any] | None, sample: int = 0) -> str:
    """The identity of one episode to run: env, task and sample index."""
    return f"{env_id}|{seed}|{json.dumps(options or {}, sort_keys=True)}|{sample}"


class TrajectoryWriter:
    """Appends trajectories to a JSONL file, one whole line per `os.write` + fsync.

    Opening an existing file drops a torn last line (a killed run) and remembers the keys of
    completed episodes (`done`), so a rerun skips them and runs failed attempts again.
    """

    def __init__(self, path: str | Path, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.done: set[str] = set()
        self.failed: set[str] = set()  # keys whose attempts so far all failed
        if self.path.exists():
            self._repair()
            for trajectory in read_trajectories(self.path):
                self._remember(trajectory)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _repair(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)

    def write(self, trajectory: Trajectory) -> None:
        os.write(self._fd, (trajectory.to_json() + "\n").encode("utf-8"))
        if self.fsync:
            os.fsync(self._fd)
        self._remember(trajectory)

    def _remember(self, trajectory: Trajectory) -> None:
        if trajectory.completed:
            self.done.add(trajectory.key)
            self.failed.discard(trajectory.key)
        elif trajectory.key not in self.done:
            self.failed.add(trajectory.key)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_trajectories(path: str | Path) -> Iterator[Trajectory]:
    """Every whole line of a trajectory file (a torn last line is skipped)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            if line.strip():
                yield Trajectory.from_dict(json.loads(line))


def final_attempts(trajectories: Iterable[Trajectory]) -> list[Trajectory]:
    """One trajectory per episode key, in order of first appearance: the first completed
    attempt, else the last failed one."""
    chosen: dict[str, Trajectory] = {}
    for trajectory in trajectories:
        kept = chosen.get(trajectory.key)
        if kept is None or not kept.completed:
            chosen[trajectory.key] = trajectory
    return list(chosen.values())


# ---- AgentGym's format ------------------------------------------------------------------
# AgentGym's conversations open with the instruction (a human turn) and the agent's filler answer
# to it, a gpt turn with `loss: false` that no model is trained on. Its text is per env family, as
# AgentGym's clients write it; a reader recognises it by its place and flag, never by its text.
AGENTGYM_FILLER = "OK. I'll follow your instructions and try my best to solve the task."
AGENTGYM_FILLERS = {"webshop": "Ok."}  # the families whose clients write another filler
# AgentGym's task names (item id prefixes; `lmrlgym_` ones too) -> EvolGym's env of the family
AGENTGYM_ENVS = {
    "babyai": "evol/BabyAI-v0",
    "webshop": "evol/WebShop-v0",
    "maze": "evol/Maze-v0",
    "wordle": "evol/Wordle-v0",
    "textcraft": "evol/TextCraft-v0",
    "sciworld": "evol/SciWorld-v0",
}


def agentgym_task_name(env_id: str) -> str:
    """`evol/BabyAI-v0` -> `babyai`: the prefix of AgentGym item ids."""
    name = env_id.split("/")[-1]
    return name.rsplit("-v", 1)[0].lower()


def agentgym_filler(env_id: str) -> str:
    """The filler AgentGym's client of this env's family writes as the agent's first turn."""
    return AGENTGYM_FILLERS.get(agentgym_task_name(env_id), AGENTGYM_FILLER)


def agentgym_item_env(item_id: str) -> str:
    """The env of an AgentGym item id: `babyai_12` -> `evol/BabyAI-v0` (`lmrlgym_maze_3` ->
    `evol/Maze-v0`); a family EvolGym lacks keeps its name, `alfworld_4` -> `agentgym/alfworld`."""
    prefix = str(item_id).rsplit("_", 1)[0].lower()
    family = prefix.removeprefix("lmrlgym_")
    return AGENTGYM_ENVS.get(family, f"agentgym/{prefix}")


def to_agentgym(trajectory: Trajectory) -> dict[str, Any]:
    """`{item_id, conversations: [{from, loss, value}]}`; the filler turn carries no loss."""
    messages = trajectory.messages
    if not messages or messages[0]["role"] != "system":
        raise ValueError("a trajectory's conversation starts with the system instruction")
    index = trajectory.task.get("options", {}).get("task", 0)
    conversations = [
        {"from": "human", "loss": None, "value": messages[0]["content"]},
        {"from": "gpt", "loss": False, "value": agentgym_filler(trajectory.env)},
    ]
    for message in messages[1:]:
        if message["role"] == "user":
            conversations.append({"from": "human", "loss": None, "value": message["content"]})
        else:
            conversations.append({"from": "gpt", "loss": True, "value": message["content"]})
    return {"item_id": f"{agentgym_task_name(trajectory.env)}_{index}", "conversations": conversations}


def from_agentgym(
    item: dict[str, Any], env_id: str | None = None, split: str | None = None, success: bool = False
) -> Trajectory:
    """One AgentGym item (`{item_id, conversations}`) as a trajectory: the instruction becomes the
    system message; the filler (the first gpt turn, answering the instruction, flagged `loss:
    false`) is dropped whatever its text; every later turn is kept. `env_id` defaults to the
    item id's family (`agentgym_item_env`). Rewards are unknown; `success` marks the item as a
    successful episode (AgentGym's released trajectory sets hold only such episodes)."""
    if not isinstance(item, dict) or not isinstance(item.get("conversations"), list):
        raise ValueError("an AgentGym item is an object with a 'conversations' list")
    if "item_id" not in item:
        raise ValueError("an AgentGym item needs an 'item_id' such as 'babyai_12'")
    conversations = item["conversations"]
    for turn in conversations:
        if (
            not isinstance(turn, dict)
            or turn.get("from") not in ("human", "gpt")
            or not isinstance(turn.get("value"), str)
        ):
            raise ValueError("each turn of an AgentGym item is {from: human|gpt, loss, value: str}")
    if not conversations or conversations[0]["from"] != "human":
        raise ValueError("an AgentGym item starts with the human instruction")
    messages = [{"role": "system", "content": conversations[0]["value"]}]
    rest = conversations[1:]
    if rest and rest[0]["from"] == "gpt" and rest[0].get("loss") is False:
        rest = rest[1:]
    for turn in rest:
        messages.append(
            {"role": "user" if turn["from"] == "human" else "assistant", "content": turn["value"]}
        )
    suffix = str(item["item_id"]).rsplit("_", 1)[-1]
    if not suffix.isdigit():
        raise ValueError(
            f"an AgentGym item id ends with its task index, as 'babyai_12'; got {item['item_id']!r}"
        )
    index = int(suffix)
    env_id = env_id or agentgym_item_env(item["item_id"])
    options: dict[str, Any] = {"task": index}
    if split:
        options["split"] = split
    actions = [m["content"] for m in messages if m["role"] == "assistant"]
    return Trajectory(
        env=env_id,
        task={"seed": index, "options": options},
        messages=messages,
        actions=actions,
        success=success,
        turns=len(actions),
        agent="agentgym",
        key=episode_key(env_id, index, options),
    )


def is_agentgym_file(path: str | Path) -> bool:
    """Whether a file holds AgentGym items (a JSON list, or JSONL lines with `conversations`)
    rather than EvolGym trajectories (JSONL lines with `messages`)."""
    with open(path, encoding="utf-8-sig") as handle:
        head = handle.read(1 << 16).lstrip()
    if head.startswith("["):
        return True
    first = head.split("\n", 1)[0]
    try:
        record = json.loads(first)
    except ValueError:
        return '"conversations"' in first and '"messages"' not in first
    return isinstance(record, dict) and "conversations" in record and "messages" not in record


def read_agentgym(path: str | Path, env_id: str | None = None, split: str | None = None) -> list[Trajectory]:
    """AgentGym items of a JSON file (a list, as AgentTraj releases them) or a JSONL file, as
    successful trajectories (see `from_agentgym`). A bad item is a ValueError naming its place."""
    name = Path(path).name
    text = Path(path).read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as error:
            raise ValueError(f"{name}: not a JSON list of AgentGym items: {error}") from None
        places = [f"item {i}" for i in range(len(items))]
    else:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        try:
            items = [json.loads(line) for _, line in lines]
        except ValueError as error:
            raise ValueError(f"{name}: not JSON lines: {error}") from None
        places = [f"line {n}" for n, _ in lines]
    trajectories = []
    for place, item in zip(places, items):
        try:
            trajectories.append(from_agentgym(item, env_id, split, success=True))
        except (ValueError, TypeError) as error:
            raise ValueError(f"{name}, {place}: {error}") from None
    return trajectories


def to_dataset(trajectories: Iterable[Trajectory]):
    """A `datasets.Dataset` in chat form: `messages` plus env, reward and success columns."""
    from datasets import Dataset

    rows = [
        {"messages": t.messages, "env": t.env, "reward": t.reward, "success": t.success, "key": t.key}
        for t in trajectories
    ]
    return Dataset.from_list(rows)
