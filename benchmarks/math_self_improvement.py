"""Math self-improvement on the tiny model: vanilla, critique-in-the-loop and Guided Self-Improvement
(GSI) from the SAME start, compared on the SAME held-out test problems by difficulty.

    python benchmarks/math_self_improvement.py [--out runs/math_self_improvement] [--smoke]

1. The start (shared): the expert writes reference solutions of `--sft-tasks` generated train
   problems (train tasks 100,000 and up: none of them is an explored question), easy-heavy
   (`--sft-mix`, easy:medium:hard), a share of them (`--sft-state-reset`) as state-reset
   episodes (the question shows the first k gold lines and the expert writes the rest: the
   model learns to continue a given prefix, the skill state-reset guidance needs; a model
   pre-trained on text has it, ours learns it here). The `tiny` model's tokenizer is built on
   that text and the model is fine-tuned on it (`--start-epochs`), then evaluated greedily on
   `--eval-tasks` test problems (a third per difficulty; the test split's names are unseen in
   training) and on the `--explore-tasks` explored train questions (held-in).
2. Three loops of `--iterations` iterations, each in a copy of the start's run directory (the
   loop resumes after its BC phase, so every loop starts from the same checkpoint):
   - `vanilla`: `explore: guided` with `resample: none`: `--vanilla-samples` samples per
     question, keep the correct ones;
   - `critique`: `explore: critique_refine` with the oracle critic: `--samples` samples per
     question, each wrong one critiqued and refined up to `--refine-rounds` times;
   - `gsi`: `explore: guided`, `guidance: state_reset`: `--samples` samples per question, a
     question with fewer than `--threshold` correct resampled for up to `--resample-rounds`
     rounds of `--samples`, the first k gold lines given (k = 1, 2, ... round by round).
   Budget: the defaults give every loop at most 12 attempts per question and iteration
   (vanilla 12 samples; critique 4 samples x up to 3 attempts; GSI 4 samples x up to 3
   rounds); the generated tokens each loop spent are measured and reported.
   Each iteration fine-tunes the START model (the papers' "fine-tune from the base model")
   on that iteration's kept samples only (`KeptSamplesSFT`: the loop's own sft objective
   would add the start's SFT data, which would swamp the few self-generated samples).
3. The table (printed, `math_self_improvement.md`): per loop and iteration, held-out greedy
   accuracy by difficulty, held-in accuracy, kept samples (and those of medium and hard
   questions), coverage of the explored questions overall and on the hard tail (medium and
   hard), attempts, generated tokens and kept samples per 1,000 tokens. The figure
   (`math_self_improvement.png`): held-out accuracy by difficulty, tail coverage and
   sampling cost. `math_self_improvement.json` holds the settings, rows, phase times, wall
   time and load average.

Rerunning with the same `--out` resumes and prints the table again; other settings in the same
`--out` are refused. `--smoke` is a pipeline check in under a minute, not a result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/math_self_improvement.py` from anywhere
    sys.path.insert(0, str(ROOT))

from agents.scripted import ExpertAgent  # noqa: E402
from envs.math.generator import generate_problem  # noqa: E402
from envs.math.problems import LEVELS  # noqa: E402
from evol.rollout import EpisodeSpec, RolloutEngine  # noqa: E402
from evol.runs import keep_settings, run_specs  # noqa: E402
from evol.trainers.data import load_trajectories, select  # noqa: E402
from evol.trainers.loop import EvolServeProcess, LoopConfig, SelfImproveTrainer  # noqa: E402
from evol.trainers.sft import TrainResult, TrainSettings, fine_tune  # noqa: E402
from evol.trajectory import final_attempts, read_trajectories  # noqa: E402

ENV = "evol/MathCritique-v0"
ENV_KWARGS = {"difficulty": "mixed", "max_turns": 1, "refine_rounds": 0}  # one attempt unless critiqued
LOOPS = ("vanilla", "critique", "gsi")
LABELS = {"vanilla": "vanilla (keep correct)", "critique": "critique-in-the-loop (oracle)",
          "gsi": "GSI (state reset)"}  # fmt: skip
SFT_TASK_OFFSET = 100_000  # the start's SFT problems: train tasks from here, never explored
TAIL = ("medium", "hard")
SMOKE = {"sft_tasks": 24, "start_epochs": 1.0, "explore_tasks": 3, "eval_tasks": 3, "samples": 1,
         "vanilla_samples": 2, "refine_rounds": 1, "resample_rounds": 1, "threshold": 1, "iterations": 1,
         "max_new_tokens": 12, "epochs": 1.0}  # fmt: skip
TAG = "[math_self_improvement]"


def say(text: str) -> None:
    print(f"{TAG} {text}", flush=True)


# ---- the learn step: the start model fine-tuned on the kept samples ---------------------------
class KeptSamplesSFT:
    """`learn: sft` on this iteration's kept samples alone, from the start model."""

    name = "sft"

    def check(self, config: Any) -> None:
        pass

    def learn(self, loop: Any, iteration: int, iteration_dir: Path, start: Path) -> TrainResult:
        kept = select(load_trajectories(loop.explore_files(iteration)), "success")
        loop.metric({"stage": f"iter_{iteration}", "env": ENV, "explore_kept": len(kept)})
        if not kept:  # nothing to learn: the iteration's model is the start model
            loop.log(
                f"[{loop.tag}] iter_{iteration}: no correct sample kept, the model stays the start model"
            )
            shutil.copytree(start, iteration_dir / "model", dirs_exist_ok=True)
            return TrainResult(iteration_dir / "model", examples=0, tokens=0, truncated=0, seconds=0.0)
        return fine_tune(start, loop.examples(kept), iteration_dir, loop.config.train)


