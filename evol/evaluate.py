"""Evaluation: an agent on fixed test task sets, and the reports of what it did.

`evaluate(engine, {env_id: tasks}, out_dir, agent=...)` is the one evaluation that `evol eval`,
the trainers' per-stage evaluation and the quickstart run: it runs the test tasks (resuming
from `out_dir/trajectories.jsonl`), writes success per env as JSON, a Markdown table and a
PNG bar chart (`results.json`, `results.md`, `success.png`), and the reports the env
families register for their envs (`envs.register_report`: e.g. math's `test_time.json`,
MM-SY's `mmsy.json`), without knowing any env. A report's data may hold `figure` (panels of
curves: `{"title", "xlabel", "xname", "ylabel", "panels": [{"title", "x": [...], "series":
{label: [y, ...]}}]}`), drawn beside its JSON as PNG (`test_time.png`) and tabulated (`figure_table`),
and `notes` (lines `evol eval` prints).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.registry import EvalReport, eval_reports
from evol.rollout import EpisodeSpec, RolloutEngine, task_specs
from evol.runs import RunOutcome, run_specs
from evol.trajectory import Trajectory, final_attempts, read_trajectories

TEST_SPLIT = "test"


def summarize(trajectories: Iterable[Trajectory]) -> dict[str, dict[str, Any]]:
    """Per env: episodes, success rate, mean reward, mean turns, errors."""
    by_env: dict[str, list[Trajectory]] = defaultdict(list)
    for trajectory in trajectories:
        by_env[trajectory.env].append(trajectory)
    summary = {}
    for env_id, group in sorted(by_env.items()):
        n = len(group)
        summary[env_id] = {
            "episodes": n,
            "success_rate": sum(t.success for t in group) / n,
            "mean_reward": sum(t.reward for t in group) / n,
            "mean_turns": sum(t.turns for t in group) / n,
            "errors": sum(t.error is not None for t in group),
        }
    return summary


def markdown_table(summary: dict[str, dict[str, Any]], title: str = "") -> str:
    lines = [f"## {title}", ""] if title else []
    lines += ["| env | episodes | success | mean reward | mean turns | errors |", "|---|---|---|---|---|---|"]
    for env_id, row in summary.items():
        lines.append(
            f"| {env_id} | {row['episodes']} | {row['success_rate']:.1%} | {row['mean_reward']:.3f} "
            f"| {row['mean_turns']:.1f} | {row['errors']} |"
        )
    return "\n".join(lines) + "\n"


def plot_success(
    summary: dict[str, dict[str, Any]], path: str | Path, title: str = "Success per env"
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    rates = [summary[name]["success_rate"] * 100 for name in names]
    figure, axes = plt.subplots(figsize=(max(4, 1.6 * len(names) + 2), 3.5))
    bars = axes.bar(names, rates, color="#4C72B0")
    axes.bar_label(bars, labels=[f"{r:.0f}%" for r in rates])
    axes.set_ylim(0, 105)
    axes.set_ylabel("success (%)")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_figure(figure: Mapping[str, Any], path: str | Path) -> None:
    """Draw a report's `figure`: one panel of line plots per entry of `figure["panels"]`,
    against a log2 x axis where x is positive and spans more than one value; each series
    has its own line style and marker, so curves that coincide stay visible."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = figure["panels"]
    drawing, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels) + 0.6, 4.3), sharey=True, squeeze=False
    )
    for ax, panel in zip(axes[0], panels):
        x = list(panel["x"])
        for i, (label, y) in enumerate(panel["series"].items()):
            style, marker = SERIES_STYLES[i % len(SERIES_STYLES)]
            ax.plot(x, y, linestyle=style, marker=marker, markersize=7 - i % 4, label=label)
        if len(set(x)) > 1 and min(x) > 0:
            ax.set_xscale("log", base=2)
            ax.set_xticks(x, [str(v) for v in x])
        ax.set_title(panel["title"])
        ax.set_xlabel(figure.get("xlabel", ""))
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(figure.get("ylabel", ""))
    handles, labels = axes[0][0].get_legend_handles_labels()
    drawing.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=9)
    drawing.suptitle(figure.get("title", ""))
    drawing.tight_layout(rect=(0, 0.1, 1, 1))
    drawing.savefig(path, dpi=100)
    plt.close(drawing)


SERIES_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"))


def figure_table(figure: Mapping[str, Any]) -> str:
    """A report's `figure` as a Markdown table: a row per panel and series, a column per x."""
    xs = sorted({x for panel in figure["panels"] for x in panel["x"]})
    lines = [
        "| " + " | ".join(["panel", "curve", *(f"{figure.get('xname', 'x')}={x}" for x in xs)]) + " |",
        "|---|---|" + "---|" * len(xs),
    ]
    for panel in figure["panels"]:
        for label, ys in panel["series"].items():
            by_x = dict(zip(panel["x"], ys))
            cells = [f"{by_x[x]:.3f}" if x in by_x else "" for x in xs]
            lines.append("| " + " | ".join([panel["title"], label, *cells]) + " |")
    return "\n".join(lines) + "\n"


