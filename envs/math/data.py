"""AutoMathCritique-style SFT data for critique models: `evol data critiques --n N --out FILE`."""

from __future__ import annotations

import json
import random
from pathlib import Path

from envs.math.critics import OracleCritic, critique_messages
from envs.math.flaws import ERROR_KINDS, make_flawed
from envs.math.generator import generate_problem
from envs.math.problems import LEVELS, TASKS_PER_SPLIT


def write_critique_data(n: int, out_path: str | Path, seed: int = 0, split: str = "train") -> int:
    """Write `n` critique examples as JSONL; returns how many were written.

    Each line: `question`, `solution` (a flawed solution: the error kinds and the
    easy/medium/hard levels take turns), `critique` (the oracle critic's, in the
    MathCritique format), `refined` (the corrected solution: the reference, which keeps
    every step before the first wrong one), `answer` (gold), `error_kind`,
    `first_wrong_step` (1-based), `difficulty`, `split`, `task` (the generator's task
    index: `generate_problem(task, split, difficulty)` rebuilds the problem), and
    `messages`, the chat form for SFT (the critic prompt, then the critique as the
    assistant's reply). Tasks are distinct and drawn with `seed`.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if split not in TASKS_PER_SPLIT:
        raise ValueError(f"split must be one of {sorted(TASKS_PER_SPLIT)}, got {split!r}")
    rng = random.Random(f"evol-math-critique-data|{seed}|{split}")
    tasks = rng.sample(range(TASKS_PER_SPLIT[split]), min(n, TASKS_PER_SPLIT[split]))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(out, "w", encoding="utf-8") as handle:
        for i, task in enumerate(tasks):
            difficulty = LEVELS[i % len(LEVELS)]
            problem = generate_problem(task, split, difficulty)
            kinds = ERROR_KINDS[i % len(ERROR_KINDS) :] + ERROR_KINDS[: i % len(ERROR_KINDS)]
            flawed = next((f for kind in kinds if (f := make_flawed(problem, kind, rng)) is not None), None)
            if flawed is None:
                continue
            critique = OracleCritic(problem).critique(problem.question, flawed.text).render()
            messages = [
                *critique_messages(problem.question, flawed.text),
                {"role": "assistant", "content": critique},
            ]
            record = {
                "question": problem.question,
                "solution": flawed.text,
                "critique": critique,
                "refined": problem.solution,
                "answer": problem.answer,
                "error_kind": flawed.kind,
                "first_wrong_step": flawed.first_wrong_step,
                "difficulty": difficulty,
                "split": split,
                "task": task,
                "messages": messages,
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
    return written
