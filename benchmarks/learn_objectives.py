"""Learn objectives side by side on one agent env: SFT (AgentEvol), DPO and Inverse-Q* each learn
one loop iteration from the SAME exploration data and are evaluated on the SAME held-out tasks.

    python benchmarks/learn_objectives.py [--out runs/learn_objectives] [--fast]

The shared part is one self-improvement loop (`evol.trainers.loop`) on BabyAI: expert
trajectories -> the `tiny` model -> evaluate it untrained -> behaviour cloning -> evaluate ->
iteration 1's explore phase (K samples per train task at temperature 1 with the BC model).
The run stops there (its state.json lists the finished phases); its directory is copied once
per objective and the loop resumes in each copy with `learn: sft | dpo | inverse_q`, so every
objective reads the same `iter_1/explore.jsonl`, starts from the same BC model
(`learn_from: last`: DPO and Inverse-Q* refine a policy, they cannot start from an untrained
model) and is evaluated greedily on the same held-out test tasks.

It prints a Markdown table (held-out success; the change against BC in points, in tasks won
and lost, and an exact sign test on those; mean reward; what each stage learned from;
training seconds) and writes `learn_objectives.png` and `learn_objectives.json` (settings,
phase times, load average, rows) in `--out`, beside the four run directories. The defaults
took 9.0 minutes on 2 CPU cores shared with other jobs (load average 2.8-4.4); BC, the
longest phase, ran twice as long at load ~10. `--fast` is a smoke-sized run (under a minute)
that checks the script, not a result. Rerunning with the same `--out` resumes and prints the
table again; other settings in the same `--out` are refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from evol.runs import keep_settings
from evol.trainers.dpo import DPOSettings
from evol.trainers.inverse_q import InverseQSettings
from evol.trainers.loop import LoopConfig, SelfImproveTrainer
from evol.trainers.sft import TrainSettings
from evol.trajectory import read_trajectories

ENV = "evol/BabyAI-v0"
OBJECTIVES = ("sft", "dpo", "inverse_q")
SHARED_PHASES = ("expert", "base_model", "eval/untrained", "bc", "eval/bc", "iter_1/explore")
FAST = {"base_tasks": 12, "explore_tasks": 4, "samples": 2, "eval_tasks": 4, "bc_epochs": 1.0,
        "sft_epochs": 1.0, "dpo_epochs": 1.0, "iq_epochs": 1.0}  # fmt: skip


class ExploreFinished(Exception):
    """Raised where iteration 1's learn phase would start: the shared part of the run is done."""


