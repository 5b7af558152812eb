"""TextWorld games: which game a task is, and a disk cache that makes each game once.

A task is a `GameParams` (rooms, objects, quest length, generator seed). `GameCache`
turns it into a compiled game file, running TextWorld's generator the first time and
reusing the file after. Several processes may ask for the same game at once: one
generates it under a per-game `fcntl.flock` lock, into a staging folder that is then
renamed into place, so a reader never sees a half-written game.

The cache is bounded: past `MAX_CACHE_BYTES` the least recently used games are deleted.
Lock files go with the lock; the lock files and staging folders of killed processes are
removed the first time a process opens the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import itertools
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import textworld
from textworld import GameOptions
from textworld.generator import Game, compile_game, make_game
from textworld.generator.chaining import QuestGenerationError
from textworld.generator.data import KnowledgeBase
from textworld.generator.vtypes import NotEnoughNounsError

# Bump when the way a game is made from its parameters changes: old cache entries are then ignored.
GENERATION_VERSION = 1
GAME_FILE = "game.z8"  # Next to it TextWorld writes game.json, which its state tracking reads.
MAX_ATTEMPTS = 25  # hard games clash names in about 60% of seeds
MAX_CACHE_BYTES = 512 * 2**20  # games on disk per cache folder (a game takes 0.4 to 0.6 MB)
LOCK_SUFFIX = ".lock"

# (rooms, objects, quest length) of each difficulty.
DIFFICULTIES: dict[str, tuple[int, int, int]] = {
    "easy": (3, 5, 3),
    "medium": (6, 10, 6),
    "hard": (10, 20, 10),
}
# Inclusive bounds of the explicit overrides: the largest games take 5 to 15 s to generate
# (20 rooms, 40 objects and a quest of 15 took over 3 minutes).
PARAM_LIMITS: dict[str, tuple[int, int]] = {
    "world_size": (1, 12),
    "nb_objects": (1, 25),
    "quest_length": (1, 10),
}


class GameGenerationError(RuntimeError):
    """TextWorld's generator made no playable game from these parameters."""


@dataclass(frozen=True)
class GameParams:
    """Everything that decides a generated game."""

    world_size: int
    nb_objects: int
    quest_length: int
    seed: int

    @property
    def key(self) -> str:
        """The game's cache name: readable parameters and a hash of all of them."""
        fields = {**asdict(self), "textworld": textworld.__version__, "version": GENERATION_VERSION}
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
        return f"r{self.world_size}-o{self.nb_objects}-q{self.quest_length}-s{self.seed}-{digest}"


def _seed_from(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest()[:4], "big") >> 2  # below 2**30


def generator_seed(split: str, task: int, world_size: int, nb_objects: int, quest_length: int) -> int:
    """The generator seed of task `task` of `split`; train seeds are even and test seeds odd."""
    return 2 * _seed_from(split, task, world_size, nb_objects, quest_length) + (1 if split == "test" else 0)


def attempt_seed(seed: int, attempt: int) -> int:
    """The seed of the `attempt`-th try at a game; it keeps the parity (the split) of `seed`."""
    return seed if attempt == 0 else 2 * _seed_from(seed, attempt) + seed % 2


def clashing_names(game: Game) -> list[tuple[str, str]]:
    """Pairs of object names where every word of the first is in the second ("box", "cuboid box").

    Inform's parser cannot tell such objects apart in a two-object command
    (`take keycard from box`), so a game with them can be unwinnable.
    """
    names = sorted(
        {info.name for info in game.infos.values() if info.type not in ("r", "P", "I") and info.name}
    )
    words = {name: set(name.lower().split()) for name in names}
    return [(a, b) for a, b in itertools.permutations(names, 2) if words[a] <= words[b]]


def plays_through(path: Path, game: Game) -> bool:
    """Whether following TextWorld's walkthrough from each state wins the compiled game."""
    env = textworld.start(str(path), request_infos=textworld.EnvInfos(policy_commands=True, won=True))
    try:
        state = env.reset()
        for _ in range(2 * len(game.walkthrough) + 5):
            if state.won or not state.policy_commands:
                break
            state, _, _ = env.step(state.policy_commands[0])
        return bool(state.won)
    finally:
        env.close()


@functools.cache
def knowledge_base() -> KnowledgeBase:
    """TextWorld's default logic and grammar, parsed once per process (about 0.4 s)."""
    return KnowledgeBase.load()


def generate_game(params: GameParams, path: Path) -> None:
    """Generate and compile the game of `params` at `path` (a `.z8`; a `.json` goes beside it).

    A generated game is kept only if its objects' names cannot be confused and its
    walkthrough wins it; otherwise the next attempt seed is tried.
    """
    for attempt in range(MAX_ATTEMPTS):
        options = GameOptions()
        options.kb = knowledge_base()
        options.nb_rooms = params.world_size
        options.nb_objects = params.nb_objects
        options.quest_length = params.quest_length
        options.seeds = attempt_seed(params.seed, attempt)
        options.path = str(path)
        options.force_recompile = True
        try:
            game = make_game(options)
        except (QuestGenerationError, NotEnoughNounsError):
            continue
        if game.max_score <= 0 or not game.walkthrough or clashing_names(game):
            continue
        compile_game(game, options)
        if plays_through(path, game):
            return
    raise GameGenerationError(f"TextWorld could not generate a game from {params} in {MAX_ATTEMPTS} attempts")


