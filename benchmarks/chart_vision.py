"""A vision model trained on charts: the tiny LLaVA on ChartQA-v0 image episodes, against text models on code and tables.

    python benchmarks/chart_vision.py [--charts 300] [--eval-charts 75] [--epochs 4] [--lora] [--quick]

1. Data: the expert (`expert`, which answers from the chart's data) on the RECOGNITION
   questions (2 per chart) of `--charts` synthesised charts of the train split, once per
   mode: `image` (the rendered chart), `code` (its matplotlib code) and `table` (its data).
2. Models built from a config, no download: for image mode the tiny LLaVA of
   `agents.tiny_vision` (CLIP tower + Llama, character tokenizer; its chat template given
   `{% generation %}` markers and an end-of-turn `</s>` so SFT scores the replies only and
   the model learns to stop); for code and table modes the tiny text model of `agents.tiny`
   (the same recipe for both, its tokenizer trained on that mode's training text).
3. SFT on the project's trainer (`evol.trainers.sft.fine_tune`, which takes the vision path
   of `evol.trainers.vision` for an `hf-vision` checkpoint), full or `--lora`.
4. Every model before and after SFT on the same held-out RECOGNITION questions (2 per chart
   of `--eval-charts` charts of the test split, disjoint from train), greedy, one answer per
   question (the rollout engine's `max_turns=1`: a malformed answer is a failure).

The tiny LLaVA sees the 480x360 chart at 28x28 pixels (4 image tokens): it can learn the
answer format and the answers' priors (counts, a name the question offers), little of what
the picture says. The table reports what was measured. Prints the table and the time of each
stage; writes `--out` .json, .md and .png. `--work DIR` keeps data and models (a rerun with the
same DIR reuses what is there). `--quick`: 8 charts, 4 held-out charts, 1 epoch (a smoke run,
written to benchmarks/results/chart_vision_quick unless `--out` says).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from agents import load_agent
from agents.base import SamplingParams
from agents.tiny import build_tiny_model
from agents.tiny_vision import build_tiny_vision_model
from envs.charts.env import ChartQAEnv
from evol.rollout import EpisodeSpec, RolloutEngine
from evol.trainers.data import examples, select
from evol.trainers.sft import TrainSettings, fine_tune
from evol.trajectory import Trajectory, TrajectoryWriter, read_trajectories

ENV = "evol/ChartQA-v0"
MODES = ("image", "code", "table")
RECOGNITION_SLOTS = (0, 1)  # tasks 4c and 4c+1 of chart c are its recognition questions
# agents.tiny_vision's template with the assistant turns marked for TRL's assistant-only loss and ended by EOS.
MARKED_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}:"
    "{% if m['role'] == 'assistant' %}{% generation %}"
    "{% for p in m['content'] %}{{ p['text'] }}{% endfor %}</s>{% endgeneration %}"
    "{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


def specs(charts: int, split: str, mode: str) -> list[EpisodeSpec]:
    tasks = [4 * chart + slot for chart in range(charts) for slot in RECOGNITION_SLOTS]
    return [
        EpisodeSpec(ENV, task, {"task": task, "split": split, "mode": mode, "qa_type": "recognition"})
        for task in tasks
    ]


def run(
    agent: Any, episodes: list[EpisodeSpec], path: Path, batch: int, instruction: bool = True
) -> list[Trajectory]:
    """The episodes' trajectories, read from `path` where a rerun finds them there."""
    if path.exists():
        done = {t.key: t for t in read_trajectories(path)}
        if all(spec.key in done for spec in episodes):
            return [done[spec.key] for spec in episodes]
        path.unlink()
    engine = RolloutEngine(
        agent,
        concurrency=batch,
        max_turns=1,
        sampling=SamplingParams(max_new_tokens=24),
        instruction_in_context=instruction,
        progress=True,
    )
    try:
        trajectories = engine.run(episodes)
    finally:
        engine.close()
    writer = TrajectoryWriter(path)
    for trajectory in trajectories:
        writer.write(trajectory)
    writer.close()
    return trajectories


