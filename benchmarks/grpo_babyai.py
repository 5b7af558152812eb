"""Online GRPO against one AgentEvol iteration of the same wall time, from the same BC model.

    python benchmarks/grpo_babyai.py [--out runs/grpo_babyai] [--fast]

One self-improvement loop (`evol.trainers.loop`) on BabyAI builds the shared start: expert
trajectories -> the `tiny` model -> evaluate it untrained -> behaviour cloning (the
quickstart's BC recipe: lr 3e-3, batch 16) -> evaluate. It stops there (`iterations: 0`); its
directory is copied once per arm and the loop resumes in each copy for one iteration:

- **agentevol** (`learn: sft`): explore K samples per train task with the BC model, keep the
  successes, fine-tune on expert + kept (AgentEvol's iteration);
- **grpo** (`learn: grpo`): TRL's GRPOTrainer on the same train tasks through the env adapter
  (G episodes per task, the env's reward), stopped by `grpo.time_budget_s` = the wall time
  the agentevol arm spent exploring and learning, so both arms get the same time.

Unlike the quickstart, the agent sees whole episodes (`history_turns: null`): the GRPO
adapter trains on one token sequence per episode, and what is trained must be what is
evaluated. Both arms are evaluated greedily on the same held-out test tasks.

It prints one Markdown table (held-out success before/after, the change against BC in
points with tasks won/lost and a sign test, wall time, episodes played, tokens generated per
second, the share of rollout time spent in env steps) and writes `grpo_babyai.png` and
`grpo_babyai.json` in `--out`. `--fast` is a smoke-sized run that checks the script, not a
result. Rerunning with the same `--out` resumes; other settings there are refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from learn_objectives import figures, outcomes, phase_seconds, plot, sign_test  # noqa: E402

from evol.runs import keep_settings  # noqa: E402
from evol.trainers.grpo import GRPOSettings  # noqa: E402
from evol.trainers.loop import LoopConfig, SelfImproveTrainer  # noqa: E402
from evol.trainers.sft import TrainSettings  # noqa: E402
from evol.trajectory import read_trajectories  # noqa: E402

ENV = "evol/BabyAI-v0"
ARMS = ("agentevol", "grpo")
FAST = {"base_tasks": 12, "bc_epochs": 1.0, "explore_tasks": 4, "samples": 2, "eval_tasks": 4,
        "group": 2, "tasks_per_step": 2, "max_turns": 3}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--out", default="runs/grpo_babyai", help="output directory (default runs/grpo_babyai)")
    add("--base-tasks", type=int, default=120, help="expert episodes for BC (default 120)")
    add("--bc-epochs", type=float, default=10.0, help="BC epochs (default 10, lr 3e-3)")
    add("--explore-tasks", type=int, default=120, help="train tasks of both arms (default 120)")
    add("--samples", type=int, default=4, help="agentevol: K samples per train task (default 4)")
    add("--sft-epochs", type=float, default=1.0, help="agentevol: SFT epochs (default 1)")
    add("--sft-lr", type=float, default=1e-3, help="agentevol: SFT learning rate (default 1e-3)")
    add("--group", type=int, default=4, help="grpo: G, episodes per task (default 4)")
    add("--tasks-per-step", type=int, default=4, help="grpo: tasks per optimizer step (default 4)")
    add("--grpo-lr", type=float, default=1e-4, help="grpo: learning rate (default 1e-4)")
    add("--beta", type=float, default=0.0, help="grpo: KL beta (default 0: no reference model)")
    add("--max-turns", type=int, default=8, help="grpo: turns per episode at most (default 8)")
    add("--time-budget", type=float, default=None,
        help="grpo: seconds (default: the agentevol arm's explore + learn time)")  # fmt: skip
    add("--eval-tasks", type=int, default=200, help="held-out test tasks (default 200)")
    add(
        "--concurrency", type=int, default=100, help="episodes in flight in the loop's rollouts (default 100)"
    )
    add("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    add("--seed", type=int, default=0, help="seed of the model, sampling and training (default 0)")
    add("--fast", action="store_true", help="smoke-sized run: checks the script, not a result")
    add("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.fast:
        parser.set_defaults(**FAST)
        args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.time_budget is not None and not args.time_budget > 0:
        parser.error("--time-budget must be > 0")
    try:
        args.runs = configs(args, time_budget=args.time_budget or 1.0)
    except ValueError as error:  # refused before any work, naming the loop's field
        parser.error(str(error))
    return args


def configs(args: argparse.Namespace, time_budget: float) -> dict[str, LoopConfig]:
    progress = not args.quiet

    def train(epochs: float, lr: float) -> TrainSettings:
        return TrainSettings(epochs=epochs, learning_rate=lr, batch_size=16, warmup_ratio=0.05,
                             logging_steps=50, seed=args.seed, progress=progress)  # fmt: skip

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
        iterations=0,
        keep="success",
        keep_per_task="one",
        merge="base",
        learn_from="last",
        history_turns=None,  # whole episodes: what GRPO trains on
        instruction_in_context=False,  # the observation carries the goal and the actions
        max_new_tokens=10,  # BabyAI's longest action is 7 tokens of the tiny tokenizer
        concurrency=args.concurrency,
        seed=args.seed,
        progress=progress,
        bc_train=train(args.bc_epochs, 3e-3),
        train=train(args.sft_epochs, args.sft_lr),
        grpo=GRPOSettings(
            num_generations=args.group, prompts_per_step=args.tasks_per_step, steps=100_000,
            time_budget_s=time_budget, beta=args.beta, learning_rate=args.grpo_lr, max_turns=args.max_turns,
            max_new_tokens=10, max_episode_tokens=2048, temperature=1.0, logging_steps=1, seed=args.seed,
            progress=progress,
        ),
    )  # fmt: skip
    return {
        "shared": shared,
        "agentevol": dataclasses.replace(shared, run_dir=str(out / "agentevol"), iterations=1),
        "grpo": dataclasses.replace(shared, run_dir=str(out / "grpo"), iterations=1, learn="grpo"),
    }


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("runs", "quiet", "out", "threads")}


def branch(shared_dir: Path, run_dir: Path) -> None:
    """A copy of the shared run, in which the loop resumes with iteration 1."""
    if (run_dir / "state.json").exists():
        return
    shutil.copytree(shared_dir, run_dir, ignore=shutil.ignore_patterns("servers.log", "checkpoints"))


def rollout_figures(run_dir: Path, arm: str) -> dict[str, Any]:
    """Episodes played, tokens generated per second of rollout and the env-step share of it."""
    phases = phase_seconds(run_dir)
    if arm == "agentevol":
        explored = list(read_trajectories(run_dir / "iter_1" / "explore.jsonl"))
        env_s = sum(t.timing.get("env_s", 0.0) for t in explored)
        agent_s = sum(t.timing.get("agent_s", 0.0) for t in explored)
        seconds = phases["iter_1/explore"]
        return {
            "wall_s": round(phases["iter_1/explore"] + phases["iter_1/learn"], 1),
            "episodes": len(explored),
            "successes": sum(t.success for t in explored),
            "tokens_per_s": round(sum(t.tokens for t in explored) / seconds, 1),
            "env_share": round(env_s / (env_s + agent_s), 3) if env_s + agent_s else 0.0,
        }
    stats = json.loads((run_dir / "iter_1" / "rollout_stats.json").read_text())
    learn = phases["iter_1/learn"]
    return {
        "wall_s": round(learn, 1),
        "episodes": stats["episodes"],
        "successes": stats["successes"],
        "failed_episodes": stats["failed"],
        "tokens_per_s": round(stats["model_tokens"] / learn, 1),
        "env_share": round(stats["env_seconds"] / learn, 3),
        "generate_share": round(stats["generate_seconds"] / learn, 3),
    }


def collect(out: Path) -> list[dict[str, Any]]:
    shared = figures(out / "shared")
    bc = shared["bc"]
    rows = [{"stage": "untrained", **shared["untrained"]}, {"stage": "bc", **bc}]
    bc_outcomes = outcomes(out / "shared", "bc")
    for arm in ARMS:
        entry = figures(out / arm)["iter_1"]
        row = {"stage": f"iter_1 {arm}", **entry, **rollout_figures(out / arm, arm)}
        mine = outcomes(out / arm, "iter_1")
        row["vs_bc_points"] = round((row["success"] - bc["success"]) * 100, 1)
        row["tasks_gained"] = sum(mine.get(k, False) and not won for k, won in bc_outcomes.items())
        row["tasks_lost"] = sum(won and not mine.get(k, False) for k, won in bc_outcomes.items())
        row["sign_test_p"] = round(sign_test(row["tasks_gained"], row["tasks_lost"]), 3)
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| stage | held-out success | vs BC: points (won/lost, p) | wall s | episodes played (won) "
        "| tokens/s | env-step share |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        delta = "-"
        if "vs_bc_points" in row:
            delta = f"{row['vs_bc_points']:+.1f} (+{row['tasks_gained']}/-{row['tasks_lost']}, p={row['sign_test_p']:.2f})"
        played = f"{row['episodes']} ({row['successes']})" if "wall_s" in row else "-"
        lines.append(
            f"| {row['stage']} | {row['success']:.1%} | {delta} | {row.get('wall_s', '-')} | {played} "
            f"| {row.get('tokens_per_s', '-')} | {row.get('env_share', '-')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out, runs = Path(args.out), args.runs
    keep_settings(out, settings_of(args))
    load_before = os.getloadavg()
    if args.fast:
        print("[grpo_babyai] --fast: a smoke-sized run that checks the script, not a result", flush=True)
    started = time.perf_counter()
    print(f"[grpo_babyai] shared: expert, tiny model, BC in {runs['shared'].run_dir}", flush=True)
    SelfImproveTrainer(runs["shared"]).train()
    print("[grpo_babyai] agentevol: one iteration (explore, keep successes, SFT)", flush=True)
    branch(Path(runs["shared"].run_dir), out / "agentevol")
    SelfImproveTrainer(runs["agentevol"]).train()
    budget = args.time_budget or rollout_figures(out / "agentevol", "agentevol")["wall_s"]
    print(f"[grpo_babyai] grpo: online on the same train tasks for {budget:.0f} s", flush=True)
    branch(Path(runs["shared"].run_dir), out / "grpo")
    grpo = configs(args, time_budget=budget)["grpo"]
    SelfImproveTrainer(grpo).train()
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()
    report_path = out / "grpo_babyai.json"
    if report_path.exists():
        earlier = json.loads(report_path.read_text())
        seconds += earlier["seconds"]
        load_before = tuple(earlier["load_average"]["start"])
    rows = collect(out)
    title = (
        f"{ENV}: GRPO vs one AgentEvol iteration of the same wall time ({budget:.0f} s), from one BC model\n"
        f"({args.explore_tasks} train tasks; {args.eval_tasks} held-out test tasks, greedy)"
    )
    plot([{**row, "success": row["success"]} for row in rows], out / "grpo_babyai.png", title)
    report = {
        "env": ENV,
        "settings": settings_of(args),
        "time_budget_s": budget,
        "seconds": round(seconds, 1),
        "load_average": {
            "start": [round(x, 2) for x in load_before],
            "end": [round(x, 2) for x in load_after],
        },
        "phases": {name: phase_seconds(out / name) for name in ("shared", *ARMS)},
        "rows": rows,
    }
    report_path.write_text(json.dumps(report, indent=2))
    print(
        f"\nGRPO vs AgentEvol on {ENV}, one iteration each from the BC model ({args.eval_tasks} held-out tasks):\n"
    )
    print(markdown(rows))
    print(
        f"\n{seconds / 60:.1f} min on {os.cpu_count()} CPU cores (load average {load_before[0]:.1f} at the "
        f"start, {load_after[0]:.1f} at the end); plot {out / 'grpo_babyai.png'}, figures {report_path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
