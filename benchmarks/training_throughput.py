"""Training throughput: BC tokens/s on the tiny model, and one AgentEvol iteration's time
split into explore / learn / evaluate (BabyAI, through a live env server).

    python benchmarks/training_throughput.py [--base-tasks 100] [--explore-tasks 200] [--eval-tasks 50]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from evol.trainers.agentevol import AgentEvolConfig, AgentEvolTrainer
from evol.trainers.sft import TrainSettings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-tasks", type=int, default=100)
    parser.add_argument("--explore-tasks", type=int, default=200)
    parser.add_argument("--eval-tasks", type=int, default=50)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--out", default="benchmarks/results/training_throughput.json")
    args = parser.parse_args()

    settings = TrainSettings(
        epochs=args.epochs, learning_rate=3e-3, batch_size=16, progress=False, logging_steps=50
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = AgentEvolConfig(
            run_dir=str(Path(tmp) / "run"),
            envs=["evol/BabyAI-v0"],
            base_tasks=args.base_tasks,
            explore_tasks=args.explore_tasks,
            eval_tasks=args.eval_tasks,
            iterations=1,
            eval_untrained=False,
            history_turns=0,
            instruction_in_context=False,
            max_new_tokens=12,
            progress=False,
            bc_train=settings,
            train=settings,
        )
        AgentEvolTrainer(config, log=lambda _: None).train()
        rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    phases = {row["phase"]: row["seconds"] for row in rows if "phase" in row}
    learned = {row["stage"]: row for row in rows if "tokens_per_s" in row}
    bc, iteration = learned["bc"], learned["iter_1"]
    print(
        f"BC on the tiny model: {bc['tokens_per_s']:.0f} tokens/s ({bc['examples']} examples, {bc['tokens']} tokens, {bc['train_s']:.1f}s)"
    )
    split = {name: phases[f"iter_1/{name}"] for name in ("explore", "learn", "eval")}
    total = sum(split.values())
    print(
        f"one AgentEvol iteration: {total:.1f}s = "
        + " + ".join(f"{name} {seconds:.1f}s ({seconds / total:.0%})" for name, seconds in split.items())
    )
    print(
        f"  explore: {args.explore_tasks} episodes; learn: {iteration['examples']} examples, {iteration['tokens_per_s']:.0f} tokens/s; eval: {args.eval_tasks} episodes"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps({"phases": phases, "bc": bc, "iteration": iteration, "split": split}, indent=2)
    )


if __name__ == "__main__":
    main()
