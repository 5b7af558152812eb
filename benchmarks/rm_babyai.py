"""A reward model learned from the platform's own rollouts, then used for Best-of-N on BabyAI.

    python benchmarks/rm_babyai.py [--out benchmarks/results] [--quick]

1. The policy: BabyAI's scripted expert made weak by noise: each turn, with probability
   `--noise`, a uniformly random one of the listed actions instead of the expert's. (The tiny
   model after a short behaviour cloning is too weak and too slow to sample on 2 CPU cores
   for a fair number of K-sample tasks; the noisy expert gives episodes that succeed about
   two times in three at the defaults, with failures of many kinds.)
2. Rollouts: K episodes of each BabyAI *train* task; pairs per task (a successful or
   higher-reward episode against a worse one, whole episodes: `evol.trainers.pairs`).
3. `evol train rm` (TRL's RewardTrainer) trains the `tiny` model with a scoring head on them;
   a fifth of the train tasks is held out and its pairs give the pairwise accuracy.
4. On *test*-split tasks (never seen in training) N episodes each: plain sampling (the
   success of one sample), Best-of-N with the RM (`evol.rewards.best_of_n`), Best-of-N with
   the oracle (the env's reward); plus the RM's pairwise accuracy on test-task pairs.

Prints one table; writes `rm_babyai.json` and `rm_babyai.png` (`rm_babyai_quick.*` with
`--quick`) in `--out` and the run (rollouts, pairs, the RM) in `--work`. The full run is sized
for <= 10 minutes on 2 CPU cores; `--quick` (~2 minutes) checks the script, not a result.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.base import Agent, AgentInput, SamplingParams  # noqa: E402
from agents.tiny import build_tiny_model  # noqa: E402
from evol.rewards.best_of_n import best_of_n  # noqa: E402
from evol.rewards.classifier import ClassifierRM  # noqa: E402
from evol.rollout import RolloutEngine, task_specs  # noqa: E402
from evol.runs import run_specs  # noqa: E402
from evol.trainers.config import from_mapping  # noqa: E402
from evol.trainers.pairs import pairs_from_trajectories  # noqa: E402
from evol.trainers.rm import RMConfig, RMTrainer, pairwise_accuracy  # noqa: E402
from evol.trajectory import read_trajectories  # noqa: E402

ENV = "evol/BabyAI-v0"
SIZES = {
    # train tasks x K, test tasks x N, RM epochs, RM max_length
    "full": {"train_tasks": 120, "k": 6, "test_tasks": 60, "n": 6, "epochs": 2, "max_length": 384},
    "quick": {"train_tasks": 24, "k": 4, "test_tasks": 16, "n": 4, "epochs": 1, "max_length": 256},
}


class NoisyExpert(Agent):
    """The env's expert action, or with probability `noise` a random listed action."""

    needs_env = True
    name = "noisy-expert"

    def __init__(self, noise: float, seed: int = 0):
        self.noise = noise
        self.rng = random.Random(seed)

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        replies = []
        for item in inputs:
            valid = [a for a in item.info.get("valid_actions") or [] if a != "check available actions"]
            samples = []
            for _ in range(sampling.n):
                if valid and self.rng.random() < self.noise:
                    samples.append(self.rng.choice(valid))
                else:
                    samples.append(item.env.expert_action())
            replies.append(samples)
        return replies