# TextWorld's generator and its logic parser keep global state: one generation or game
# load at a time per process (a server resets sessions from many threads); the file lock
# covers other processes.
TEXTWORLD_LOCK = threading.RLock()


_cleaned_roots: set[Path] = set()
_cleaned_lock = threading.Lock()


class GameCache:
    """Compiled games on disk under `root`, one folder per `GameParams.key`, at most `max_bytes` of them."""

    def __init__(self, root: str | os.PathLike[str], max_bytes: int = MAX_CACHE_BYTES):
        self.root = Path(root).expanduser()
        self.max_bytes = max_bytes
        with _cleaned_lock:
            if self.root.resolve() not in _cleaned_roots and self.root.is_dir():
                self.clean()
                self.evict()
            _cleaned_roots.add(self.root.resolve())

    def game_path(self, params: GameParams) -> Path:
        return self.root / params.key / GAME_FILE

    def get(self, params: GameParams) -> Path:
        """The game file of `params`, generated now unless it is already cached."""
        path = self.game_path(params)
        if path.is_file():
            with contextlib.suppress(OSError):
                os.utime(path.parent)  # the folder's time is its last use (eviction goes by it)
            return path
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock(params.key):
            if not path.is_file():  # another process may have made it while we waited
                with TEXTWORLD_LOCK:
                    self._generate_into_place(params, path.parent)
                self.evict(keep=params.key)
        return path

    # ---- bounds and leftovers -------------------------------------------------------
    def games(self) -> list[Path]:
        """The cached games' folders, least recently used first."""
        folders = []
        for entry in self._entries():
            if entry.is_dir() and not entry.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    folders.append((entry.stat().st_mtime, entry))
        return [folder for _, folder in sorted(folders)]

    def size(self) -> int:
        """Bytes of the cached games."""
        return sum(_folder_bytes(folder) for folder in self.games())

    def evict(self, keep: str | None = None) -> list[str]:
        """Delete least recently used games until the cache holds at most `max_bytes`; the keys deleted.

        A game whose lock another process or thread holds is left alone."""
        folders = [(folder, _folder_bytes(folder)) for folder in self.games()]
        total = sum(size for _, size in folders)
        evicted = []
        for folder, size in folders:
            if total <= self.max_bytes:
                break
            if folder.name == keep:
                continue
            with self._lock(folder.name, wait=False) as held:
                if held:
                    self._remove(folder, folder.name)
                    total -= size
                    evicted.append(folder.name)
        return evicted

    def clean(self) -> list[str]:
        """Remove the lock files and staging folders no live process holds (left by killed ones);
        the names removed (a lock file goes with its staging folder unnamed)."""
        removed = []
        for entry in self._entries():
            if entry.name.endswith(LOCK_SUFFIX) and entry.is_file():
                key = entry.name.removesuffix(LOCK_SUFFIX)
            elif entry.name.startswith(".") and entry.is_dir():
                key = entry.name[1:].rsplit(".", 1)[0]
            else:
                continue
            with self._lock(key, wait=False) as held:
                if held:  # nobody makes this game now: a staging folder of it is a leftover
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry.name)
        return removed

    def _entries(self) -> list[Path]:
        try:
            return list(self.root.iterdir())
        except FileNotFoundError:
            return []

    def _remove(self, folder: Path, key: str) -> None:
        # Renamed first: a reader sees the whole game or none of it.
        trash = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        try:
            os.rename(folder, trash / "game")
        except OSError:
            pass
        shutil.rmtree(trash, ignore_errors=True)

    @contextlib.contextmanager
    def _lock(self, key: str, wait: bool = True) -> Iterator[bool]:
        """Hold the lock of game `key` (yields True), or with `wait=False` yield False if another holds it.

        The lock file is deleted on release, so whoever waited on it checks, once it holds
        the lock, that its file is still the one at the path, and else starts over."""
        fd = _acquire(self.root / f"{key}{LOCK_SUFFIX}", wait)
        if fd is None:
            yield False
            return
        try:
            yield True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / f"{key}{LOCK_SUFFIX}")
            os.close(fd)

    def _generate_into_place(self, params: GameParams, folder: Path) -> None:
        staging = Path(tempfile.mkdtemp(prefix=f".{params.key}.", dir=self.root))
        try:
            generate_game(params, staging / GAME_FILE)
            staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
            (staging / "params.json").write_text(json.dumps(asdict(params), indent=1) + "\n")
            if folder.exists():  # a leftover without its game file (say, deleted by hand)
                shutil.rmtree(folder)
            os.rename(staging, folder)  # atomic: the folder appears with all its files
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _acquire(path: Path, wait: bool) -> int | None:
    """An open descriptor of the lock file `path`, locked; None if `wait` is False and another holds it."""
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        held = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (held.st_ino, held.st_dev):
            return fd
        os.close(fd)  # the holder before us deleted this file on release: lock the new one


def _folder_bytes(folder: Path) -> int:
    total = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in folder.iterdir():
            with contextlib.suppress(FileNotFoundError):
                total += entry.stat().st_size
    return total
