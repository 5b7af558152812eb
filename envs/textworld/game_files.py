"""TextWorld games from files: the `.z8` games that `tw-make` writes, found from a file, a folder or a glob.

`find_games(spec)` lists the games of `spec` sorted by name (task k is the k-th), checking
each at once so that a bad path fails when the env is built, not at some later reset:
the game file is a Z-machine story (version 8) and TextWorld's `.json` sidecar lies
beside it (TextWorld reads the quests, the score and the walkthrough from it). Error
messages name files relative to what was given, never by an absolute path: a server
sends them to its clients.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path

import textworld
from textworld.generator.game import Game

GAME_SUFFIX = ".z8"  # what `tw-make` compiles (TextWorld 1.7 plays no other TextWorld format)
GLULX_SUFFIX = ".ulx"  # what TextWorld before 1.7 compiled
HEADER_BYTES = 64  # a Z-machine story starts with a 64-byte header; its first byte is the version
MAGIC = frozenset("*?[")


class GameFilesError(ValueError):
    """`games=` names no playable TextWorld game, or one that cannot be played."""


@dataclass(frozen=True)
class GameFile:
    """One playable game: its file, its name relative to what was given, whether it has a walkthrough."""

    path: Path
    name: str
    walkthrough: bool


def find_games(spec: str | os.PathLike[str]) -> list[GameFile]:
    """The games of `spec` (a `.z8` file, a folder holding `.z8` files, or a glob), sorted by name."""
    text = os.fspath(spec)
    if not text.strip():
        raise GameFilesError("games= is empty: give a .z8 file, a folder of them or a glob")
    if MAGIC & set(text):
        base, paths = _glob(text)
    else:
        base, paths = _path(Path(text).expanduser())
    return sorted((_game(path, base) for path in paths), key=lambda game: game.name)


def _path(path: Path) -> tuple[Path, list[Path]]:
    if path.is_dir():
        try:
            files = [entry for entry in path.iterdir() if entry.is_file()]
        except OSError as error:
            raise GameFilesError(
                f"games: the folder {_shown(path)!r} cannot be read ({error.strerror})"
            ) from None
        games = _games_among(files, f"the folder {_shown(path)!r}")
        return path, games
    if path.is_file():
        _refuse_other_format(path)
        if path.suffix.lower() != GAME_SUFFIX:
            hint = f" (give the {GAME_SUFFIX} file beside it)" if path.suffix.lower() == ".json" else ""
            raise GameFilesError(
                f"games: {_shown(path)!r} is not a TextWorld game: expected a {GAME_SUFFIX} file made "
                f"by tw-make{hint}"
            )
        return path.parent, [path]
    raise GameFilesError(
        f"games: {_shown(path)!r} does not exist (give a {GAME_SUFFIX} file, a folder or a glob)"
    )


def _glob(pattern: str) -> tuple[Path, list[Path]]:
    parts = Path(pattern).expanduser().parts
    fixed = next(i for i, part in enumerate(parts) if MAGIC & set(part))
    base = Path(*parts[:fixed]) if fixed else Path(".")
    matches = [Path(match) for match in glob.glob(str(Path(*parts)), recursive=True)]
    shown = str(Path(*parts[fixed:]))
    files = [match for match in matches if match.is_file()]
    where = f"the pattern {shown!r}" + (f" in {_shown(base)!r}" if fixed else "")
    return base, _games_among(files, where)


def _games_among(files: list[Path], where: str) -> list[Path]:
    """The games among `files` (other files, such as the `.json` and `.ni` beside each game, are skipped)."""
    for file in files:
        _refuse_other_format(file)
    games = [file for file in files if file.suffix.lower() == GAME_SUFFIX]
    if not games:
        found = f"{len(files)} other file(s)" if files else "nothing"
        raise GameFilesError(f"games: {where} holds no {GAME_SUFFIX} game made by tw-make (found {found})")
    return games


def _refuse_other_format(path: Path) -> None:
    if path.suffix.lower() == GLULX_SUFFIX:
        raise GameFilesError(
            f"games: {_shown(path)!r} is a Glulx game, which TextWorld {textworld.__version__} no longer "
            f"plays: make it again with tw-make, which writes {GAME_SUFFIX}"
        )


def _game(path: Path, base: Path) -> GameFile:
    name = _relative(path, base)
    try:
        with path.open("rb") as file:
            header = file.read(HEADER_BYTES)
    except OSError as error:
        raise GameFilesError(f"games: {name!r} cannot be read ({error.strerror})") from None
    if len(header) < HEADER_BYTES or header[0] != 8:
        raise GameFilesError(f"games: {name!r} is not a Z-machine story file (version 8), as tw-make writes")
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise GameFilesError(
            f"games: {name!r} has no {sidecar.name!r} beside it: TextWorld reads the game's quests, score "
            "and walkthrough from the .json that tw-make writes next to the game; keep the two together"
        )
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except OSError as error:
        raise GameFilesError(f"games: the sidecar of {name!r} cannot be read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise GameFilesError(f"games: the sidecar of {name!r} is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise GameFilesError(f"games: the sidecar of {name!r} is not JSON ({error.msg})") from None
    if not isinstance(data, dict) or not {"world", "KB", "infos"} <= set(data):
        raise GameFilesError(f"games: the sidecar of {name!r} is not a TextWorld game description")
    version = data.get("version", Game._SERIAL_VERSION)
    if version != Game._SERIAL_VERSION:
        raise GameFilesError(
            f"games: {name!r} was made by a TextWorld whose games are version {version}; "
            f"TextWorld {textworld.__version__} plays version {Game._SERIAL_VERSION}"
        )
    metadata = data.get("metadata")
    walkthrough = bool(data.get("quests")) or bool(isinstance(metadata, dict) and metadata.get("walkthrough"))
    return GameFile(path=path, name=name, walkthrough=walkthrough)


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.name


def _shown(path: Path) -> str:
    """A path as an error message may show it: its last part only (never where it lies on the server)."""
    return path.name or str(path)
