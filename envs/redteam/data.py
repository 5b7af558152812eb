"""Seed prompts for the red-team envs: the shipped pool, and loaders for local files.

The shipped pool (`seeds.jsonl`, beside this module) holds requests in every harm
category of the taxonomy, phrased at the level of a label ("How do I pick a lock?"),
never with operational content, and benign requests with a short reference answer,
among them borderline ones that a keyword guard may mistake for harm ("How do I kill a
Python process that is stuck?"): the over-refusal test. Harmful and benign rows
alternate and harmful rows go round the categories, so the first tasks mix them.

A local file is JSONL, a JSON list, or CSV with the fields `prompt` (required),
`category`, `harmful` (true/false, yes/no, 1/0), and optionally `topic` and `answer`.
A row without `harmful` counts as harmful when its category is one other than "benign",
and as unknown (None) without a category.

Splits (`split_prompts`): every pool, shipped or local, is split into "train" and "test"
by a stable hash of each prompt's text (lower-cased, whitespace collapsed): about one
prompt in four (`TEST_SHARE`) goes to test. Each prompt's side depends on its own text
only, so adding or editing seeds moves no other seed, with one exception that keeps every
category in both splits: in a category of two or more prompts whose hashes put none in
test, the one with the lowest hash goes to test (and where they put all in test, the one
with the highest goes to train). A category of one prompt stays on its hash's side. Each
split keeps the pool's order.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from envs.errors import TaskOptionError
from envs.redteam.judges import STOPWORDS, words
from envs.redteam.taxonomy import BENIGN

SEEDS_PATH = Path(__file__).with_name("seeds.jsonl")
_TRUE = {"true", "yes", "1", "harmful", "unsafe"}
_FALSE = {"false", "no", "0", "benign", "safe"}
SPLITS = ("train", "test")
TEST_SHARE = 4  # one prompt in four (by hash) is held out for test
SPLIT_SALT = "evolgym-redteam-split"


@dataclass(frozen=True)
class SeedPrompt:
    """One request: its text, harm category, gold label (None: unknown), topic and reference answer."""

    prompt: str
    category: str
    harmful: bool | None
    topic: str
    answer: str | None = None


def _label(value: object, category: str | None, where: str) -> bool | None:
    if value is None:
        return None if category is None else category != BENIGN
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if not text:  # an empty CSV cell: as if the field were missing
        return _label(None, category, where)
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{where}: 'harmful' must be true or false, got {value!r}")


def topic_of(prompt: str) -> str:
    """A topic for a request without one: its first few content words."""
    content = [w for w in words(prompt) if len(w) >= 3 and w not in STOPWORDS]
    return " ".join(content[:4]) or prompt.strip()[:40]


def _seed(row: dict, where: str) -> SeedPrompt:
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"{where}: a non-empty 'prompt' is required")
    category = row.get("category")
    category = str(category).strip() if category not in (None, "") else None
    harmful = _label(row.get("harmful"), category, where)
    if category is None:
        category = BENIGN if harmful is False else "unknown"
    topic = str(row.get("topic") or "").strip() or topic_of(prompt)
    answer = row.get("answer")
    return SeedPrompt(prompt.strip(), category, harmful, topic, str(answer).strip() if answer else None)


def load_prompts(path: str | Path) -> list[SeedPrompt]:
    """Seed prompts from a local JSONL, JSON-list or CSV file (see the module docstring)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    elif path.suffix.lower() == ".json":
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise ValueError(f"{path}: a .json file must hold a list of records")
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path}: no records")
    seeds = []
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: record {n} is not an object")
        seeds.append(_seed(row, f"{path}: record {n}"))
    return seeds


@functools.lru_cache(maxsize=1)
def _shipped() -> tuple[SeedPrompt, ...]:
    return tuple(load_prompts(SEEDS_PATH))


def shipped_prompts() -> list[SeedPrompt]:
    """The pool shipped with the package, harmful and benign rows alternating."""
    return list(_shipped())


def harmful_seeds(prompts: list[SeedPrompt] | None = None) -> list[SeedPrompt]:
    """The rows labelled harmful (of `prompts`, by default the shipped pool)."""
    return [seed for seed in (shipped_prompts() if prompts is None else prompts) if seed.harmful]


def benign_seeds(prompts: list[SeedPrompt] | None = None) -> list[SeedPrompt]:
    return [seed for seed in (shipped_prompts() if prompts is None else prompts) if seed.harmful is False]


def split_key(prompt: str) -> int:
    """A prompt's stable hash: its split depends on its text, not on its place in the pool."""
    text = " ".join(prompt.lower().split())
    return int.from_bytes(hashlib.sha256(f"{SPLIT_SALT}|{text}".encode()).digest()[:8], "big")


def split_prompts(prompts: list[SeedPrompt]) -> dict[str, list[SeedPrompt]]:
    """`prompts` split into {"train": [...], "test": [...]} (see the module docstring), in pool order."""
    test = {n for n, seed in enumerate(prompts) if split_key(seed.prompt) % TEST_SHARE == 0}
    by_category: dict[str, list[int]] = {}
    for n, seed in enumerate(prompts):
        by_category.setdefault(seed.category, []).append(n)
    for rows in by_category.values():
        if len(rows) < 2:
            continue
        held = [n for n in rows if n in test]
        if not held:
            test.add(min(rows, key=lambda n: split_key(prompts[n].prompt)))
        elif len(held) == len(rows):
            test.discard(max(rows, key=lambda n: split_key(prompts[n].prompt)))
    return {
        "train": [seed for n, seed in enumerate(prompts) if n not in test],
        "test": [seed for n, seed in enumerate(prompts) if n in test],
    }


def in_split(prompts: list[SeedPrompt], split: str) -> list[SeedPrompt]:
    """The prompts of `split` ("train" or "test"); a `TaskOptionError` names the splits there are."""
    if split not in SPLITS:
        raise TaskOptionError(f"options.split must be one of {list(SPLITS)}, got {split!r}")
    return split_prompts(prompts)[split]


def in_category(seeds: list[SeedPrompt], category: str | None) -> list[SeedPrompt]:
    """The seeds of `category` (all of them for None); a `TaskOptionError` names the categories there are."""
    if category is None:
        return seeds
    chosen = [seed for seed in seeds if seed.category == category]
    if not chosen:
        known = sorted({seed.category for seed in seeds})
        raise TaskOptionError(f"options.category must be one of {known}, got {category!r}")
    return chosen
