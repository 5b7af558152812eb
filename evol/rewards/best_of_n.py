"""Best-of-N at test time: N whole episodes of each task, one kept by a reward model.

Best-of-N here is per episode: an env's episode is a sequence of turns whose later
observations depend on earlier actions, and a turn cannot be re-drawn without replaying the
env to that point (the env contract has no snapshot/restore), so the N candidates are N full
episodes of the same task (same env, seed and options; samples 0..N-1), and the one the RM
scores highest is what the agent submits. That is the usual test-time Best-of-N, and what
`evol train rm` trains a trajectory RM for (`pairing: whole`).

An episode goes to the RM as (conversation, answer): its messages up to the agent's last
reply, that reply being the answer (`episode_input`; the env's messages after it are dropped,
as in training). All candidates of a run are scored in one batched `RewardModel.score` call.

Three ways to pick from the same N episodes, reported side by side (`best_of_n`):
- plain sampling: no pick, the success of one sample (the mean over all N samples);
- RM: the candidate with the highest RM score (an unscorable one, `None`, ranks last; ties
  go to the lower sample index);
- oracle: the candidate with the highest env reward (success first): the ceiling of any pick.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from evol.rewards.base import Message, RewardModel
from evol.trainers.pairs import task_identity
from evol.trajectory import Trajectory

ORACLE = "oracle"


def episode_input(messages: list[Message]) -> tuple[list[Message], str]:
    """(conversation, answer) of an episode: everything before the agent's last reply, and that reply."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    if last < 0:
        return list(messages), ""
    return list(messages[:last]), str(messages[last].get("content") or "")


def _pick(candidates: list[Trajectory], key: Any) -> Trajectory | None:
    usable = [t for t in candidates if t.error is None]
    if not usable:
        return None
    return max(sorted(usable, key=lambda t: t.sample), key=key)


def best_of_n(trajectories: list[Trajectory], rm: RewardModel | None = None) -> dict[str, Any]:
    """Per env, the success and mean reward of plain sampling, of the RM's pick (with `rm`) and
    of the oracle's pick over the N samples of each task; `tasks` lists every task's picks."""
    groups: dict[str, list[Trajectory]] = defaultdict(list)
    for trajectory in trajectories:
        groups[task_identity(trajectory)].append(trajectory)
    scores: dict[str, float | None] = {}
    if rm is not None:
        scored = [t for group in groups.values() for t in group if t.error is None]
        inputs = [episode_input(t.messages) for t in scored]
        values = rm.score([c for c, _ in inputs], [a for _, a in inputs]) if inputs else []
        if len(values) != len(scored):
            raise ValueError(f"the RM returned {len(values)} scores for {len(scored)} episodes")
        scores = {t.key: v for t, v in zip(scored, values)}

    def rm_key(t: Trajectory) -> tuple[int, float]:
        value = scores.get(t.key)
        return (0, 0.0) if value is None else (1, float(value))

    def oracle_key(t: Trajectory) -> tuple[int, float]:
        return (int(bool(t.success)), float(t.reward))

    by_env: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for identity, group in sorted(groups.items()):
        picks = {"oracle": _pick(group, oracle_key)}
        if rm is not None:
            picks["rm"] = _pick(group, rm_key)
        by_env[group[0].env].append(
            {
                "task": identity,
                "samples": len(group),
                "plain_success": sum(bool(t.success) for t in group) / len(group),
                "plain_reward": sum(float(t.reward) for t in group) / len(group),
                **{
                    f"{name}_{what}": (
                        None if pick is None else (pick.sample if what == "sample" else value(pick))
                    )
                    for name, pick in picks.items()
                    for what, value in (
                        ("sample", None),
                        ("success", lambda t: bool(t.success)),
                        ("reward", lambda t: float(t.reward)),
                    )
                },
                "rm_scores": ({str(t.sample): scores.get(t.key) for t in group} if rm is not None else None),
            }
        )
    envs = {}
    for env_id, rows in by_env.items():
        n = len(rows)
        summary = {
            "tasks": n,
            "samples": max(r["samples"] for r in rows),
            "plain_success": sum(r["plain_success"] for r in rows) / n,
            "plain_reward": sum(r["plain_reward"] for r in rows) / n,
        }
        for name in ("rm", "oracle") if rm is not None else ("oracle",):
            summary[f"{name}_success"] = sum(bool(r[f"{name}_success"]) for r in rows) / n
            summary[f"{name}_reward"] = sum(r[f"{name}_reward"] or 0.0 for r in rows) / n
        envs[env_id] = summary
    return {"rm": getattr(rm, "name", None), "envs": envs, "tasks": dict(by_env)}


def bon_table(result: dict[str, Any], title: str = "") -> str:
    """Success (mean reward) of plain sampling, BoN with the RM and BoN with the oracle, per env."""
    with_rm = result.get("rm") is not None
    head = ["env", "tasks", "N", "plain sampling"] + (["BoN-RM"] if with_rm else []) + ["BoN-oracle"]
    lines = [f"## {title}", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for env_id, row in result["envs"].items():
        cells = [env_id, str(row["tasks"]), str(row["samples"])]
        for name in ("plain",) + (("rm",) if with_rm else ()) + ("oracle",):
            cells.append(f"{row[f'{name}_success']:.1%} ({row[f'{name}_reward']:.3f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nsuccess (mean reward) of the episode each method keeps\n"


def plot_bon(result: dict[str, Any], path: str | Path, title: str = "Best-of-N") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [("plain", "plain sampling", "#8C8C8C")]
    if result.get("rm") is not None:
        methods.append(("rm", "BoN-RM", "#4C72B0"))
    methods.append(("oracle", "BoN-oracle", "#55A868"))
    names = list(result["envs"])
    width = 0.8 / len(methods)
    figure, axes = plt.subplots(figsize=(max(4, 2.2 * len(names) + 2), 3.8))
    for i, (key, label, colour) in enumerate(methods):
        rates = [result["envs"][name][f"{key}_success"] * 100 for name in names]
        bars = axes.bar(
            [j + (i - (len(methods) - 1) / 2) * width for j in range(len(names))],
            rates,
            width,
            label=label,
            color=colour,
        )
        axes.bar_label(bars, labels=[f"{r:.0f}%" for r in rates], fontsize=8)
    axes.set_xticks(range(len(names)), names)
    axes.set_ylim(0, 110)
    axes.set_ylabel("success (%)")
    axes.set_title(title)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_bon(result: dict[str, Any], out: str | Path, title: str) -> dict[str, Path]:
    """best_of_n.json, .md and .png in `out`."""
    out = Path(out)
    paths = {"json": out / "best_of_n.json", "md": out / "best_of_n.md", "png": out / "best_of_n.png"}
    paths["json"].write_text(json.dumps(result, indent=2))
    paths["md"].write_text(bon_table(result, title))
    plot_bon(result, paths["png"], title)
    return paths
