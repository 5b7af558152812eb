"""Test-time scaling for math: majority vote and pass@k over samples, before and after critique-refine.

The math family's evaluation report (registered in `envs.registry.BUILTIN_REPORTS`: `evol eval`
writes it as `test_time.json`; `evol eval --refine R` sets the env kwargs `refine_kwargs` gives).
`scaling_report(trajectories)` reads `evol/MathCritique-v0` trajectories (N samples a task,
e.g. from `evol eval --samples N`) and reports, over the tasks, accuracy@1 (the mean
correctness of one sample), majority-vote accuracy and pass@k, for the first attempts
("before" critique-refine) and for the final attempts ("after").

Where the answers come from: a trajectory keeps the actions the env received, not its
infos, so each attempt's answer is read back from the actions with the env's own
extractor (an action without a final answer line was an invalid turn, not an attempt):
the first attempt is the first action with an answer, the final one the last. The gold
answer is the one the env that ran the episode recorded at its end (`outcome`, never shown
to the agent), or taken from `gold` (a mapping of task key to answer); only trajectories
written before outcomes were recorded fall back to replaying each task's reset locally
(`env_kwargs` must then name the same `data` file if one was used). Both attempts are judged against the gold
answer with the same equivalence the env uses, so "after" agrees with `success`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from math import comb
from typing import Any, Protocol

from envs.math.answers import answers_match, extract_answer, normalize_answer, parse_number


class Trajectory(Protocol):
    """What the report reads of a recorded episode (`evol.trajectory.Trajectory` has it)."""

    env: str
    key: str
    task: dict[str, Any]
    actions: list[str]
    error: str | None


def refine_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    """The env kwargs of `evol eval --refine R --critic C`: R critique-then-refine rounds with
    critic C; none without `--refine`."""
    if not options.get("refine"):
        return {}
    return {"critic": options.get("critic") or "oracle", "refine_rounds": options["refine"]}


def majority_vote(answers: Iterable[str | None]) -> str | None:
    """The most frequent answer up to equivalence (`50%` and `0.5` vote together); ties go
    to the answer seen first; None answers do not vote; None if nobody voted."""
    groups: list[list[str]] = []
    keys: dict[Any, int] = {}
    for answer in answers:
        if answer is None:
            continue
        key = _answer_key(answer)
        if key in keys:
            groups[keys[key]].append(answer)
            continue
        index = next((i for i, group in enumerate(groups) if answers_match(answer, group[0])), None)
        if index is None:
            groups.append([])
            index = len(groups) - 1
        groups[index].append(answer)
        keys[key] = index
    if not groups:
        return None
    return max(groups, key=len)[0]  # max keeps the first of equal lengths


def _answer_key(answer: str) -> Any:
    """A cheap identity for answers that are certainly equal (the same exact number)."""
    normalized = normalize_answer(answer)
    number = parse_number(normalized)
    if number is not None and not number.percent:
        return number.value
    return normalized


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate from `n` samples of which `c` are correct (Chen et al. 2021):
    1 - C(n - c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def task_key(trajectory: Trajectory) -> str:
    """The task a trajectory samples: its episode key without the sample index."""
    return trajectory.key.rsplit("|", 1)[0] if trajectory.key else f"{trajectory.env}|{trajectory.task}"


def attempt_answers(trajectory: Trajectory) -> list[str]:
    """The answers of a trajectory's attempts, in order (actions without one were invalid)."""
    answers = (extract_answer(action, fallback_last_number=False) for action in trajectory.actions)
    return [answer for answer in answers if answer is not None]