class StopBeforeLearn:
    """A learn step that stops the shared run before it learns; each objective's copy resumes there."""

    name = "stop"

    def check(self, config: Any) -> None:
        pass

    def learn(self, loop: Any, iteration: int, iteration_dir: Path, start: Path) -> Any:
        raise ExploreFinished


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--out", default="runs/learn_objectives", help="output directory (default runs/learn_objectives)")
    add("--base-tasks", type=int, default=120, help="expert episodes for BC (default 120)")
    add("--bc-epochs", type=float, default=10.0, help="BC epochs (default 10, lr 3e-3)")
    add("--explore-tasks", type=int, default=120, help="train tasks explored (default 120)")
    add("--samples", type=int, default=4, help="K: samples per explored task (default 4; DPO needs >= 2)")
    add("--eval-tasks", type=int, default=200, help="held-out test tasks (default 200)")
    add("--sft-epochs", type=float, default=1.0, help="SFT epochs (default 1)")
    add("--sft-lr", type=float, default=1e-3, help="SFT learning rate (default 1e-3)")
    add("--dpo-epochs", type=float, default=2.0, help="DPO epochs (default 2)")
    add("--dpo-lr", type=float, default=3e-5, help="DPO learning rate (default 3e-5)")
    add("--dpo-beta", type=float, default=0.1, help="DPO beta (default 0.1)")
    add("--iq-epochs", type=float, default=1.0, help="Inverse-Q* epochs (default 1)")
    add("--iq-lr", type=float, default=3e-5, help="Inverse-Q* learning rate (default 3e-5)")
    add("--iq-beta", type=float, default=1.0, help="Inverse-Q* beta (default 1.0)")
    add("--iq-clip", type=float, default=1.0, help="Inverse-Q* credit clip (default 1.0)")
    add("--iq-center", action="store_true", help="Inverse-Q*: centre each reply's credits")
    add("--iq-guidance", choices=("hint", "principle", "reference"), default="hint",
        help="Inverse-Q* guidance: the expert's action at the turn (default), a principle text, "
        "or a successful episode of the task")  # fmt: skip
    add("--iq-place", choices=("system", "user"), default="user",
        help="where the guidance goes (default user: after the observation)")  # fmt: skip
    add("--concurrency", type=int, default=100, help="episodes in flight (default 100)")
    add("--threads", type=int, default=1,
        help="torch CPU threads (default 1: on a busy 2-core machine 2 threads ran BC 5x slower)")  # fmt: skip
    add("--seed", type=int, default=0, help="seed of the model, sampling and training (default 0)")
    add("--fast", action="store_true", help="smoke-sized run: checks the script, not a result")
    add("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.fast:  # the smoke sizes, unless a flag names another value
        parser.set_defaults(**FAST)
        args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    try:
        args.runs = configs(args)
    except ValueError as error:  # refused before any work, naming the loop's field
        parser.error(str(error))
    return args


def configs(args: argparse.Namespace) -> dict[str, LoopConfig]:
    """The shared run's config and one per objective (the same but for `learn` and `run_dir`)."""
    progress = not args.quiet

    def settings(kind: type, epochs: float, lr: float, **extra: Any) -> Any:
        return kind(epochs=epochs, learning_rate=lr, batch_size=16, warmup_ratio=0.05,
                    logging_steps=50, seed=args.seed, progress=progress, **extra)  # fmt: skip

    out = Path(args.out)
    shared = LoopConfig(
        run_dir=str(out / "shared"),
        envs=[ENV],
        learn="sft",
        base_model="tiny",
        base_tasks=args.base_tasks,
        explore_tasks=args.explore_tasks,
        eval_tasks=args.eval_tasks,
        samples_per_task=args.samples,
        explore_temperature=1.0,
        iterations=1,
        keep="success",
        keep_per_task="one",
        merge="base",
        learn_from="last",
        pairing="first_divergence",
        pairs_per_task=1,
        history_turns=0,
        instruction_in_context=False,  # the observation carries the goal and the actions
        max_new_tokens=10,  # BabyAI's longest action is 7 tokens of the tiny tokenizer
        concurrency=args.concurrency,
        seed=args.seed,
        progress=progress,
        bc_train=settings(TrainSettings, args.bc_epochs, 3e-3),
        train=settings(TrainSettings, args.sft_epochs, args.sft_lr),
        dpo=settings(DPOSettings, args.dpo_epochs, args.dpo_lr, beta=args.dpo_beta),
        inverse_q=settings(
            InverseQSettings, args.iq_epochs, args.iq_lr, beta=args.iq_beta, credit_clip=args.iq_clip,
            center_credits=args.iq_center, guidance=args.iq_guidance, guidance_place=args.iq_place,
        ),
    )  # fmt: skip
    runs = {"shared": shared}
    for learn in OBJECTIVES:
        runs[learn] = dataclasses.replace(shared, learn=learn, run_dir=str(out / learn))
    return runs


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("runs", "quiet", "out", "threads")}


def run_shared(config: LoopConfig) -> None:
    """Expert -> base model -> eval -> BC -> eval -> iteration 1's exploration, then stop."""
    trainer = SelfImproveTrainer(config)
    trainer.objective = StopBeforeLearn()
    try:
        trainer.train()
    except ExploreFinished:
        pass
    done = json.loads((Path(config.run_dir) / "state.json").read_text())["done"]
    missing = [phase for phase in SHARED_PHASES if phase not in done]
    if missing:
        raise RuntimeError(f"the shared run did not finish {missing}")


