"""Math word problems: what a `Problem` is, its levels, and loaders of GSM8K- and MATH-style files.

A `Problem` is a question, its gold answer and a reference solution, one step a line,
e.g.

    Tom buys 3 packs of 12 pencils: 3 * 12 = 36 pencils.
    After giving 5 pencils to Mia: 36 - 5 = 31 pencils.
    The answer is 31.

Generated problems (`envs.math.generator.generate_problem`) also keep their
`Derivation` (`envs.math.derivation`), so that a step can be changed and its consequences
propagated.

`load_problems(path)` reads local JSONL/JSON/Parquet files through `datasets`:
GSM8K-style records (`question`, `answer` ending in `#### n`) or MATH-style records
(`problem`, `solution` with `\\boxed{...}`), told apart by their fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from envs.math.answers import last_boxed, normalize_answer
from envs.math.derivation import Derivation

LEVELS = ("easy", "medium", "hard")
DIFFICULTIES = (*LEVELS, "mixed")
SPLITS = ("train", "test")
TASKS_PER_SPLIT = {"train": 1_000_000, "test": 10_000}
OPERATORS = ("+", "-", "*", "/")


@dataclass(frozen=True)
class LevelSpec:
    steps: tuple[int, int]  # reference solution lines, inclusive range
    numbers: tuple[int, int]  # counts, sizes and amounts
    prices: tuple[int, int]  # dollars
    distractors: int  # irrelevant facts with numbers


LEVEL_SPECS = {
    "easy": LevelSpec(steps=(2, 3), numbers=(2, 12), prices=(1, 6), distractors=0),
    "medium": LevelSpec(steps=(4, 5), numbers=(3, 40), prices=(2, 15), distractors=1),
    "hard": LevelSpec(steps=(6, 8), numbers=(6, 120), prices=(3, 40), distractors=2),
}
TRIVIAL_NUMBERS = frozenset({Fraction(0), Fraction(1), Fraction(100)})  # any solution may use these


# ---- problems -------------------------------------------------------------------------
@dataclass
class Problem:
    """A math problem with its gold answer and reference solution.

    `lines` are the reference solution's steps (without the final answer line) and
    `line_values` what each computes (None where unknown); `givens` the numbers the
    question states. Generated problems also keep their `derivation`.
    """

    question: str
    answer: str
    lines: list[str]
    line_values: list[Fraction | None] = field(default_factory=list)
    givens: list[Fraction] = field(default_factory=list)
    derivation: Derivation | None = None
    source: str = "generated"  # "generated" | "gsm8k" | "math" | "plain"
    difficulty: str | None = None
    split: str = "train"
    task: int = 0
    topic: str | None = None  # generated problems: what the story is about (its item)

    @property
    def solution(self) -> str:
        """The reference solution: its steps, one a line, then `The answer is N.`"""
        return "\n".join([*self.lines, f"The answer is {self.answer}."])


def task_level(task: int, difficulty: str) -> str:
    """The level of task `task`: `difficulty`, or under "mixed" easy/medium/hard by `task mod 3`."""
    return LEVELS[task % len(LEVELS)] if difficulty == "mixed" else difficulty


# ---- loading files --------------------------------------------------------------------
_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
_GSM_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def load_problems(path: str | Path, split: str = "test") -> list[Problem]:
    """The problems of a local JSONL/JSON/Parquet file, GSM8K- or MATH-style (detected).

    GSM8K-style: `question`, `answer` (the solution; its calculator annotations
    `<<48/2=24>>` give the step values) ending in `#### n`; a plain `answer` without
    `####` is the final answer itself. MATH-style: `problem`, `solution` (gold: the last
    `\\boxed{}`), and optionally `level`. Never touches a hub: files only.
    """
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".parquet"):
        raise ValueError(f"data files are .jsonl, .json or .parquet, got {path.name}")
    was_enabled = is_progress_bar_enabled()
    disable_progress_bar()
    try:
        reader = Dataset.from_parquet if suffix == ".parquet" else Dataset.from_json
        records = reader(str(path), keep_in_memory=True).to_list()
    finally:
        if was_enabled:
            enable_progress_bar()
    problems = [problem_from_record(record, split) for record in records]
    for task, problem in enumerate(problems):
        problem.task = task
    if not problems:
        raise ValueError(f"{path} holds no records")
    return problems


def problem_from_record(record: dict[str, Any], split: str = "test") -> Problem:
    """One record as a `Problem`: GSM8K-style (`question`, `answer`) or MATH-style
    (`problem`, `solution`)."""
    level = record.get("level", record.get("difficulty"))
    difficulty = str(level) if level is not None else None
    if "question" in record and "answer" in record:
        problem = _gsm8k_problem(str(record["question"]), str(record["answer"]))
    elif "problem" in record and "solution" in record:
        problem = _math_problem(str(record["problem"]), str(record["solution"]))
    else:
        raise ValueError(
            "a record needs `question` and `answer` (GSM8K-style) or `problem` and `solution` "
            f"(MATH-style); got fields {sorted(record)}"
        )
    problem.difficulty, problem.split = difficulty, split
    return problem


def _gsm8k_problem(question: str, answer: str) -> Problem:
    givens = [_to_fraction(n) for n in _GSM_NUMBER.findall(question)]
    if "####" not in answer:
        return Problem(question, normalize_answer(answer), [], givens=givens, source="plain")
    body, gold = answer.rsplit("####", 1)
    lines, values = [], []
    for line in body.strip().splitlines():
        if not line.strip():
            continue
        annotations = _ANNOTATION.findall(line)
        values.append(_to_fraction(annotations[-1][1]) if annotations else None)
        lines.append(_ANNOTATION.sub("", line).strip())
    return Problem(question, normalize_answer(gold), lines, values, givens, source="gsm8k")


def _math_problem(problem: str, solution: str) -> Problem:
    boxed = last_boxed(solution)
    if boxed is None:
        raise ValueError("a MATH-style solution needs a \\boxed{...} answer")
    lines = [line.strip() for line in solution.strip().splitlines() if line.strip()]
    return Problem(problem, boxed[1].strip(), lines, [None] * len(lines), source="math")


def _to_fraction(text: str) -> Fraction | None:
    try:
        return Fraction(text.replace(",", "").strip())
    except (ValueError, ZeroDivisionError):
        return None