def answer_types(episodes: list[EpisodeSpec]) -> list[str]:
    """Each question's answer type (integer, number, label), from the env (table mode: no rendering)."""
    env = ChartQAEnv(mode="table")
    types = [env.reset(options=dict(spec.options, mode="table"))[1]["answer_type"] for spec in episodes]
    env.close()
    return types


def scores(trajectories: list[Trajectory], types: list[str]) -> dict[str, Any]:
    by_type: dict[str, list[bool]] = defaultdict(list)
    for trajectory, kind in zip(trajectories, types):
        by_type[kind].append(trajectory.success)
    answered = [t for t in trajectories if t.turns and not t.truncated]  # the env took it as an answer
    return {
        "success": sum(t.success for t in trajectories) / len(trajectories),
        "n": len(trajectories),
        "errors": sum(t.error is not None for t in trajectories),
        "well_formed": len(answered) / len(trajectories),
        "top_replies": Counter(t.actions[-1][:40] for t in trajectories if t.actions).most_common(3),
        "by_answer_type": {
            kind: {"success": sum(v) / len(v), "n": len(v)} for kind, v in sorted(by_type.items())
        },
    }


def vision_base(path: Path, args: argparse.Namespace) -> Path:
    if not (path / "config.json").exists():
        from transformers import AutoProcessor

        build_tiny_vision_model(
            path, text_layers=args.vision_layers, hidden_size=args.vision_hidden, seed=args.seed
        )
        processor = AutoProcessor.from_pretrained(path)
        processor.chat_template = MARKED_TEMPLATE
        processor.save_pretrained(path)
    return path


