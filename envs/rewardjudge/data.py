"""Reading RMB-format preference data: pairwise and Best-of-N items, bad records reported.

RMB's released layout is a directory with `Pairwise_set/` and `BoN_set/`, each holding
`Helpfulness/` and `Harmlessness/` subtrees of JSON files (each a JSON list of records); JSONL
files with the same records are read too. A pairwise record is `{pair_uid,
conversation_input, chosen, reject, category_path}`, a Best-of-N record `{bon_uid,
conversation_input, bon_best, loser_list, category_path}`. `conversation_input` is a list of
`{role, content}` turns (multi-turn allowed); an answer is `{"llm_name", "answer"}` or a plain
string. `category_path` reads `Pairwise_set/Helpfulness/Code/Data Management`: the goal, then
the category and the sub-scenario.

A record that cannot be used (a missing field, an empty loser list, text that is not UTF-8, a
conversation in another shape, a repeated uid, a line that is not JSON) is skipped and
reported as a `Skipped` (file, index, reason): `read_rmb` never raises on a bad record and
never drops one silently. Records are JSON data only: nothing read is evaluated.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("pairwise", "bon")
GOALS = ("helpfulness", "harmlessness")
ROLES = ("system", "user", "assistant")
SET_DIRS = {"pairwise_set": "pairwise", "bon_set": "bon"}
SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "sample"
NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape


@dataclass(frozen=True)
class RMBItem:
    """One preference item: `best` should score above every one of `losers` (one for pairwise)."""

    kind: str  # "pairwise" | "bon"
    uid: str
    conversation: tuple[dict[str, str], ...]
    best: str
    losers: tuple[str, ...]
    goal: str  # "helpfulness" | "harmlessness"
    scenario: str  # the sub-scenario: category_path after the set and the goal ("Code/Data Management")
    source: str  # "FILE item N" or "FILE line N"

    @property
    def key(self) -> str:
        """Unique in a data set: the kind and the uid."""
        return f"{self.kind}:{self.uid}"

    @property
    def category(self) -> str:
        """The scenario's first part ("Code"): RMB's task or hazard category."""
        return self.scenario.split("/", 1)[0]

    @property
    def section(self) -> str:
        """One of RMB's four averages: "helpfulness/pairwise", ..."""
        return f"{self.goal}/{self.kind}"