def rollouts(
    path: Path, split: str, tasks: int, samples: int, noise: float, seed: int, max_turns: int
) -> list:
    engine = RolloutEngine(
        NoisyExpert(noise, seed), agent_name="noisy-expert", max_turns=max_turns, concurrency=16
    )
    run_specs(engine, task_specs([ENV], tasks, split, samples), path)
    return list(read_trajectories(path))


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["plain sampling", f"BoN-{result['n']} RM", f"BoN-{result['n']} oracle"]
    values = [result["test"][k] * 100 for k in ("plain_success", "rm_success", "oracle_success")]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    bars = left.bar(labels, values, color=["#8C8C8C", "#4C72B0", "#55A868"])
    left.bar_label(bars, labels=[f"{v:.1f}%" for v in values])
    left.set_ylim(0, 110)
    left.set_ylabel("success on held-out test tasks (%)")
    left.set_title(f"BabyAI, {result['test']['tasks']} test tasks, N = {result['n']}")
    accuracies = [result["rm"]["eval_accuracy"], result["rm"]["test_accuracy"]]
    bars = right.bar(["held-out train tasks", "test tasks"], [a * 100 for a in accuracies], color="#4C72B0")
    right.bar_label(bars, labels=[f"{a:.1%}" for a in accuracies])
    right.axhline(50, color="grey", linestyle="--", linewidth=1)
    right.set_ylim(0, 110)
    right.set_ylabel("pairwise accuracy (%)")
    right.set_title("tiny RM on unseen-task pairs")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="results directory")
    parser.add_argument("--work", default="runs/rm_babyai", help="run directory (rollouts, pairs, the RM)")
    parser.add_argument("--quick", action="store_true", help="a ~2-minute smoke run")
    parser.add_argument("--noise", type=float, default=0.8, help="share of random actions of the policy")
    parser.add_argument("--max-turns", type=int, default=8, help="turns per episode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 <= args.noise <= 1:
        parser.error("--noise must be in [0, 1]")
    size = SIZES["quick" if args.quick else "full"]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = Path(args.work) / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    times: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        times[name] = round(now - since, 1)
        return now

    t = started
    train = rollouts(
        work / "train.jsonl", "train", size["train_tasks"], size["k"], args.noise, args.seed, args.max_turns
    )
    test = rollouts(
        work / "test.jsonl", "test", size["test_tasks"], size["n"], args.noise, args.seed + 1, args.max_turns
    )
    t = lap("rollouts", t)
    base = work / "base"
    if not (base / "config.json").exists():
        corpus = [m["content"] for tr in train[:40] for m in tr.messages]
        build_tiny_model(base, corpus, seed=args.seed)
    config = from_mapping(
        RMConfig,
        {
            "model": str(base),
            "data": [str(work / "train.jsonl")],
            "output_dir": str(work / "rm"),
            "pairing": "whole",
            "pairs_per_task": 4,
            "eval_fraction": 0.2,
            "split_seed": args.seed,
            "rm": {
                "epochs": size["epochs"],
                "batch_size": 8,
                "learning_rate": 5e-4,
                "max_length": size["max_length"],
                "logging_steps": 5,
                "seed": args.seed,
            },
        },
    )
    trained = RMTrainer(config, log=print).train()
    t = lap("train_rm", t)
    rm = ClassifierRM(trained.model_dir, batch_size=16)
    test_pairs = pairs_from_trajectories(test, "whole", pairs_per_task=4)
    for pair in test_pairs:  # as in training: the agent's messages up to its last reply
        for side in ("chosen", "rejected"):
            last = max(i for i, m in enumerate(pair[side]) if m["role"] == "assistant")
            pair[side] = pair[side][: last + 1]
    test_accuracy = pairwise_accuracy(rm, test_pairs)
    bon = best_of_n(test, rm)
    rm.close()
    lap("best_of_n", t)
    summary = bon["envs"][ENV]
    result = {
        "settings": {**size, "noise": args.noise, "max_turns": args.max_turns, "seed": args.seed},
        "policy": f"BabyAI expert with {args.noise:.0%} random actions",
        "n": size["n"],
        "rm": {**trained.metrics, "test_accuracy": test_accuracy, "test_pairs": len(test_pairs)},
        "train_rollouts": {
            "episodes": len(train),
            "success": sum(t.success for t in train) / max(1, len(train)),
        },
        "test": summary,
        "seconds": {**times, "total": round(time.perf_counter() - started, 1)},
        "load_average": os.getloadavg(),
    }
    name = "rm_babyai_quick" if args.quick else "rm_babyai"
    (out / f"{name}.json").write_text(json.dumps(result, indent=2))
    plot(result, out / f"{name}.png")
    metrics = result["rm"]
    print(
        f"\n## Reward model from BabyAI rollouts ({result['policy']}; "
        f"{size['train_tasks']} train tasks x {size['k']})\n\n"
        "| measure | value |\n|---|---|\n"
        f"| RM pairwise accuracy, held-out train tasks | {metrics['eval_accuracy']:.1%} "
        f"({metrics['eval_pairs']} pairs, {metrics['eval_tasks']} tasks) |\n"
        f"| RM pairwise accuracy, test tasks | {test_accuracy:.1%} ({len(test_pairs)} pairs) |\n"
        f"| plain sampling success, {summary['tasks']} test tasks | {summary['plain_success']:.1%} |\n"
        f"| Best-of-{size['n']} with the RM | {summary['rm_success']:.1%} |\n"
        f"| Best-of-{size['n']} with the oracle | {summary['oracle_success']:.1%} |\n"
        f"\ntimes (s): {result['seconds']}; wrote {out / (name + '.json')}, {out / (name + '.png')}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
