"""Indexes of JSONL files for `evol view`: a trajectory file is read once, each line's byte
offset and summary fields kept in memory, and an episode read back on demand by seeking.

`TrajectoryIndex` is what the episode table queries (filter, sort, page) and what an episode
page reads from; `JsonlRows` keeps every row of a small JSONL file (a run's metrics.jsonl).
Both follow a file that grows (a running writer): `refresh()` reads only the bytes after the
last whole line it saw. A torn last line (a writer caught mid-line) waits for its newline;
a whole line that is not a JSON object is counted in `bad_lines` and skipped. A file that
shrank or was replaced is indexed again from the start.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SORT_KEYS = ("line", "reward", "turns", "task")
CHUNK_BYTES = 1 << 22  # bytes read at a time while indexing


def task_key(task: Any) -> str:
    """The identity of an episode's task within its env (seed + options), as canonical JSON."""
    return _TASK_ENCODER.encode(task)


def natural_key(text: str) -> tuple:
    """A sort key that orders "task 2" before "task 10"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def whole_lines(path: Path, start: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line without its newline) for every whole line of `path` from byte `start`;
    a last line without a newline (still being written) is not yielded."""
    with open(path, "rb") as handle:
        handle.seek(start)
        offset, rest = start, b""
        while chunk := handle.read(CHUNK_BYTES):
            data = rest + chunk
            begin = 0
            while (end := data.find(b"\n", begin)) >= 0:
                yield offset + begin, data[begin:end]
                begin = end + 1
            offset += begin
            rest = data[begin:]


@dataclass
class Query:
    """What the episode table asks for: filters (empty = any), a sort and a page."""

    env: str = ""
    agent: str = ""
    success: bool | None = None
    error: str = ""  # text the episode's error must contain (case-insensitive)
    sort: str = "line"
    descending: bool = False
    offset: int = 0
    limit: int = 50