def branch(shared_dir: Path, run_dir: Path) -> None:
    """A copy of the shared run, in which the loop resumes after iteration 1's exploration."""
    if (run_dir / "state.json").exists():
        return  # a rerun resumes the objective's own run
    shutil.copytree(shared_dir, run_dir, ignore=shutil.ignore_patterns("servers.log", "checkpoints"))


def run_objective(config: LoopConfig) -> str | None:
    """Iteration 1's learn and eval phases with `config.learn`; the reason when there was nothing to learn."""
    try:
        SelfImproveTrainer(config).train()
    except ValueError as error:  # no pairs, no guided turn: reported as a finding, not a crash
        return str(error)
    return None


def figures(run_dir: Path) -> dict[str, dict[str, Any]]:
    """{stage: success, mean_reward, episodes, examples, train_s, pairs, ...} from a run's metrics.jsonl."""
    out: dict[str, dict[str, Any]] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "stage" not in row:
            continue
        entry = out.setdefault(row["stage"], {})
        if "success_rate" in row:
            entry.update(
                success=row["success_rate"], mean_reward=row["mean_reward"], episodes=row["episodes"]
            )
        if "train_s" in row:
            entry.update(train_s=row["train_s"], examples=row["examples"])
        for key in ("pairs", "explore_kept", "inverse_q_rows"):
            if key in row:
                entry[key] = row[key]
    return out


