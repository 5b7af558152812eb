"""What the math explore strategies (`critique_refine`, `guided`) share.

Both run `evol/MathCritique-v0`-like envs (a `guidance` task option, a `problem` with a
reference solution) and turn the episodes they ran into training samples of one shape:
the plain question, as evaluation shows it (`TaskBook.facts(...).prompt`: the env's
instruction and problem text without any hint, critique or gold prefix), answered by one
correct solution. Which episodes give a sample (`keep_correct`):

- an unguided episode right at its first attempt: that attempt (`original`);
- an episode right after critiques (critique-refine, or a teacher under interactive
  guidance): its last attempt (`refinement`);
- a guided episode right at its first attempt: that attempt (`guided`); under state reset
  the gold prefix the env gave and the model's continuation together.

A refinement or guided sample with fewer than `min_number_ratio` times the numbers of the
reference solution is not kept: it reaches the gold answer without the work
(`copies_answer`). The per-iteration summary (`explore_summary`) and the held-out and
held-in accuracy by difficulty (`report_accuracy`, after each evaluation) go to the run's
metrics.jsonl, with PNG plots.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import envs
from envs.math.answers import extract_answer
from envs.math.line_tokens import number_tokens
from evol.trajectory import Trajectory, episode_key, final_attempts, read_trajectories

GUIDANCE_OPTIONS = ("guidance", "prefix_steps")


def check_math_config(config: Any, strategy: str) -> None:
    """Refuse envs without math guidance options and learn objectives other than sft."""
    for env_id in config.envs:
        env_class = envs.env_class(env_id)
        if "guidance" not in env_class.option_params or not hasattr(env_class, "problem"):
            raise ValueError(
                f"envs: explore {strategy} needs math envs with guidance options and a reference "
                f"solution (evol/MathCritique-v0); {env_id} is not one"
            )
    if config.learn != "sft":
        raise ValueError(
            f"learn: explore {strategy} writes only the kept (correct) samples; learn them with sft, "
            f"not {config.learn!r}"
        )


class MathExplorer:
    """What the math strategies share: the papers' defaults for the config's nulls (8 samples
    a question, every correct sample kept), a held-in evaluation, the checks of
    `check_math_config`, and accuracy by difficulty after each evaluation."""

    name = "math"
    defaults = {"samples_per_task": 8, "keep_per_task": "all"}
    held_in = True

    def check(self, config: Any) -> None:
        check_math_config(config, self.name)

    def evaluated(self, loop: Any, stage: str, iteration: int) -> None:
        report_accuracy(loop, stage, iteration)


# ---- the copy filter -------------------------------------------------------------------
def count_numbers(text: str) -> int:
    """The numbers a solution writes, read as the math envs read them (`1,200` is one)."""
    return sum(len(number_tokens(line)) for line in text.splitlines())


def copies_answer(solution: str, reference: str, min_ratio: float) -> bool:
    """Whether `solution` writes fewer than `min_ratio` times the numbers of `reference`: it
    reaches the answer without the work, copying the answer it was told or shown."""
    return count_numbers(solution) < min_ratio * count_numbers(reference)


# ---- tasks, replayed locally ---------------------------------------------------------------
def unguided(options: dict[str, Any]) -> dict[str, Any]:
    """Task options without the guidance ones: the plain question."""
    return {key: value for key, value in options.items() if key not in GUIDANCE_OPTIONS}


def question_key(env_id: str, seed: Any, options: dict[str, Any]) -> str:
    """One question, however it was guided."""
    return json.dumps([env_id, seed, unguided(options)], sort_keys=True, default=str)


@dataclass
class TaskFacts:
    """A task as a trainer needs it: the plain prompt, its difficulty, the reference solution,
    and the gold lines the env gives under state reset with the options asked (else none)."""

    prompt: list[dict[str, Any]]
    difficulty: str
    reference: str
    lines: list[str]
    prefix: list[str]


class TaskBook:
    """Replays task resets on local envs built with the run's env kwargs (cached per task)."""

    def __init__(self, env_kwargs: dict[str, dict[str, Any]]):
        self.env_kwargs = env_kwargs
        self._envs: dict[str, Any] = {}
        self._facts: dict[str, TaskFacts] = {}

    def facts(self, env_id: str, seed: Any, options: dict[str, Any]) -> TaskFacts:
        key = json.dumps([env_id, seed, options], sort_keys=True, default=str)
        if key not in self._facts:
            env = self._envs.get(env_id)
            if env is None:
                env = self._envs[env_id] = envs.make(env_id, **self.env_kwargs.get(env_id, {}))
            prefix: list[str] = []
            if options.get("guidance") == "state_reset":
                _, info = env.reset(seed=seed, options=dict(options))
                prefix = list(env.problem.lines[: info.get("prefix_steps", 0)])
            observation, info = env.reset(seed=seed, options=unguided(options))
            problem = env.problem
            prompt = [
                {"role": "system", "content": info["instruction"]},
                {"role": "user", "content": observation},
            ]
            difficulty = str(info.get("difficulty") or problem.difficulty or "unknown")
            self._facts[key] = TaskFacts(prompt, difficulty, problem.solution, list(problem.lines), prefix)
        return self._facts[key]

    def labels(self, specs: Iterable[Any]) -> dict[str, tuple[str, str]]:
        """`question_key` -> (env id, difficulty) of each question of `specs` (episode specs)."""
        return {
            question_key(s.env, s.seed, s.options): (s.env, self.facts(s.env, s.seed, s.options).difficulty)
            for s in specs
        }

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