def gold_answers(
    trajectories: Iterable[Trajectory], env_kwargs: dict[str, Any] | None = None
) -> dict[str, str]:
    """The gold answer of every task: the one the env that ran it recorded (`outcome`), else
    (files written before outcomes were recorded) by replaying its reset in a local env."""
    import envs

    made: dict[str, Any] = {}
    gold: dict[str, str] = {}
    for trajectory in trajectories:
        key = task_key(trajectory)
        if key in gold:
            continue
        recorded = (getattr(trajectory, "outcome", None) or {}).get("gold_answer")
        if recorded is not None:
            gold[key] = recorded
            continue
        env = made.get(trajectory.env)
        if env is None:
            env = made[trajectory.env] = envs.make(trajectory.env, **(env_kwargs or {}))
        env.reset(seed=trajectory.task.get("seed"), options=trajectory.task.get("options"))
        gold[key] = env.gold_answer
    for env in made.values():
        env.close()
    return gold


def scaling_report(
    trajectories: Iterable[Trajectory],
    ks: Iterable[int] | None = None,
    gold: Mapping[str, str] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Accuracy@1, majority-vote accuracy and pass@k, before and after critique-refine.

    Trajectories of envs without a gold answer (not `evol/MathCritique-v0`-like) are left
    out. `ks` defaults to 1, 2, 4, ... up to the fewest samples of any task. Returns
    `{"tasks", "samples", "before": {...}, "after": {...}, "fixed_by_refinement",
    "broken_by_refinement", "per_task": [...]}`; the rates are over tasks.
    """
    by_task: dict[str, list[Trajectory]] = defaultdict(list)
    for trajectory in trajectories:
        if trajectory.error is None and _has_gold(trajectory.env):
            by_task[task_key(trajectory)].append(trajectory)
    if not by_task:
        return {"tasks": 0, "samples": 0, "before": {}, "after": {}, "per_task": []}
    missing = [group[0] for key, group in by_task.items() if gold is None or key not in gold]
    gold = {**(gold or {}), **(gold_answers(missing, env_kwargs) if missing else {})}
    fewest = min(len(group) for group in by_task.values())
    ks = sorted({k for k in (ks or _powers_of_two(fewest)) if 1 <= k <= fewest})
    per_task = []
    for key, group in by_task.items():
        attempts = [attempt_answers(t) for t in group]
        first = [a[0] if a else None for a in attempts]
        final = [a[-1] if a else None for a in attempts]
        row = {"task": key, "gold": gold[key], "samples": len(group)}
        for stage, answers in (("before", first), ("after", final)):
            correct = [answers_match(answer, gold[key]) for answer in answers]
            row[stage] = {
                "answers": answers,
                "correct": sum(correct),
                "majority_correct": answers_match(majority_vote(answers), gold[key]),
            }
        row["fixed"] = sum(
            not answers_match(a, gold[key]) and answers_match(b, gold[key]) for a, b in zip(first, final)
        )
        row["broken"] = sum(
            answers_match(a, gold[key]) and not answers_match(b, gold[key]) for a, b in zip(first, final)
        )
        per_task.append(row)
    samples = sum(row["samples"] for row in per_task)
    report: dict[str, Any] = {"tasks": len(per_task), "samples": samples}
    for stage in ("before", "after"):
        report[stage] = {
            "accuracy@1": _mean(row[stage]["correct"] / row["samples"] for row in per_task),
            "majority": _mean(row[stage]["majority_correct"] for row in per_task),
            "pass@k": {
                k: _mean(pass_at_k(row["samples"], row[stage]["correct"], k) for row in per_task) for k in ks
            },
        }
    report["fixed_by_refinement"] = sum(row["fixed"] for row in per_task) / samples
    report["broken_by_refinement"] = sum(row["broken"] for row in per_task) / samples
    report["per_task"] = per_task
    return report


def _has_gold(env_id: str) -> bool:
    import envs

    try:
        return hasattr(envs.env_class(env_id), "gold_answer")
    except KeyError:
        return False


def _powers_of_two(limit: int) -> list[int]:
    ks, k = [], 1
    while k <= limit:
        ks.append(k)
        k *= 2
    if ks[-1] != limit:
        ks.append(limit)
    return ks


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