# ---- arguments and configs -----------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add(
        "--out",
        default="runs/math_self_improvement",
        help="output directory (default runs/math_self_improvement)",
    )
    add(
        "--results",
        default=None,
        help="where the .json/.md/.png go (default: --out; benchmarks/results for the reported run)",
    )
    add("--sft-tasks", type=int, default=2400, help="reference solutions the start learns (default 2400)")
    add("--sft-mix", default="4,1,1", help="easy,medium,hard shares of the start's problems (default 4,1,1)")
    add(
        "--sft-state-reset",
        type=float,
        default=0.25,
        help="share of the start's examples given as state-reset episodes (default 0.25)",
    )
    add("--start-epochs", type=float, default=3.0, help="epochs of the start's SFT (default 3, lr 3e-3)")
    add(
        "--explore-tasks",
        type=int,
        default=60,
        help="train questions explored each iteration, a third per difficulty (default 60)",
    )
    add(
        "--eval-tasks",
        type=int,
        default=240,
        help="held-out test problems, a third per difficulty (default 240)",
    )
    add("--vanilla-samples", type=int, default=12, help="vanilla: samples per question (default 12)")
    add("--samples", type=int, default=4, help="critique and GSI: samples per question (default 4)")
    add("--refine-rounds", type=int, default=2, help="critique: refinements of a wrong sample (default 2)")
    add("--resample-rounds", type=int, default=2, help="GSI: resampling rounds (default 2)")
    add("--threshold", type=int, default=4, help="GSI: resample questions with fewer correct (default 4)")
    add("--iterations", type=int, default=3, help="iterations of each loop (default 3)")
    add("--temperature", type=float, default=0.7, help="exploration temperature (default 0.7; eval greedy)")
    add(
        "--epochs",
        type=float,
        default=2.0,
        help="epochs of each iteration's SFT on its kept samples (default 2)",
    )
    add("--lr", type=float, default=1e-3, help="learning rate of each iteration's SFT (default 1e-3)")
    add("--max-new-tokens", type=int, default=160, help="tokens of one solution (default 160)")
    add("--concurrency", type=int, default=48, help="episodes in flight (default 48)")
    add(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a busy 2-core machine more threads ran slower)",
    )
    add("--seed", type=int, default=0, help="seed of the model, sampling and training (default 0)")
    add("--smoke", action="store_true", help="a pipeline check in under a minute, not a result")
    add("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(**SMOKE)
        args = parser.parse_args(argv)
    try:
        args.mix = [int(x) for x in args.sft_mix.split(",")]
    except ValueError:
        parser.error(f"--sft-mix: {args.sft_mix!r} is not three integers easy,medium,hard")
    if len(args.mix) != 3 or min(args.mix) < 0 or sum(args.mix) == 0:
        parser.error(f"--sft-mix: {args.sft_mix!r} is not three shares >= 0, not all 0")
    if not 0 <= args.sft_state_reset < 1:
        parser.error("--sft-state-reset must be in [0, 1)")
    for name in ("sft_tasks", "threads", "iterations"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    try:
        args.runs = configs(args)
    except ValueError as error:  # refused before any work, naming the loop's field
        parser.error(str(error))
    return args


def configs(args: argparse.Namespace, start_model: str = "tiny") -> dict[str, LoopConfig]:
    """The start's config and one per loop. `start_model`: the loops' base model (the start's
    checkpoint once it exists; the preset while the configs are only checked)."""
    progress = not args.quiet
    out = Path(args.out)

    def train(epochs: float, lr: float) -> TrainSettings:
        return TrainSettings(epochs=epochs, learning_rate=lr, batch_size=16, warmup_ratio=0.05,
                             logging_steps=50, seed=args.seed, progress=progress)  # fmt: skip

    start = LoopConfig(
        run_dir=str(out / "start"),
        envs=[ENV],
        explore="guided",
        resample="none",
        learn="sft",
        base_model="tiny",
        expert_data=[],
        explore_tasks=args.explore_tasks,
        eval_tasks=args.eval_tasks,
        held_in_tasks=args.explore_tasks,
        samples_per_task=args.samples,
        env_kwargs={ENV: dict(ENV_KWARGS)},
        explore_temperature=args.temperature,
        iterations=0,
        eval_untrained=False,
        learn_from="base",
        merge="base",
        instruction_in_context=False,  # the observation says the format; shorter sequences
        max_new_tokens=args.max_new_tokens,
        concurrency=args.concurrency,
        seed=args.seed,
        progress=progress,
        bc_train=train(args.start_epochs, 3e-3),
        train=train(args.epochs, args.lr),
    )
    loop = dict(base_model=start_model, iterations=args.iterations)
    return {
        "start": start,
        "vanilla": dataclasses.replace(start, run_dir=str(out / "vanilla"), samples_per_task=args.vanilla_samples,
                                       **loop),
        "critique": dataclasses.replace(start, run_dir=str(out / "critique"), explore="critique_refine",
                                        critic="oracle", refine_rounds=args.refine_rounds, **loop),
        "gsi": dataclasses.replace(start, run_dir=str(out / "gsi"), resample="guided", guidance="state_reset",
                                   resample_threshold=args.threshold, resample_rounds=args.resample_rounds, **loop),
    }  # fmt: skip


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {
        k: v for k, v in vars(args).items() if k not in ("runs", "mix", "quiet", "out", "results", "threads")
    }


# ---- the start ------------------------------------------------------------------------------------
def sft_specs(count: int, mix: list[int], state_reset: float) -> list[EpisodeSpec]:
    """The start's problems: train tasks from SFT_TASK_OFFSET, levels by `mix`, every
    1/`state_reset`-th one (spread evenly) as a state-reset episode with k gold lines."""
    levels = [level for level, share in zip(LEVELS, mix) for _ in range(share)]
    specs = []
    for i in range(count):
        task = SFT_TASK_OFFSET + i
        level = levels[i % len(levels)]
        options: dict[str, Any] = {"task": task, "split": "train", "difficulty": level}
        if int((i + 1) * state_reset) > int(i * state_reset):
            lines = len(generate_problem(task, "train", level).lines)
            if lines > 1:
                options.update(guidance="state_reset", prefix_steps=1 + i % (lines - 1))
        specs.append(EpisodeSpec(ENV, task, options, 0))
    return specs


def collect_sft_data(args: argparse.Namespace, path: Path) -> None:
    """The expert's reference solutions of the start's problems (resumable)."""
    engine = RolloutEngine(ExpertAgent(), env_kwargs={ENV: dict(ENV_KWARGS)}, progress=not args.quiet)
    run_specs(engine, sft_specs(args.sft_tasks, args.mix, args.sft_state_reset), path)


def run_loop(config: LoopConfig, url: str) -> None:
    trainer = SelfImproveTrainer(dataclasses.replace(config, urls=[url]))
    trainer.objective = KeptSamplesSFT()
    trainer.train()


def branch(start_dir: Path, run_dir: Path) -> None:
    """A copy of the start's run, in which the loop resumes after BC: the same start for every loop."""
    if (run_dir / "state.json").exists():
        return  # a rerun resumes the loop's own run
    shutil.copytree(start_dir, run_dir, ignore=shutil.ignore_patterns("servers.log", "checkpoints"))


# ---- the figures ----------------------------------------------------------------------------------
def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def attempts_of(run_dir: Path, stage: str, explore: str) -> int:
    """Solutions written in an iteration's exploration (a refinement is one more)."""
    folder = run_dir / stage
    files = (
        [folder / "episodes.jsonl"] if explore == "critique_refine" else sorted(folder.glob("round_*.jsonl"))
    )
    return sum(t.turns for path in files if path.exists() for t in final_attempts(read_trajectories(path)))


def stage_rows(run_dir: Path, loop: str) -> list[dict[str, Any]]:
    """One row per stage of a run: accuracy by difficulty, and what its exploration gave."""
    rows: dict[str, dict[str, Any]] = {}
    for row in metrics(run_dir):
        stage = row.get("stage")
        if stage is None:
            continue
        entry = rows.setdefault(stage, {"loop": loop, "stage": stage})
        if "accuracy_by_difficulty" in row:
            entry["held_out"] = row["accuracy_by_difficulty"].get("held_out", {})
            entry["held_in"] = row["accuracy_by_difficulty"].get("held_in", {}).get("all")
        if "explore" in row:
            by = row["by_difficulty"]
            tail = [by[level] for level in TAIL if level in by]
            entry.update(
                kept=row["kept"],
                kept_tail=sum(b["kept"] for b in tail),
                coverage=row["coverage"],
                coverage_by_difficulty={level: b["coverage"] for level, b in by.items()},
                coverage_tail=(sum(b["coverage"] * b["questions"] for b in tail) / max(1, sum(b["questions"] for b in tail))),
                episodes=row["episodes"],
                attempts=attempts_of(run_dir, stage, row["explore"]),
                generated_tokens=row["generated_tokens"],
                kept_per_1k_tokens=row["kept_per_1k_tokens"],
                correct_counts=row["correct_counts"],
            )  # fmt: skip
            if "coverage_before_resampling" in row:
                entry["coverage_before_resampling"] = row["coverage_before_resampling"]
            if "refinements_kept" in row:
                entry.update(originals_kept=row["originals_kept"], refinements_kept=row["refinements_kept"],
                             refinements_rejected_as_copies=row["refinements_rejected_as_copies"])  # fmt: skip
        if "train_s" in row:
            entry.update(train_s=row["train_s"], examples=row["examples"])
    return [row for row in rows.values() if "held_out" in row]


def collect(out: Path, iterations: int) -> list[dict[str, Any]]:
    rows = [dict(stage_rows(out / "start", "start")[0], stage="start")]
    for loop in LOOPS:
        rows += [row for row in stage_rows(out / loop, loop) if row["stage"] != "bc"][:iterations]
    return rows


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| loop | stage | held-out easy | medium | hard | all | held-in | kept (medium+hard) | coverage | "
            "tail coverage (medium+hard) | attempts | generated tokens | kept / 1k tokens |")  # fmt: skip
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        acc = row["held_out"]
        explored = "kept" in row
        lines.append(
            f"| {row['loop']} | {row['stage']} | {pct(acc.get('easy'))} | {pct(acc.get('medium'))} | "
            f"{pct(acc.get('hard'))} | {pct(acc.get('all'))} | {pct(row.get('held_in'))} | "
            + (
                f"{row['kept']} ({row['kept_tail']}) | {pct(row['coverage'])} | {pct(row['coverage_tail'])} | "
                f"{row['attempts']} | {row['generated_tokens']} | {row['kept_per_1k_tokens']:.2f} |"
                if explored
                else "- | - | - | - | - | - |"
            )
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"start": "#9e9e9e", "vanilla": "#1f77b4", "critique": "#ff7f0e", "gsi": "#2ca02c"}
    figure, (acc, tail, cost) = plt.subplots(1, 3, figsize=(15, 4.4))
    last = {row["loop"]: row for row in rows}  # each loop's last iteration
    groups = [*LEVELS, "all"]
    width = 0.8 / len(last)
    for j, (loop, row) in enumerate(last.items()):
        values = [100 * row["held_out"].get(level, 0.0) for level in groups]
        xs = [g + (j - (len(last) - 1) / 2) * width for g in range(len(groups))]
        name = "start" if loop == "start" else f"{LABELS[loop]}, {row['stage']}"
        acc.bar(xs, values, width=width, color=colours[loop], label=name)
    acc.set_xticks(range(len(groups)), groups)
    acc.set_ylim(bottom=0)
    acc.set_ylabel("held-out accuracy (%, greedy)")
    acc.set_title("held-out test problems by difficulty")
    acc.legend(fontsize=7)
    for loop in LOOPS:
        mine = [row for row in rows if row["loop"] == loop and "kept" in row]
        steps = [int(row["stage"].split("_")[1]) for row in mine]
        tail.plot(steps, [100 * row["coverage_tail"] for row in mine], "-o", color=colours[loop],
                  label=f"{LABELS[loop]}: medium+hard")  # fmt: skip
        tail.plot(steps, [100 * row["coverage_by_difficulty"].get("easy", 0.0) for row in mine], ":",
                  marker="s", color=colours[loop], alpha=0.6, label=f"{LABELS[loop]}: easy")  # fmt: skip
        cost.bar([s + (LOOPS.index(loop) - 1) * 0.27 for s in steps],
                 [row["generated_tokens"] / 1000 for row in mine], width=0.27, color=colours[loop],
                 label=LABELS[loop])  # fmt: skip
        for s, row in zip(steps, mine):
            cost.text(s + (LOOPS.index(loop) - 1) * 0.27, row["generated_tokens"] / 1000,
                      f"{row['kept']}", ha="center", va="bottom", fontsize=7)  # fmt: skip
    tail.set_xlabel("iteration")
    tail.set_ylabel("questions with >= 1 kept sample (%)")
    tail.set_title("coverage of the explored questions (the tail: medium+hard)")
    tail.set_ylim(-2, 102)
    tail.legend(fontsize=6)
    cost.set_xlabel("iteration")
    cost.set_ylabel("generated tokens (thousands)")
    cost.set_title("sampling cost (label: samples kept)")
    cost.legend(fontsize=7)
    from matplotlib.ticker import MaxNLocator

    for axes in (tail, cost):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axes in (acc, tail, cost):
        axes.grid(alpha=0.3, axis="y")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


class LoadSampler:
    """The 1-minute load average every `every` seconds while the benchmark runs."""

    def __init__(self, every: float = 15.0):
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self.samples.append(os.getloadavg()[0])
        return {"start": round(self.samples[0], 2), "end": round(self.samples[-1], 2),
                "mean": round(sum(self.samples) / len(self.samples), 2), "max": round(max(self.samples), 2)}  # fmt: skip


def phase_seconds(run_dir: Path) -> dict[str, float]:
    return {row["phase"]: row["seconds"] for row in metrics(run_dir) if "phase" in row}


def resumed_runs(done_path: Path, report_path: Path) -> list[dict[str, Any]]:
    """The seconds and load of the earlier runs of this `--out` (a rerun resumes them)."""
    if not done_path.exists():
        return []
    done = json.loads(done_path.read_text())
    if "runs" in done:
        return done["runs"]
    load = json.loads(report_path.read_text())["load_average"] if report_path.exists() else {}
    return [{"seconds": done["seconds"], "load_average": load}]


def combined_load(runs: list[dict[str, Any]]) -> dict[str, float]:
    loads = [run["load_average"] for run in runs if run["load_average"]]
    weights = [run["seconds"] for run in runs if run["load_average"]]
    mean = sum(w * load["mean"] for w, load in zip(weights, loads)) / max(sum(weights), 1e-9)
    return {"start": loads[0]["start"], "end": loads[-1]["end"], "mean": round(mean, 2),
            "max": max(load["max"] for load in loads)}  # fmt: skip


# ---- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    results = Path(args.results) if args.results else out
    results.mkdir(parents=True, exist_ok=True)
    keep_settings(out, settings_of(args))
    if args.smoke:
        say("--smoke: a pipeline check with tiny sizes, not a result")
    load = LoadSampler()
    started = time.perf_counter()
    runs = args.runs
    sft_path = out / "sft.jsonl"
    say(f"the start's SFT data: {args.sft_tasks} reference solutions -> {sft_path}")
    collect_sft_data(args, sft_path)
    runs["start"] = dataclasses.replace(runs["start"], expert_data=[str(sft_path)])
    server = EvolServeProcess([ENV], "--capacity", "1024", "--env-kwargs", json.dumps({ENV: ENV_KWARGS}),
                              log_path=out / "servers.log")  # fmt: skip
    try:
        say(
            f"the start: tiny model, SFT ({args.start_epochs:g} epochs), greedy eval in {runs['start'].run_dir}"
        )
        run_loop(runs["start"], server.url)
        start_model = str(Path(runs["start"].run_dir).resolve() / "bc" / "model")
        loops = configs(args, start_model)
        for loop in LOOPS:
            config = dataclasses.replace(loops[loop], expert_data=[str(sft_path)])
            say(f"loop {loop} ({LABELS[loop]}): {args.iterations} iterations in {config.run_dir}")
            branch(Path(runs["start"].run_dir), Path(config.run_dir))
            run_loop(config, server.url)
    finally:
        server.stop()
    seconds = time.perf_counter() - started
    load_average = load.stop()
    report_path = results / "math_self_improvement.json"
    runs_log = resumed_runs(out / "done.json", report_path)
    runs_log.append({"seconds": round(seconds, 1), "load_average": load_average})
    (out / "done.json").write_text(json.dumps({"runs": runs_log}, indent=2))
    seconds = sum(run["seconds"] for run in runs_log)
    load_average = combined_load(runs_log)
    rows = collect(out, args.iterations)
    title = (
        f"{ENV}: tiny model, the same start, {args.iterations} iterations per loop; {args.explore_tasks} "
        f"explored questions, {args.eval_tasks} held-out test problems (greedy)"
    )
    plot(rows, results / "math_self_improvement.png", title)
    table = markdown(rows)
    report = {
        "env": ENV,
        "settings": settings_of(args),
        "budget": {
            "vanilla": f"{args.vanilla_samples} samples per question",
            "critique": f"{args.samples} samples per question, a wrong one refined up to {args.refine_rounds} times",
            "gsi": f"{args.samples} samples per question, up to {args.resample_rounds} state-reset rounds of "
            f"{args.samples} for questions with < {args.threshold} correct",
        },
        "seconds": round(seconds, 1),
        "cpu_cores": os.cpu_count(),
        "torch_threads": args.threads,
        "load_average": load_average,
        "runs": runs_log,  # the first run, then any rerun that resumed it (each with its seconds and load)
        "phases": {name: phase_seconds(out / name) for name in ("start", *LOOPS)},
        "rows": rows,
    }
    report_path.write_text(json.dumps(report, indent=2))
    footer = (
        f"{seconds / 60:.1f} min on {os.cpu_count()} CPU cores, {args.threads} torch thread(s) "
        f"(1-minute load average: mean {load_average['mean']}, max {load_average['max']})"
    )
    (results / "math_self_improvement.md").write_text(
        f"# Math self-improvement from one start ({ENV}, tiny model)\n\n"
        f"`python benchmarks/math_self_improvement.py{' --smoke' if args.smoke else ''}`\n\n"
        f"Held-out and held-in accuracy in %, greedy; kept / coverage / attempts / tokens: that "
        f"iteration's exploration of {args.explore_tasks} train questions.\n\n{table}\n\n{footer}\n"
    )
    print(f"\n{title}\n\n{table}\n\n{footer}; {results / 'math_self_improvement.png'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
