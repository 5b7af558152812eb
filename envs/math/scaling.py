"""Test-time scaling for math: majority vote and pass@k over samples, before and after critique-refine.

The math family's evaluation report (registered in `envs.registry.BUILTIN_REPORTS`: `evol eval`
writes it as `test_time.json`, its curves as `test_time.png`; `evol eval --refine R --critic
SPEC` sets the env kwargs `refine_kwargs` gives, `evol` building the critic a spec names).
`scaling_report(trajectories)` reads `evol/MathCritique-v0` trajectories (N samples a task,
e.g. from `evol eval --samples N`) and reports, over the tasks, accuracy@1 (the mean
correctness of one sample), majority-vote accuracy and pass@k, for the first attempts
("before" critique-refine: without critique) and for the final attempts ("after": with
critique). `by_difficulty` has the curves MathCritique's test-time figure plots: maj@k
(the expected accuracy of a majority vote over k of the samples) and pass@k against k,
without and with critique, over all tasks and per difficulty; `critiques` counts the
critiques given and those the critic wrote unreadably (a model critic's reply that is no
critique is reported as such, never as "no errors").

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

import itertools
import random
from collections import Counter, defaultdict
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


LEVEL_ORDER = ("easy", "medium", "hard")
MAJORITY_SUBSETS = 256  # k-subsets a maj@k averages over when there are more (a seeded sample)


def refine_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    """The env kwargs of `evol eval --refine R --critic C`: R critique-then-refine rounds with
    critic C (`"oracle"`, or an agent spec `evol` turns into the critic model); none without
    `--refine`. A ValueError names a flag given wrong."""
    from envs.math.critique_env import MAX_REFINE_ROUNDS, MathCritiqueEnv

    refine, critic = options.get("refine") or 0, options.get("critic") or "oracle"
    if not 0 <= refine <= MAX_REFINE_ROUNDS:
        raise ValueError(f"--refine must be from 0 to {MAX_REFINE_ROUNDS}, got {refine}")
    if not refine:
        if critic != "oracle":
            raise ValueError(f"--critic {critic} needs --refine R (the critique-then-refine rounds)")
        return {}
    kwargs: dict[str, Any] = {"critic": critic, "refine_rounds": refine}
    if refine + 1 > MathCritiqueEnv.max_turns:  # each round adds a turn
        kwargs["max_turns"] = refine + 1
    return kwargs


def majority_vote(answers: Iterable[str | None]) -> str | None:
    """The most frequent answer up to equivalence (`50%` and `0.5` vote together); ties go
    to the answer seen first; None answers do not vote; None if nobody voted."""
    answers = list(answers)
    winner = _vote(answer_classes(answers))
    return None if winner is None else answers[winner]


def answer_classes(answers: list[str | None]) -> list[int | None]:
    """For each answer, the index of the first answer equivalent to it (None for None)."""
    firsts: list[int] = []  # the first answer of each class
    keys: dict[Any, int] = {}
    classes: list[int | None] = []
    for i, answer in enumerate(answers):
        if answer is None:
            classes.append(None)
            continue
        key = _answer_key(answer)
        if key not in keys:
            keys[key] = next((f for f in firsts if answers_match(answer, answers[f])), i)
            if keys[key] == i:
                firsts.append(i)
        classes.append(keys[key])
    return classes


def _vote(classes: Iterable[int | None]) -> int | None:
    """The class with the most votes, ties to the one voted for first; None if nobody voted."""
    counts = Counter(c for c in classes if c is not None)
    return max(counts, key=counts.__getitem__) if counts else None  # a Counter keeps first-seen order


def majority_at_k(classes: list[int | None], right: set[int], k: int, seed: str = "") -> float:
    """maj@k: the expected correctness of a majority vote over k of the samples (`classes`:
    each sample's answer class, `right`: the classes of right answers), over every k-subset,
    or over `MAJORITY_SUBSETS` of them drawn with `seed` when there are more. A tie counts as
    the share of right answers among the tied ones (a vote that breaks ties at random)."""
    n = len(classes)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if not right:
        return 0.0
    if comb(n, k) <= MAJORITY_SUBSETS:
        subsets: Iterable[tuple[int, ...]] = itertools.combinations(range(n), k)
    else:
        rng = random.Random(f"{seed}|{k}")
        subsets = (rng.sample(range(n), k) for _ in range(MAJORITY_SUBSETS))
    credits = []
    for subset in subsets:
        counts = Counter(classes[i] for i in subset if classes[i] is not None)
        most = max(counts.values(), default=0)
        tied = [c for c, count in counts.items() if count == most]
        credits.append(sum(c in right for c in tied) / len(tied) if tied else 0.0)
    return sum(credits) / len(credits)


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
    """The gold answer of every task (see `task_facts`)."""
    return {key: facts["gold"] for key, facts in task_facts(trajectories, env_kwargs).items()}


def task_facts(
    trajectories: Iterable[Trajectory], env_kwargs: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The gold answer and difficulty of every task: what the env that ran it recorded
    (`outcome`), else (files written before outcomes were recorded) by replaying its reset
    in a local env."""
    import envs

    made: dict[str, Any] = {}
    facts: dict[str, dict[str, Any]] = {}
    for trajectory in trajectories:
        key = task_key(trajectory)
        if key in facts:
            continue
        recorded = getattr(trajectory, "outcome", None) or {}
        if recorded.get("gold_answer") is not None and "difficulty" in recorded:
            facts[key] = {"gold": recorded["gold_answer"], "difficulty": recorded["difficulty"]}
            continue
        env = made.get(trajectory.env)
        if env is None:
            env = made[trajectory.env] = envs.make(trajectory.env, **(env_kwargs or {}))
        _, info = env.reset(seed=trajectory.task.get("seed"), options=trajectory.task.get("options"))
        gold = recorded.get("gold_answer")
        facts[key] = {"gold": env.gold_answer if gold is None else gold, "difficulty": info.get("difficulty")}
    for env in made.values():
        env.close()
    return facts


def scaling_report(
    trajectories: Iterable[Trajectory],
    ks: Iterable[int] | None = None,
    gold: Mapping[str, str] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Accuracy@1, majority-vote accuracy and pass@k, before and after critique-refine, and
    the maj@k and pass@k curves by difficulty.

    Trajectories of envs without a gold answer (not `evol/MathCritique-v0`-like) are left
    out, and so are failed attempts (`error`). `ks` defaults to 1, 2, 4, ... up to the
    fewest samples of any task; `gold` maps task keys to gold answers (default: recorded).
    Returns `{"tasks", "samples", "ks", "before": {...}, "after": {...},
    "fixed_by_refinement", "broken_by_refinement", "by_difficulty": {"all" | level:
    {"tasks", "before": {"accuracy@1", "majority", "pass@k", "maj@k"}, "after": ...}},
    "critiques": {"critic", "given", "unparsable"}, "notes", "figure", "per_task"}`; the
    rates are over tasks. "before" is each sample's first attempt (without critique),
    "after" its last (with critique, where a critic was set). `figure` is the curves as
    panels of series (`evol.evaluate` draws and tabulates it).
    """
    by_task: dict[str, list[Trajectory]] = defaultdict(list)
    for trajectory in trajectories:
        if trajectory.error is None and _has_gold(trajectory.env):
            by_task[task_key(trajectory)].append(trajectory)
    if not by_task:
        return {"tasks": 0, "samples": 0, "before": {}, "after": {}, "per_task": []}
    for group in by_task.values():
        group.sort(key=_sample_index)  # `majority` gives a tie to the earlier sample: the same on every run
    facts = task_facts([group[0] for group in by_task.values()], env_kwargs)
    for key, answer in (gold or {}).items():
        if key in facts:
            facts[key]["gold"] = answer
    fewest = min(len(group) for group in by_task.values())
    ks = sorted({k for k in (ks or _powers_of_two(fewest)) if 1 <= k <= fewest})
    per_task = [_task_row(key, group, facts[key], ks) for key, group in by_task.items()]
    samples = sum(row["samples"] for row in per_task)
    report: dict[str, Any] = {"tasks": len(per_task), "samples": samples, "ks": ks}
    for stage in ("before", "after"):
        report[stage] = {key: value for key, value in _stage(per_task, stage, ks).items() if key != "maj@k"}
    report["fixed_by_refinement"] = sum(row["fixed"] for row in per_task) / samples
    report["broken_by_refinement"] = sum(row["broken"] for row in per_task) / samples
    groups = {"all": per_task}
    levels = {row["difficulty"] for row in per_task if row["difficulty"] is not None}
    for level in sorted(levels, key=lambda d: (LEVEL_ORDER.index(d) if d in LEVEL_ORDER else 99, d)):
        groups[level] = [row for row in per_task if row["difficulty"] == level]
    report["by_difficulty"] = {
        name: {"tasks": len(rows), **{stage: _stage(rows, stage, ks) for stage in ("before", "after")}}
        for name, rows in groups.items()
    }
    outcomes = [getattr(t, "outcome", None) or {} for group in by_task.values() for t in group]
    critiques = {
        "critic": _critic_name(env_kwargs, outcomes),
        "given": sum(o.get("critiques", 0) for o in outcomes),
        "unparsable": sum(o.get("unparsable_critiques", 0) for o in outcomes),
    }
    report["critiques"] = critiques
    report["notes"] = _notes(critiques)
    kwargs = env_kwargs or {}
    critic_set = kwargs.get("critic") is not None and kwargs.get("refine_rounds", 2) > 0
    report["figure"] = _figure(report["by_difficulty"], ks, critiqued=critic_set or critiques["given"] > 0)
    report["per_task"] = per_task
    return report


def _task_row(key: str, group: list[Trajectory], facts: dict[str, Any], ks: list[int]) -> dict[str, Any]:
    """One task's samples: their first and final answers, what is right, maj@k per k."""
    gold = facts["gold"]
    attempts = [attempt_answers(t) for t in group]
    first = [a[0] if a else None for a in attempts]
    final = [a[-1] if a else None for a in attempts]
    row: dict[str, Any] = {
        "task": key,
        "gold": gold,
        "difficulty": facts["difficulty"],
        "samples": len(group),
    }
    for stage, answers in (("before", first), ("after", final)):
        correct = [answers_match(answer, gold) for answer in answers]
        classes = answer_classes(answers)
        right = {c for c in set(classes) if c is not None and answers_match(answers[c], gold)}
        winner = _vote(classes)
        row[stage] = {
            "answers": answers,
            "correct": sum(correct),
            "majority_correct": winner in right,
            "maj@k": {k: majority_at_k(classes, right, k, seed=key) for k in ks},
        }
    row["fixed"] = sum(not answers_match(a, gold) and answers_match(b, gold) for a, b in zip(first, final))
    row["broken"] = sum(answers_match(a, gold) and not answers_match(b, gold) for a, b in zip(first, final))
    return row


def _stage(rows: list[dict[str, Any]], stage: str, ks: list[int]) -> dict[str, Any]:
    """A stage's rates over `rows` (tasks)."""
    return {
        "accuracy@1": _mean(row[stage]["correct"] / row["samples"] for row in rows),
        "majority": _mean(row[stage]["majority_correct"] for row in rows),
        "pass@k": {k: _mean(pass_at_k(row["samples"], row[stage]["correct"], k) for row in rows) for k in ks},
        "maj@k": {k: _mean(row[stage]["maj@k"][k] for row in rows) for k in ks},
    }


def _critic_name(env_kwargs: Mapping[str, Any] | None, outcomes: list[Mapping[str, Any]]) -> str | None:
    """The critic the run had: its spec or name where the run's kwargs say, else what the env recorded."""
    critic = (env_kwargs or {}).get("critic")
    if isinstance(critic, str):
        return critic
    if critic is not None:
        return str(getattr(critic, "spec", None) or getattr(critic, "name", None) or type(critic).__name__)
    recorded = sorted({str(o["critic"]) for o in outcomes if o.get("critic")})
    return ", ".join(recorded) or None


def _notes(critiques: Mapping[str, Any]) -> list[str]:
    given, unparsable = critiques["given"], critiques["unparsable"]
    if not given:
        return []
    note = f"critic {critiques['critic']}: {given} critiques"
    if unparsable:
        note += (
            f", {unparsable} of them unparsable (no step-by-step critique could be read; the actor was "
            "shown the reply as such, never as 'no errors')"
        )
    return [note]


def _figure(curves: Mapping[str, Any], ks: list[int], critiqued: bool) -> dict[str, Any]:
    """maj@k and pass@k against k, without and with critique, a panel per difficulty."""
    stages = [("before", "without critique"), *([("after", "with critique")] if critiqued else [])]
    panels = []
    for name, group in curves.items():
        series = {
            f"{metric} {label}": [group[stage][metric][k] for k in ks]
            for metric in ("maj@k", "pass@k")
            for stage, label in stages
        }
        tasks = group["tasks"]
        panels.append(
            {"title": f"{name} ({tasks} task{'s' if tasks != 1 else ''})", "x": ks, "series": series}
        )
    return {
        "title": "Test-time scaling: accuracy against samples per question",
        "xlabel": "samples per question (k)",
        "xname": "k",
        "ylabel": "accuracy",
        "panels": panels,
    }


def _sample_index(trajectory: Trajectory) -> tuple[int, str]:
    index = trajectory.key.rsplit("|", 1)[-1] if trajectory.key else ""
    return (int(index), "") if index.isdigit() else (0, index)


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