def phase_seconds(run_dir: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {row["phase"]: row["seconds"] for row in rows if "phase" in row}


def outcomes(run_dir: Path, stage: str) -> dict[str, bool]:
    """{task: success} of one evaluation (greedy, one episode per held-out task)."""
    path = run_dir / "eval" / stage / "trajectories.jsonl"
    return {t.key: t.success for t in read_trajectories(path) if t.error is None}


def sign_test(gained: int, lost: int) -> float:
    """Two-sided exact sign test (McNemar's) of tasks won against tasks lost: the chance of a
    split at least this uneven if neither model were better."""
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(gained, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


def collect(out: Path, skipped: dict[str, str]) -> list[dict[str, Any]]:
    """The table's rows: untrained and BC (shared), then iteration 1 of each objective."""
    shared = figures(out / "shared")
    bc = shared["bc"]
    rows = [
        {"stage": "untrained", **shared["untrained"], "learned_from": "-"},
        {"stage": "bc", **bc, "learned_from": f"{bc['examples']} rows (expert turns)"},
    ]
    for learn in OBJECTIVES:
        stage = f"iter_1 {learn}"
        if learn in skipped:
            rows.append({"stage": stage, "success": None, "mean_reward": None,
                         "learned_from": f"nothing: {skipped[learn]}"})  # fmt: skip
            continue
        entry = figures(out / learn)["iter_1"]
        if learn == "sft":
            what = f"{entry['examples']} rows (expert + {entry['explore_kept']} explored successes)"
        elif learn == "dpo":
            what = f"{entry['pairs']} pairs"
        else:
            what = f"{entry['inverse_q_rows']} explored turns scored"
        rows.append({"stage": stage, **entry, "learned_from": what})
    bc_outcomes = outcomes(out / "shared", "bc")
    for row in rows[2:]:
        if row["success"] is None:
            continue
        row["vs_bc_points"] = round((row["success"] - bc["success"]) * 100, 1)
        mine = outcomes(out / row["stage"].split()[1], "iter_1")
        row["tasks_gained"] = sum(mine.get(k, False) and not won for k, won in bc_outcomes.items())
        row["tasks_lost"] = sum(won and not mine.get(k, False) for k, won in bc_outcomes.items())
        row["sign_test_p"] = round(sign_test(row["tasks_gained"], row["tasks_lost"]), 3)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| stage | held-out success | vs BC: points (tasks won/lost, sign test p) | mean reward | learned from | train s |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        measured = row["success"] is not None
        success = f"{row['success']:.1%}" if measured else "n/a"
        reward = f"{row['mean_reward']:.3f}" if measured else "n/a"
        delta = "-"
        if "vs_bc_points" in row:
            delta = (
                f"{row['vs_bc_points']:+.1f} (+{row['tasks_gained']}/-{row['tasks_lost']}, "
                f"p={row['sign_test_p']:.2f})"
            )
        train = f"{row['train_s']:.0f}" if "train_s" in row else "-"
        lines.append(f"| {row['stage']} | {success} | {delta} | {reward} | {row['learned_from']} | {train} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row["stage"] for row in rows]
    success = [(row["success"] or 0.0) * 100 for row in rows]
    figure, axes = plt.subplots(figsize=(8, 4.2))
    colours = ["#9e9e9e", "#607d8b", "#1f77b4", "#ff7f0e", "#2ca02c"]
    bars = axes.bar(names, success, color=colours[: len(rows)])
    for bar, value, row in zip(bars, success, rows):
        label = f"{value:.1f}" if row["success"] is not None else "nothing\nlearned"
        axes.text(bar.get_x() + bar.get_width() / 2, value + 1, label, ha="center")
    axes.axhline(success[1], color="#607d8b", linestyle="--", linewidth=1, label="after BC")
    axes.set_ylim(0, max(100.0, max(success) + 10))
    axes.set_ylabel("held-out success (%)")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out, runs = Path(args.out), args.runs
    keep_settings(out, settings_of(args))
    load_before = os.getloadavg()
    if args.fast:
        print("[learn_objectives] --fast: a smoke-sized run that checks the script, not a result", flush=True)
    print(f"[learn_objectives] shared: expert, BC, exploration in {runs['shared'].run_dir}", flush=True)
    started = time.perf_counter()
    run_shared(runs["shared"])
    skipped: dict[str, str] = {}
    for learn in OBJECTIVES:
        print(f"[learn_objectives] iter_1 with learn={learn} in {runs[learn].run_dir}", flush=True)
        branch(Path(runs["shared"].run_dir), Path(runs[learn].run_dir))
        reason = run_objective(runs[learn])
        if reason is not None:
            print(f"[learn_objectives] learn={learn} learned nothing: {reason}", flush=True)
            skipped[learn] = reason
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()
    report_path = out / "learn_objectives.json"
    if report_path.exists():  # a rerun that resumed: the time and load of the runs before it count too
        earlier = json.loads(report_path.read_text())
        seconds += earlier["seconds"]
        load_before = tuple(earlier["load_average"]["start"])
    rows = collect(out, skipped)
    title = (
        f"{ENV}: one loop iteration per learn objective after BC, from the same exploration\n"
        f"({args.explore_tasks} train tasks x {args.samples} samples; {args.eval_tasks} held-out test tasks, greedy)"
    )
    plot(rows, out / "learn_objectives.png", title)
    report = {
        "env": ENV,
        "settings": settings_of(args),
        "learn_from": "last",
        "seconds": round(seconds, 1),
        "load_average": {
            "start": [round(x, 2) for x in load_before],
            "end": [round(x, 2) for x in load_after],
        },
        "phases": {name: phase_seconds(out / name) for name in ("shared", *OBJECTIVES)},
        "rows": rows,
    }
    report_path.write_text(json.dumps(report, indent=2))
    print(
        f"\nOne iteration per learn objective on {ENV}, from the BC model ({args.eval_tasks} held-out test tasks):\n"
    )
    print(markdown(rows))
    print(
        f"\n{seconds / 60:.1f} min on {os.cpu_count()} CPU cores "
        f"(load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end); "
        f"plot {out / 'learn_objectives.png'}, figures {out / 'learn_objectives.json'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