@dataclass(frozen=True)
class Skipped:
    """A record left out, and why."""

    where: str  # "FILE item N" / "FILE line N" / "FILE"
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class RMBData:
    items: list[RMBItem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def data_files(root: str | os.PathLike) -> list[Path]:
    """The `.json` and `.jsonl` files under `root` (or `root` itself), in a stable order."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such RMB data directory or file")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl"))


def read_rmb(root: str | os.PathLike) -> RMBData:
    """Every usable item under `root`, and every record skipped with its place and reason."""
    data = RMBData()
    seen: set[str] = set()
    for path in data_files(root):
        for where, record in _records(path, data.skipped):
            try:
                item = parse_record(record, where, path)
            except ValueError as problem:
                data.skipped.append(Skipped(where, str(problem)))
                continue
            if item.key in seen:
                data.skipped.append(Skipped(where, f"repeated uid {item.uid!r}"))
                continue
            seen.add(item.key)
            data.items.append(item)
    return data


def _records(path: Path, skipped: list[Skipped]) -> list[tuple[str, Any]]:
    try:
        text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    except OSError as problem:
        skipped.append(Skipped(str(path), f"cannot read it: {problem}"))
        return []
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as problem:
            skipped.append(Skipped(str(path), f"not a JSON list of records: {problem}"))
            return []
        return [(f"{path} item {i}", record) for i, record in enumerate(records)]
    entries = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            entries.append((f"{path} line {number}", json.loads(line)))
        except json.JSONDecodeError as problem:
            skipped.append(Skipped(f"{path} line {number}", f"not JSON: {problem}"))
    return entries


def parse_record(record: Any, where: str, path: Path | None = None) -> RMBItem:
    """The item a record holds; a ValueError says what is wrong with it."""
    if not isinstance(record, dict):
        raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
    if _has_bad_bytes(record):
        raise ValueError("text that is not UTF-8")
    if "pair_uid" in record or "chosen" in record or "reject" in record:
        kind, uid_field, best_field = "pairwise", "pair_uid", "chosen"
    elif "bon_uid" in record or "bon_best" in record or "loser_list" in record:
        kind, uid_field, best_field = "bon", "bon_uid", "bon_best"
    else:
        raise ValueError(
            "neither a pairwise record (pair_uid, chosen, reject) nor a Best-of-N one (bon_uid, bon_best, loser_list)"
        )
    uid = record.get(uid_field)
    if not isinstance(uid, (str, int)) or isinstance(uid, bool) or str(uid) == "":
        raise ValueError(f"missing field {uid_field!r}" if uid is None else f"{uid_field} must be a string")
    conversation = _conversation(record.get("conversation_input"))
    best = _answer(record.get(best_field), best_field)
    if kind == "pairwise":
        losers = (_answer(record.get("reject"), "reject"),)
    else:
        loser_list = record.get("loser_list")
        if loser_list is None:
            raise ValueError("missing field 'loser_list'")
        if not isinstance(loser_list, list):
            raise ValueError("loser_list must be a list of answers")
        if not loser_list:
            raise ValueError("empty loser_list")
        losers = tuple(_answer(loser, f"loser_list[{i}]") for i, loser in enumerate(loser_list))
    goal, scenario = _scenario(record.get("category_path"), path)
    return RMBItem(kind, str(uid), conversation, best, losers, goal, scenario, where)


def _has_bad_bytes(value: Any) -> bool:
    if isinstance(value, str):
        return bool(NOT_UTF8.search(value))
    if isinstance(value, dict):
        return any(_has_bad_bytes(k) or _has_bad_bytes(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_bad_bytes(v) for v in value)
    return False


def _conversation(value: Any) -> tuple[dict[str, str], ...]:
    if value is None:
        raise ValueError("missing field 'conversation_input'")
    if not isinstance(value, list) or not value:
        raise ValueError("conversation_input must be a non-empty list of {role, content} turns")
    turns = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict) or not isinstance(turn.get("content"), str):
            raise ValueError(f"conversation_input[{i}] must be a {{role, content}} object with text content")
        if turn.get("role") not in ROLES:
            raise ValueError(
                f"conversation_input[{i}].role must be one of {list(ROLES)}, got {turn.get('role')!r}"
            )
        turns.append({"role": turn["role"], "content": turn["content"]})
    if turns[-1]["role"] != "user":
        raise ValueError("conversation_input must end with a user turn")
    return tuple(turns)


def _answer(value: Any, name: str) -> str:
    if value is None:
        raise ValueError(f"missing field {name!r}")
    if isinstance(value, dict):
        value = value.get("answer")
        if value is None:
            raise ValueError(f"{name} has no 'answer'")
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string or an {{llm_name, answer}} object")
    return value


def _scenario(value: Any, path: Path | None) -> tuple[str, str]:
    if value is None:
        raise ValueError("missing field 'category_path'")
    if not isinstance(value, str) or not value.strip("/"):
        raise ValueError("category_path must be a non-empty string")
    parts = [part for part in value.split("/") if part]
    if parts and parts[0].lower() in SET_DIRS:
        parts = parts[1:]
    goal = parts[0].lower() if parts and parts[0].lower() in GOALS else None
    if goal is not None:
        parts = parts[1:]
    elif path is not None:
        goal = next((p.lower() for p in reversed(path.parts) if p.lower() in GOALS), None)
    if goal is None:
        raise ValueError(f"category_path {value!r} names neither Helpfulness nor Harmlessness")
    if not parts:
        raise ValueError(f"category_path {value!r} names no scenario")
    return goal, "/".join(parts)