# ---- which episodes give a sample ------------------------------------------------------------
def attempts(trajectory: Trajectory) -> list[str]:
    """The agent's replies that were attempts (an action with a final answer), in order."""
    replies = [m["content"] for m in trajectory.messages if m["role"] == "assistant"]
    return [
        str(reply).strip()
        for reply, action in zip(replies, trajectory.actions)
        if action and extract_answer(action, fallback_last_number=False) is not None
    ]


def keep_correct(trajectory: Trajectory, book: TaskBook, min_ratio: float) -> tuple[str | None, str]:
    """`(solution, kind)` of a finished episode: the solution to train on (None when nothing
    is kept) and why — original, refinement, guided, or, not kept: wrong, copy."""
    texts = attempts(trajectory)
    if not trajectory.success or not texts or not trajectory.completed:
        return None, "wrong"
    options = trajectory.task.get("options") or {}
    facts = book.facts(trajectory.env, trajectory.task.get("seed"), options)
    solution = "\n".join([*facts.prefix, texts[-1]])
    guided = options.get("guidance", "none") != "none"
    kind = "refinement" if len(texts) > 1 else "guided" if guided else "original"
    if kind != "original" and copies_answer(solution, facts.reference, min_ratio):
        return None, "copy"
    return solution, kind


def kept_sample(source: Trajectory, book: TaskBook, solution: str, sample: int, kind: str) -> Trajectory:
    """The training sample: the plain question (no hint) answered by `solution`."""
    options = unguided(source.task.get("options") or {})
    seed = source.task.get("seed")
    facts = book.facts(source.env, seed, options)
    return Trajectory(
        env=source.env,
        task={"seed": seed, "options": options},
        messages=[*facts.prompt, {"role": "assistant", "content": solution}],
        actions=[solution],
        rewards=[1.0],
        reward=1.0,
        success=True,
        turns=1,
        agent=source.agent,
        sample=sample,
        key=episode_key(source.env, seed, options, sample),
        outcome={"kept": kind, "episode": source.key, "difficulty": facts.difficulty},
    )


def finished_episodes(path: Path, keys: set[str]) -> list[Trajectory]:
    """The final attempt of every episode of `keys` in the trajectory file `path`."""
    if not path.exists():
        return []
    return final_attempts(t for t in read_trajectories(path) if t.key in keys)