class _FollowedFile:
    """The part both indexes share: where the last whole line ended, and re-reading on growth."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = threading.RLock()
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file indexed
        self._reset()

    def _reset(self) -> None:
        """Forget what was read (the file is read again from its start)."""
        self.read_to = 0  # bytes indexed: the end of the last whole line
        self.torn_bytes = 0  # bytes after it (a line still being written)
        self.bad_lines = 0  # whole lines that are not a JSON object

    def _take(self, offset: int, line: bytes) -> None:
        raise NotImplementedError

    def refresh(self) -> int:
        """Index what was appended since the last call; the number of new lines."""
        with self.lock:
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                stat = None
            identity = (stat.st_dev, stat.st_ino) if stat else None
            size = stat.st_size if stat else 0
            if identity != self._identity or size < self.read_to:  # replaced or truncated: start over
                self._identity = identity
                self._reset()
            if stat is None or size == self.read_to:
                self.torn_bytes = 0
                return 0
            count = 0
            for offset, line in whole_lines(self.path, self.read_to):
                self.read_to = offset + len(line) + 1
                if line.strip():
                    self._take(offset, line)
                    count += 1
            self.torn_bytes = size - self.read_to
            return count

    @staticmethod
    def _object(line: bytes) -> dict[str, Any] | None:
        try:
            value = _DECODER.decode(line.decode("utf-8"))
        except ValueError:  # not JSON, or not UTF-8
            return None
        return value if isinstance(value, dict) else None


class TrajectoryIndex(_FollowedFile):
    """Byte offsets and summary fields (env, task, success, reward, turns, agent, error, fault)
    of every episode line of one trajectory file; episodes are read back by `episode(i)`."""

    def _reset(self) -> None:
        super()._reset()
        self.offsets = array("q")
        self.lengths = array("q")
        self.rewards = array("d")
        self.turns = array("q")
        self.success = bytearray()
        self.envs: list[str] = []
        self.tasks: list[str] = []
        self.agents: list[str] = []
        self.errors: list[str | None] = []
        self.faults: list[str | None] = []
        self._names: dict[str, str] = {}  # one string object per distinct env / agent / task
        self._orders: dict[str, array] = {}

    def __len__(self) -> int:
        return len(self.offsets)

    def _intern(self, text: str) -> str:
        return self._names.setdefault(text, text)

    def _take(self, offset: int, line: bytes) -> None:
        row = self._object(line)
        if row is None:
            self.bad_lines += 1
            return
        self.offsets.append(offset)
        self.lengths.append(len(line))
        self.rewards.append(_number(row.get("reward"), float))
        self.turns.append(int(_number(row.get("turns"), int)))
        self.success.append(row.get("success") is True)
        self.envs.append(self._intern(str(row.get("env") or "")))
        self.tasks.append(self._intern(task_key(row.get("task"))))
        self.agents.append(self._intern(str(row.get("agent") or "")))
        self.errors.append(None if row.get("error") is None else str(row["error"]))
        self.faults.append(None if row.get("fault") is None else str(row["fault"]))
        self._orders.clear()

    # ---- reading -------------------------------------------------------------------------
    def summary(self, i: int) -> dict[str, Any]:
        """The table row of episode `i` (its line number among the episodes)."""
        return {
            "id": i,
            "env": self.envs[i],
            "task": self.tasks[i],
            "success": bool(self.success[i]),
            "reward": self.rewards[i],
            "turns": self.turns[i],
            "agent": self.agents[i],
            "error": self.errors[i],
            "fault": self.faults[i],
        }

    def episode(self, i: int) -> dict[str, Any]:
        """Episode `i` as written, read from its offset (IndexError for no such episode)."""
        with self.lock:
            if not 0 <= i < len(self.offsets):
                raise IndexError(i)
            offset, length = self.offsets[i], self.lengths[i]
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            return _DECODER.decode(handle.read(length).decode("utf-8"))

    def facets(self) -> dict[str, Any]:
        """The distinct envs and agents (for the filter menus) and the file's counts."""
        with self.lock:
            return {
                "episodes": len(self),
                "successes": sum(self.success),
                "bad_lines": self.bad_lines,
                "torn_bytes": self.torn_bytes,
                "envs": sorted(set(self.envs)),
                "agents": sorted(set(self.agents)),
            }

    # ---- the table -----------------------------------------------------------------------
    def _order(self, sort: str) -> array | range:
        """Episode numbers in `sort` order, ascending (kept until the file grows)."""
        if sort == "line":
            return range(len(self))
        if sort not in self._orders:
            if sort == "reward":
                keys: list[Any] | array = self.rewards
            elif sort == "turns":
                keys = self.turns
            else:  # by env, then task, numbers in the task compared as numbers
                natural = {text: natural_key(text) for text in set(self.tasks)}
                keys = [(env, natural[task]) for env, task in zip(self.envs, self.tasks)]
            self._orders[sort] = array("q", sorted(range(len(self)), key=keys.__getitem__))
        return self._orders[sort]

    def query(self, query: Query) -> tuple[int, list[dict[str, Any]]]:
        """(episodes matching `query`, the summaries of its page)."""
        if query.sort not in SORT_KEYS:
            raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}")
        with self.lock:
            order = self._order(query.sort)
            if query.descending:
                order = order[::-1]
            chosen = self._matching(query, order)
            page = chosen[query.offset : query.offset + query.limit]
            return len(chosen), [self.summary(i) for i in page]

    def _matching(self, query: Query, order: Sequence[int]) -> Sequence[int]:
        """The episodes of `order` that pass every filter of `query`, in that order."""
        chosen = order
        if query.env:
            envs, env = self.envs, query.env
            chosen = [i for i in chosen if envs[i] == env]
        if query.agent:
            agents, agent = self.agents, query.agent
            chosen = [i for i in chosen if agents[i] == agent]
        if query.success is not None:
            success, wanted = self.success, int(query.success)
            chosen = [i for i in chosen if success[i] == wanted]
        if query.error:
            errors, needle = self.errors, query.error.lower()
            chosen = [i for i in chosen if errors[i] is not None and needle in errors[i].lower()]
        return chosen

    def with_task(self, env: str, task: str, limit: int = 20) -> list[int]:
        """The episodes (all samples and attempts) of one task of one env, in file order."""
        with self.lock:
            found = [i for i, key in enumerate(self.tasks) if key == task and self.envs[i] == env]
        return found[:limit]

    def task_outcomes(self) -> dict[tuple[str, str], tuple[int, int]]:
        """{(env, task): (episodes, successes)} over the file."""
        outcomes: dict[tuple[str, str], tuple[int, int]] = {}
        with self.lock:
            for env, task, won in zip(self.envs, self.tasks, self.success):
                count, wins = outcomes.get((env, task), (0, 0))
                outcomes[(env, task)] = (count + 1, wins + won)
        return outcomes


class JsonlRows(_FollowedFile):
    """Every JSON-object row of a small JSONL file (a run's metrics.jsonl), followed as it grows."""

    def _reset(self) -> None:
        super()._reset()
        self.rows: list[dict[str, Any]] = []

    def _take(self, offset: int, line: bytes) -> None:
        row = self._object(line)
        if row is None:
            self.bad_lines += 1
        else:
            self.rows.append(row)


def _number(value: Any, kind: type) -> float:
    """`value` as a number for sorting; anything else (null, text, a bool, NaN) counts as 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return kind(0)
    return kind(value)


def _no_constant(name: str) -> None:
    """NaN and Infinity are not JSON a browser can read: they are shown as null."""
    return None


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # one decoder: json.loads builds one per call
_TASK_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