def text_base(path: Path, trajectories: list[Trajectory], args: argparse.Namespace) -> Path:
    if not (path / "config.json").exists():
        corpus = [m["content"] for t in trajectories for m in t.messages if isinstance(m["content"], str)]
        build_tiny_model(path, corpus, preset=args.text_preset, seed=args.seed)
    return path


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| mode | model | before SFT | after SFT | well-formed before / after | n |",
        "|---|---|---|---|---|---|",
    ]
    for mode, row in results.items():
        before, after = row["before"], row["after"]
        lines.append(
            f"| {mode} | {row['model']} | {100 * before['success']:.1f}% | {100 * after['success']:.1f}% | "
            f"{100 * before['well_formed']:.0f}% / {100 * after['well_formed']:.0f}% | {after['n']} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(results)
    figure, axes = plt.subplots(figsize=(6.5, 4))
    for i, stage in enumerate(("before", "after")):
        values = [100 * results[mode][stage]["success"] for mode in modes]
        positions = [x + (i - 0.5) * 0.38 for x in range(len(modes))]
        bars = axes.bar(positions, values, 0.38, label=f"{stage} SFT")
        axes.bar_label(bars, labels=[f"{v:.1f}" for v in values], fontsize=8)
    axes.set_xticks(range(len(modes)), [f"{m}\n({results[m]['model']})" for m in modes], fontsize=8)
    axes.set_ylabel("success on held-out recognition questions (%)")
    axes.set_ylim(
        0, max(10.0, 1.25 * max(100 * results[m][s]["success"] for m in modes for s in ("before", "after")))
    )
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--charts", type=int, default=300, help="train charts (2 recognition questions each)")
    parser.add_argument("--eval-charts", type=int, default=75, help="held-out test charts (2 questions each)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--epochs", type=float, default=4.0)
    parser.add_argument("--lr", type=float, default=3e-3, help="the tiny models learn from scratch")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--lora", action="store_true", help="LoRA adapters (merged at save) instead of full SFT"
    )
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--vision-layers", type=int, default=2, help="the tiny LLaVA's language-model layers")
    parser.add_argument("--vision-hidden", type=int, default=64, help="the tiny LLaVA's width")
    parser.add_argument(
        "--text-preset", default="tiny", help="agents.tiny preset of the code and table models"
    )
    parser.add_argument(
        "--instruction",
        action="store_true",
        help="keep the env's instruction (the system message) in training and evaluation; by default the "
        "models see the question turn only (instruction_in_context=False), 4x shorter for the character "
        "tokenizer",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 8 charts, 4 held-out, 1 epoch")
    parser.add_argument("--work", help="keep data and models here (a rerun reuses what is there)")
    parser.add_argument(
        "--out",
        help="output path without suffix (default benchmarks/results/chart_vision, _quick with --quick)",
    )
    args = parser.parse_args()
    for name in ("charts", "eval_charts", "batch_size", "lora_r", "vision_layers", "vision_hidden"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.epochs <= 0 or args.lr <= 0:
        parser.error("--epochs and --lr must be > 0")
    if args.quick:
        args.charts, args.eval_charts, args.epochs = 8, 4, 1.0
    args.out = args.out or f"benchmarks/results/chart_vision{'_quick' if args.quick else ''}"

    started = time.perf_counter()
    seconds: dict[str, float] = {}
    results: dict[str, dict[str, Any]] = {}
    expert = load_agent("expert")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for mode in args.modes:
            clock = time.perf_counter()
            train = run(expert, specs(args.charts, "train", mode), work / f"{mode}-expert.jsonl", 8)
            held_out = specs(args.eval_charts, "test", mode)
            types = answer_types(held_out)
            seconds[f"{mode}: data"] = round(time.perf_counter() - clock, 1)
            clock = time.perf_counter()
            if mode == "image":
                base, kind = vision_base(work / "vision-base", args), "hf-vision"
            else:
                base, kind = text_base(work / f"{mode}-text-base", train, args), "hf"
            settings = TrainSettings(
                epochs=args.epochs,
                learning_rate=args.lr,
                batch_size=args.batch_size,
                max_length=2048,
                logging_steps=10,
                seed=args.seed,
                lora=args.lora,
                lora_r=args.lora_r,
                lora_alpha=2 * args.lora_r,
            )
            tuned_dir = work / f"{mode}-sft"
            if not (tuned_dir / "model" / "config.json").exists():
                rows = examples(select(train), instruction=args.instruction)
                trained = fine_tune(base, rows, tuned_dir, settings)
                tuned = trained.model_dir
                losses = [round(loss, 4) for loss in trained.losses]
            else:
                tuned, losses = tuned_dir / "model", []
            seconds[f"{mode}: sft"] = round(time.perf_counter() - clock, 1)
            clock = time.perf_counter()
            row: dict[str, Any] = {"model": f"tiny {'LLaVA' if kind == 'hf-vision' else 'text LM'}"}
            for stage, model in (("before", base), ("after", tuned)):
                agent = load_agent(f"{kind}:{model}", device="cpu", seed=args.seed)
                trajectories = run(agent, held_out, work / f"{mode}-{stage}.jsonl", 16, args.instruction)
                row[stage] = scores(trajectories, types)
                agent.close()
            row["train_episodes"], row["losses"] = len(train), losses
            row["held_out_answer_types"] = dict(Counter(types))
            seconds[f"{mode}: eval"] = round(time.perf_counter() - clock, 1)
            results[mode] = row
            print(
                f"{mode}: {100 * row['before']['success']:.1f}% -> {100 * row['after']['success']:.1f}% "
                f"({seconds[f'{mode}: sft']} s SFT)"
            )
    total = round(time.perf_counter() - started, 1)

    text = table(results)
    print(text)
    print(f"seconds per stage: {seconds}; {total / 60:.1f} min in all")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"settings": vars(args), "seconds": seconds, "total_seconds": total, "results": results}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    out.with_suffix(".md").write_text(text)
    title = (
        f"ChartQA-v0 recognition, {2 * args.eval_charts} held-out questions; SFT on "
        f"{2 * args.charts} expert episodes{' (LoRA)' if args.lora else ''}"
    )
    plot(results, out.with_suffix(".png"), title)
    print(f"wrote {out}.json, .md, .png")


if __name__ == "__main__":
    main()