def write_samples(path: Path, samples: Iterable[Trajectory]) -> None:
    """Write the kept samples whole (a rerun rewrites the file from the episodes)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(sample.to_json() + "\n" for sample in samples))
    os.replace(partial, path)


class SharedAgent:
    """A policy several rollouts share: an engine's `close()` leaves it open; `release()` frees it."""

    def __init__(self, agent: Any):
        self._agent = agent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._agent, name)

    def close(self) -> None:
        pass

    def release(self) -> None:
        self._agent.close()


# ---- the iteration's summary -------------------------------------------------------------------
def explore_summary(
    questions: dict[str, tuple[str, str]], samples: list[Trajectory], episodes: list[Trajectory]
) -> dict[str, dict[str, Any]]:
    """Per env: questions, episodes and generated tokens, kept samples and kept per 1,000
    tokens (exploration efficiency), coverage (share of questions with a kept sample), the
    distribution of kept (correct) samples per question, distinct kept solutions per covered
    question (diversity), and coverage by difficulty. `questions`: key -> (env, difficulty)."""
    per_question: dict[str, list[str]] = defaultdict(list)
    for sample in samples:
        per_question[question_key(sample.env, sample.task.get("seed"), sample.task["options"])].append(
            " ".join(sample.messages[-1]["content"].split())
        )
    summary = {}
    for env_id in sorted({env for env, _ in questions.values()}):
        keys = [key for key, (env, _) in questions.items() if env == env_id]
        ran = [t for t in episodes if t.env == env_id]
        tokens = sum(t.tokens for t in ran)
        kept = sum(len(per_question[key]) for key in keys)
        covered = [key for key in keys if per_question[key]]
        by_difficulty: dict[str, dict[str, Any]] = {}
        for difficulty in sorted({questions[key][1] for key in keys}):
            group = [key for key in keys if questions[key][1] == difficulty]
            hit = sum(bool(per_question[key]) for key in group)
            by_difficulty[difficulty] = {
                "questions": len(group),
                "kept": sum(len(per_question[key]) for key in group),
                "coverage": hit / len(group),
            }
        summary[env_id] = {
            "questions": len(keys),
            "episodes": len(ran),
            "generated_tokens": tokens,
            "kept": kept,
            "kept_per_1k_tokens": 1000 * kept / tokens if tokens else 0.0,
            "coverage": len(covered) / len(keys) if keys else 0.0,
            "correct_counts": count_histogram(len(per_question[key]) for key in keys),
            "distinct_correct_per_question": (
                sum(len(set(per_question[key])) for key in covered) / len(covered) if covered else 0.0
            ),
            "by_difficulty": by_difficulty,
        }
    return summary


def count_histogram(counts: Iterable[int]) -> dict[str, int]:
    """{correct samples: questions with that many}, every count from 0 to the largest."""
    tally = Counter(counts)
    return {str(n): tally.get(n, 0) for n in range(max(tally, default=0) + 1)}


def record_summary(loop: Any, iteration_dir: Path, strategy: str, summary: dict[str, Any]) -> None:
    """`iteration_dir/explore_summary.json`, one metrics row per env, and the count plots."""
    (iteration_dir / "explore_summary.json").write_text(json.dumps(summary, indent=2))
    for env_id, row in summary["envs"].items():
        loop.metric({"stage": iteration_dir.name, "env": env_id, "explore": strategy, **row})
    histograms = {}
    for env_id, row in summary["envs"].items():
        if "correct_counts_before" in row:
            histograms[f"round 0: {env_id}"] = row["correct_counts_before"]
            histograms[f"after resampling: {env_id}"] = row["correct_counts"]
        else:
            histograms[f"kept: {env_id}"] = row["correct_counts"]
    plot_correct_counts(histograms, iteration_dir / "correct_counts.png", f"{iteration_dir.name}: {strategy}")
    plot_run_correct_counts(loop.run_dir)


