"""Evaluation reports: success per env as JSON, a Markdown table and a PNG bar chart."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evol.trajectory import Trajectory


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


def write_report(trajectories: list[Trajectory], out_dir: str | Path, agent: str) -> dict[str, Any]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(trajectories)
    (out / "results.json").write_text(json.dumps({"agent": agent, "envs": summary}, indent=2))
    (out / "results.md").write_text(markdown_table(summary, title=f"Evaluation of {agent}"))
    plot_success(summary, out / "success.png", title=f"Success per env: {agent}")
    return summary