def write_report(trajectories: list[Trajectory], out_dir: str | Path, agent: str) -> dict[str, Any]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(trajectories)
    (out / "results.json").write_text(json.dumps({"agent": agent, "envs": summary}, indent=2))
    (out / "results.md").write_text(markdown_table(summary, title=f"Evaluation of {agent}"))
    plot_success(summary, out / "success.png", title=f"Success per env: {agent}")
    return summary


# ---- the env families' own reports -------------------------------------------------------
@dataclass
class EnvReport:
    """One family report computed for one env of a run: its data, or why it failed."""

    report: EvalReport
    env: str
    path: Path
    data: dict[str, Any] | None = None
    error: str | None = None
    figure_path: Path | None = None  # the PNG of the report's `figure`, where it has one

    def headline(self) -> dict[str, Any]:
        return {key: self.data[key] for key in self.report.headline if key in (self.data or {})}

    def table(self) -> str:
        """The report's figure as a Markdown table ("" without one)."""
        figure = (self.data or {}).get("figure")
        return figure_table(figure) if figure else ""

    def notes(self) -> list[str]:
        return list((self.data or {}).get("notes") or [])


def report_path(out: Path, report: EvalReport, env_id: str, shared: bool) -> Path:
    """`report.file`, with the env's name added when several envs of the run share the report."""
    if not shared:
        return out / report.file
    stem, dot, suffix = report.file.rpartition(".")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", env_id)
    return out / (f"{stem}.{name}.{suffix}" if dot else f"{report.file}.{name}")


def write_env_reports(
    trajectories: list[Trajectory], env_ids: Iterable[str], env_kwargs: Mapping[str, dict], out: Path
) -> list[EnvReport]:
    """Every registered report covering an env of the run, over that env's trajectories, each
    written to its file; a report that raises is kept with its error, the others go on."""
    env_ids = list(env_ids)
    written = []
    for report in eval_reports():
        covered = [env_id for env_id in env_ids if report.covers(env_id)]
        for env_id in covered:
            result = EnvReport(report, env_id, report_path(out, report, env_id, len(covered) > 1))
            try:
                result.data = report.compute(
                    [t for t in trajectories if t.env == env_id], env_kwargs.get(env_id)
                )
                result.path.write_text(json.dumps(result.data, indent=2))
                if result.data.get("figure"):
                    result.figure_path = result.path.with_suffix(".png")
                    plot_figure(result.data["figure"], result.figure_path)
            except Exception as error:  # a family's report must not lose the run's results
                result.error = f"{type(error).__name__}: {error}"
            written.append(result)
    return written


# ---- the evaluation ----------------------------------------------------------------------
@dataclass
class Evaluation:
    """What `evaluate` did: success per env (`summary`), the final attempt of every test
    episode, the run (`run.incomplete`: episodes that could not be completed) and the env
    families' reports."""

    out: Path
    summary: dict[str, dict[str, Any]]
    trajectories: list[Trajectory]
    run: RunOutcome
    reports: list[EnvReport] = field(default_factory=list)


def eval_specs(
    tasks: Mapping[str, int], samples: int = 1, options: Mapping[str, Any] | None = None
) -> list[EpisodeSpec]:
    """Test tasks 0..n-1 of each env (`tasks`: env id -> n), `samples` episodes each, with the
    task `options` (e.g. `{"difficulty": "hard"}`) in every reset."""
    return [
        spec
        for env_id, n in tasks.items()
        for spec in task_specs([env_id], n, TEST_SPLIT, samples, options=options)
    ]


def evaluate(
    engine: RolloutEngine,
    tasks: Mapping[str, int],
    out_dir: str | Path,
    *,
    agent: str,
    samples: int = 1,
    env_kwargs: Mapping[str, dict] | None = None,
    log: Callable[[str], Any] | None = None,
    specs: list[EpisodeSpec] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Run the test tasks with `engine` (closed afterwards) and write every report to `out_dir`.

    `tasks` maps env ids to how many test tasks to run; `env_kwargs` are the constructor
    kwargs the engine's envs were given (the family reports replay episodes with them);
    `log` hears the resume note of a rerun; `specs` replaces the test tasks `tasks` counts
    (a trainer's held-out set where an env has no test split of its own); `options` are task
    options added to every test task's reset (checked by the caller: `evol.rollout.check_task_options`).
    Episodes already in `out_dir/trajectories.jsonl` are not run again."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs = specs if specs is not None else eval_specs(tasks, samples, options)
    run = run_specs(engine, specs, out / "trajectories.jsonl", log)
    keys = {spec.key for spec in specs}
    trajectories = final_attempts(t for t in read_trajectories(run.path) if t.key in keys)
    summary = write_report(trajectories, out, agent)
    reports = write_env_reports(trajectories, tasks, env_kwargs or {}, out)
    return Evaluation(out, summary, trajectories, run, reports)
