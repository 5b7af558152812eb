"""The `data` kwarg of the math envs: local GSM8K- or MATH-style files, one for every split or one per split.

`load_problem_files(data, splits)` reads `data` (a path, or a mapping of split to path)
with `envs.math.problems.load_problems` into `{split: [Problem, ...]}`; at reset,
`split_problems(data, split, options)` gives a split's problems. Errors name a file by its
name only: a message may reach a client, a server's paths may not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from envs.errors import ParamError, TaskOptionError
from envs.math.problems import Problem, load_problems

MAX_LISTED = 5  # records named in an error


def load_problem_files(
    data: str | os.PathLike | dict[str, Any] | None,
    splits: tuple[str, ...],
    *,
    needs_solutions: bool = False,
) -> dict[str, list[Problem]] | None:
    """The problems of `data` per split (None without data). A single file serves every
    split. With `needs_solutions`, every record must carry a reference solution (a GSM8K
    answer with its lines before `#### n`, or a MATH solution)."""
    if data is None:
        return None
    if isinstance(data, dict):
        unknown = sorted(str(key) for key in data if key not in splits)
        if unknown or not data:
            raise ParamError(f"data maps splits {list(splits)} to files, got keys {unknown or sorted(data)}")
        return {split: _load(path, split, needs_solutions) for split, path in data.items()}
    problems = _load(data, "test", needs_solutions)
    return {split: problems for split in splits}


def _load(path: Any, split: str, needs_solutions: bool) -> list[Problem]:
    if not isinstance(path, (str, os.PathLike)):
        raise ParamError(f"data must be a file path, got {type(path).__name__}")
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise ParamError(f"data: no such data file {name!r}")
    if path.suffix.lower() not in (".jsonl", ".json", ".parquet"):
        raise ParamError(f"data: files are .jsonl, .json or .parquet, got {name!r}")
    try:
        problems = load_problems(path, split)
    except Exception as error:  # a malformed file: the reader's own message, without the path
        message = str(error).replace(str(path.resolve()), name).replace(str(path), name)
        raise ParamError(f"data: cannot read {name!r}: {message}") from None
    if needs_solutions:
        missing = [k for k, problem in enumerate(problems) if not problem.lines]
        if missing:
            raise ParamError(
                f"data: {len(missing)} of {len(problems)} records of {name!r} have no reference solution "
                f"(records {missing[:MAX_LISTED]}{' ...' if len(missing) > MAX_LISTED else ''}): a GSM8K "
                "answer needs its solution lines before `#### n`, a MATH record its `solution`"
            )
    return problems


def split_problems(data: dict[str, list[Problem]], split: str, options: dict[str, Any]) -> list[Problem]:
    """The problems of `split` for a reset with `options`: `TaskOptionError` for a split
    without a file, or for a `difficulty` (it applies to generated problems only)."""
    if "difficulty" in options:
        raise TaskOptionError("options.difficulty applies to generated problems, not to a data file")
    problems = data.get(split)
    if problems is None:
        raise TaskOptionError(f"options.split {split!r} has no data file (the env has {sorted(data)})")
    return problems