def plot_correct_counts(histograms: dict[str, dict[str, int]], out: Path, title: str) -> None:
    """Bars of questions per number of correct samples (the long tail on the left)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    width = 0.8 / max(1, len(histograms))
    figure, axes = plt.subplots(figsize=(6.5, 3.6))
    for j, (label, histogram) in enumerate(histograms.items()):
        shift = (j - (len(histograms) - 1) / 2) * width
        axes.bar([int(n) + shift for n in histogram], list(histogram.values()), width=width, label=label)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("correct samples kept per question")
    axes.set_ylabel("questions")
    axes.set_title(title)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def plot_run_correct_counts(run_dir: Path) -> None:
    """`run_dir/correct_counts.png`: each iteration's distribution of kept samples per question."""
    histograms = {}
    for path in sorted(run_dir.glob("iter_*/explore_summary.json"), key=lambda p: int(p.parent.name[5:])):
        for env_id, row in json.loads(path.read_text())["envs"].items():
            histograms[f"{path.parent.name}: {env_id}"] = row["correct_counts"]
    if histograms:
        plot_correct_counts(histograms, run_dir / "correct_counts.png", "kept samples per question")


# ---- accuracy by difficulty ---------------------------------------------------------------------
def accuracy_by_difficulty(trajectories: Iterable[Trajectory], book: TaskBook) -> dict[str, dict[str, float]]:
    """{env: {difficulty: success rate, ..., "all": rate}} of evaluated episodes."""
    groups: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for trajectory in trajectories:
        facts = book.facts(trajectory.env, trajectory.task.get("seed"), trajectory.task.get("options") or {})
        groups[trajectory.env][facts.difficulty].append(bool(trajectory.success))
        groups[trajectory.env]["all"].append(bool(trajectory.success))
    return {
        env_id: {level: sum(hits) / len(hits) for level, hits in sorted(by_level.items())}
        for env_id, by_level in groups.items()
    }


def report_accuracy(loop: Any, stage: str, iteration: int) -> None:
    """Held-out (and held-in, where evaluated) accuracy of `stage` by difficulty: one metrics
    row per env and `accuracy_by_difficulty.png` over the stages so far."""
    book = TaskBook(loop.config.env_kwargs)
    splits = {"held_out": loop.run_dir / "eval" / stage, "held_in": loop.held_in_dir(stage)}
    rates: dict[str, dict[str, dict[str, float]]] = {}
    try:
        for split, folder in splits.items():
            path = folder / "trajectories.jsonl"
            if path.exists():
                rates[split] = accuracy_by_difficulty(final_attempts(read_trajectories(path)), book)
    finally:
        book.close()
    for env_id in loop.config.envs:
        by_split = {split: rows[env_id] for split, rows in rates.items() if env_id in rows}
        loop.metric(
            {"stage": stage, "iteration": iteration, "env": env_id, "accuracy_by_difficulty": by_split}
        )
    plot_accuracy_by_difficulty(loop.run_dir / "metrics.jsonl", loop.run_dir / "accuracy_by_difficulty.png")


def plot_accuracy_by_difficulty(metrics_path: Path, out: Path) -> None:
    """Accuracy per stage, one line per split and difficulty (the last row of a stage counts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points: dict[tuple[str, str, str], dict[str, float]] = {}
    for line in Path(metrics_path).read_text().splitlines():
        row = json.loads(line)
        for split, by_level in row.get("accuracy_by_difficulty", {}).items():
            for level, rate in by_level.items():
                points.setdefault((split, level, row["env"]), {})[row["stage"]] = rate
    if not points:
        return
    several = len({env_id for _, _, env_id in points}) > 1
    table = {f"{split} {level}" + (f" ({env_id})" if several else ""): rates
             for (split, level, env_id), rates in points.items()}  # fmt: skip
    stages = list(dict.fromkeys(stage for rates in table.values() for stage in rates))
    figure, axes = plt.subplots(figsize=(max(5, 1.1 * len(stages) + 2), 3.8))
    for label, rates in sorted(table.items()):
        style = "-" if label.startswith("held_out") else "--"
        axes.plot(stages, [rates.get(s, float("nan")) * 100 for s in stages], style, marker="o", label=label)
    axes.set_ylim(-2, 102)
    axes.set_ylabel("accuracy (%)")
    axes.set_xlabel("stage")
    axes.set_title("accuracy by difficulty (held-out solid, held-in dashed)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
