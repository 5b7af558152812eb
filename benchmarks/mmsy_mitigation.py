"""Sycophancy mitigation (MM-SY) on the tiny text model: prompt, SFT, DPO and Inverse-Q* against the base.

    python benchmarks/mmsy_mitigation.py [--base agree|round1] [--train-tasks 400] [--eval-tasks 300]

1. Data from `evol/Sycophancy-v0`'s train split (train questions never repeat a test one).
   Format data for the base, on train tasks 0..: `--base agree` (default) answers right at
   round 1 and takes the user's option at round 2 (a chat model that agrees, MM-SY's starting
   point: LLaVA-1.5 is 94.6% sycophantic); `--base round1` is round 1 only (the base never sees
   a pushback). Mitigation data, on train tasks from 100,000: the expert's whole episodes (it
   keeps a right answer under pushback and, on `expert_wrong_share` of the tasks, answers wrong
   first and takes the correction) as trajectory JSONL, and their DPO pairs
   (`envs.sycophancy.mitigation.preference_pairs`: steadfast against caving, taking a
   correction against keeping a wrong answer) as TRL preference JSONL.
2. The base: a fresh tiny model (`agents.tiny`) fine-tuned on the format data.
3. From the base, on the same mitigation tasks: SFT (`evol.trainers.sft.fine_tune` on the
   expert's episodes), DPO (`evol.trainers.dpo.preference_tune` on the pairs), Inverse-Q*
   (`evol.trainers.inverse_q.inverse_q_tune` on the base's own sampled episodes, guidance
   `principle`, or `hint`: the right option, with `--iq-guidance hint`) and online GRPO
   (`evol.trainers.grpo.GRPORun`: G episodes per task played by the policy itself, the env's
   reward, `--grpo-steps` optimizer steps).
4. Every model on the same test tasks through the rollout engine (`evol.evaluate.evaluate`,
   greedy) with the env's MM-SY report (Acc@R1, sycophancy rate, correction rate, by tone),
   plus the prompt mitigation: the base with `prompt_mitigation=True`.

Prints the table and the time of each stage; writes `--out` .json, .md and .png. `--work DIR`
keeps the data and models, and a rerun with the same DIR skips what is there.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from agents import load_agent
from agents.base import Agent, SamplingParams
from envs.sycophancy.metrics import ENV_ID
from envs.sycophancy.mitigation import right_answer_hint, sft_cases, write_preference_pairs
from evol.evaluate import evaluate
from evol.rollout import RolloutEngine, task_specs
from evol.runs import run_specs
from evol.trainers.data import examples
from evol.trainers.dpo import DPOSettings, preference_tune
from evol.trainers.inverse_q import InverseQSettings, inverse_q_rows, inverse_q_tune
from evol.trainers.sft import TrainSettings, fine_tune
from evol.trajectory import read_trajectories

PRINCIPLE = "Keep a correct answer when the user pushes back; change only when shown wrong."
MITIGATION_START = 100_000  # the mitigation data's train tasks start here, after the format data's
METRICS = {
    "acc_r1": "Acc@R1",
    "sycophancy_rate": "sycophancy rate",
    "correction_rate": "correction rate",
    "top_final_share": "share of the most common final answer",
}


class AgreeingAnswerer(Agent):
    """Format data for the base: the right option at round 1 (it asks the env's expert), then
    whatever option the user argues for."""

    name = "agreeing-answerer"
    needs_env = True

    def generate(self, inputs, sampling):
        replies = []
        for item in inputs:
            if not any(message["role"] == "assistant" for message in item.messages):
                replies.append([item.env.expert_action()])
            else:
                pushed = re.search(r"\(([A-D])\)", item.messages[-1]["content"]).group(1)
                replies.append([f"Answer: {pushed}"])
        return replies


class Stages:
    """The run's stages, each skipped when its output is in the work directory."""

    def __init__(self, work: Path, args: argparse.Namespace):
        self.work, self.args = work, args
        self.seconds: dict[str, float] = {}

    def timed(self, name: str, make, done: bool):
        started = time.perf_counter()
        value = make() if not done else None
        self.seconds[name] = round(time.perf_counter() - started, 1)
        return value

    def rollout(self, agent, name: str, specs, env_kwargs: dict, temperature=0.0, max_turns=None) -> list:
        engine = RolloutEngine(
            agent,
            env_kwargs={ENV_ID: env_kwargs},
            sampling=SamplingParams(temperature=temperature, max_new_tokens=12),
            max_turns=max_turns,
            concurrency=64,
        )
        run_specs(engine, specs, self.work / name)
        return list(read_trajectories(self.work / name))

    def policy(self, model_dir: Path):
        return load_agent(f"hf:{model_dir}", device="cpu", seed=self.args.seed)

    def settings(self, kind=TrainSettings, **fields) -> Any:
        return kind(batch_size=self.args.batch_size, seed=self.args.seed, logging_steps=10, **fields)

    def train(self, name: str, learn) -> Path:
        model_dir = self.work / name / "model"
        self.timed(name, lambda: learn(self.work / name), (model_dir / "config.json").exists())
        return model_dir

    def data(self) -> tuple[list, list, list]:
        args, always_right = self.args, {"expert_wrong_share": 0.0}
        started = time.perf_counter()
        format_specs = task_specs([ENV_ID], args.format_tasks, "train")
        if args.base == "agree":
            format_data = self.rollout(AgreeingAnswerer(), "format.jsonl", format_specs, always_right)
        else:
            format_data = self.rollout(
                load_agent("expert"), "format.jsonl", format_specs, always_right, max_turns=1
            )
        kwargs = {"expert_wrong_share": args.wrong_share}
        specs = task_specs([ENV_ID], args.train_tasks, "train", start=MITIGATION_START)
        mitigation = self.rollout(load_agent("expert"), "mitigation.jsonl", specs, kwargs)
        pairs_file = self.work / "pairs.jsonl"  # TRL's preference JSONL, as `evol train dpo` reads it
        write_preference_pairs(self.work / "mitigation.jsonl", pairs_file, kwargs)
        pairs = [json.loads(line) for line in pairs_file.read_text().splitlines()]
        self.seconds["data"] = round(time.perf_counter() - started, 1)
        return format_data, mitigation, pairs

    def models(self, format_data: list, mitigation: list, pairs: list) -> dict[str, Path]:
        """The base, then SFT, DPO and Inverse-Q* each from the base."""
        from agents.tiny import build_tiny_model

        args = self.args
        tiny = self.work / "tiny"
        if not (tiny / "config.json").exists():
            texts = [m["content"] for t in format_data + mitigation for m in t.messages]
            build_tiny_model(tiny, [text for text in texts if isinstance(text, str)], seed=args.seed)
        format_rows = examples([(t, 1.0) for t in format_data])
        # the tiny model starts reading the pushback only after ~1,700 steps (a phase change): a
        # constant learning rate, and as many epochs as the steps need
        format_settings = self.settings(
            epochs=args.format_steps * args.batch_size / len(format_rows),
            learning_rate=args.format_lr,
            lr_scheduler="constant_with_warmup",
            warmup_ratio=0.02,
            weight_decay=args.format_weight_decay,
        )
        base = self.train("base", lambda out: fine_tune(tiny, format_rows, out, format_settings))
        sft_rows = examples([(t, 1.0) for t in mitigation])
        sft_settings = self.settings(epochs=args.epochs, learning_rate=args.sft_lr)
        sft = self.train("sft", lambda out: fine_tune(base, sft_rows, out, sft_settings))
        dpo_settings = self.settings(
            DPOSettings,
            epochs=args.epochs,
            learning_rate=args.dpo_lr,
            beta=args.beta,
            precompute_ref_log_probs=True,
        )
        dpo = self.train("dpo", lambda out: preference_tune(base, pairs, out, dpo_settings))
        iq = self.train("inverse_q", lambda out: self.inverse_q(base, out))
        grpo = self.train("grpo", lambda out: self.grpo(base, out))
        return {"base": base, "SFT": sft, "DPO": dpo, f"Inverse-Q* ({args.iq_guidance})": iq, "GRPO": grpo}

    def grpo(self, base: Path, out: Path):
        """Online GRPO from the base on the mitigation tasks: the policy plays, the env rewards."""
        from evol.trainers.grpo import GRPOConfig, GRPORun

        args = self.args
        specs = task_specs([ENV_ID], args.train_tasks, "train", start=MITIGATION_START)
        config = GRPOConfig(
            model=str(base), env_ids=[ENV_ID], output_dir=str(out), tasks=len(specs),
            num_generations=args.grpo_group, prompts_per_step=args.grpo_tasks_per_step, steps=args.grpo_steps,
            learning_rate=args.grpo_lr, beta=0.0, max_turns=2, max_new_tokens=12, seed=args.seed,
            logging_steps=10,
        )  # fmt: skip
        return GRPORun(config, specs=specs).train()

    def inverse_q(self, base: Path, out: Path):
        """Inverse-Q* on the base's own sampled episodes of the mitigation tasks."""
        args = self.args
        specs = task_specs([ENV_ID], args.train_tasks, "train", start=MITIGATION_START)
        explored = self.rollout(self.policy(base), "explore.jsonl", specs, {}, temperature=1.0)
        settings = self.settings(
            InverseQSettings,
            epochs=args.epochs,
            learning_rate=args.iq_lr,
            beta=args.beta,
            guidance=args.iq_guidance,
            principle=PRINCIPLE,
        )
        rows = inverse_q_rows(explored, settings, hint=right_answer_hint())
        return inverse_q_tune(base, rows, out, settings)

    def measure(self, name: str, model_dir: Path, env_kwargs: dict) -> dict[str, Any]:
        slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        engine = RolloutEngine(
            self.policy(model_dir),
            env_kwargs={ENV_ID: env_kwargs},
            sampling=SamplingParams(temperature=0.0, max_new_tokens=12),
            concurrency=64,
        )
        started = time.perf_counter()
        out = self.work / "eval" / slug
        tasks = {ENV_ID: self.args.eval_tasks}
        evaluation = evaluate(engine, tasks, out, agent=name, env_kwargs={ENV_ID: env_kwargs})
        self.seconds[f"eval {name}"] = round(time.perf_counter() - started, 1)
        [report] = [r for r in evaluation.reports if r.env == ENV_ID]
        if report.error:
            raise RuntimeError(f"the MM-SY report of {name} failed: {report.error}")
        finals = Counter(t.actions[-1].strip() for t in evaluation.trajectories if len(t.actions) >= 2)
        top, count = finals.most_common(1)[0] if finals else ("", 0)
        return {
            **report.data,
            "top_final_answer": top,
            "top_final_share": count / max(1, sum(finals.values())),
        }


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def table(results: dict[str, dict]) -> str:
    tones = sorted({tone for r in results.values() for tone in r["by_tone"]})
    lines = [
        "| model | Acc@R1 | sycophancy | correction | final acc | top final answer | "
        + " | ".join(f"syc. / corr. ({tone})" for tone in tones)
        + " |",
        "|---" * (6 + len(tones)) + "|",
    ]
    for name, r in results.items():
        counts = r["counts"]
        tone_cells = [
            f"{percent(r['by_tone'][t]['sycophancy_rate'])} / {percent(r['by_tone'][t]['correction_rate'])}"
            for t in tones
        ]
        lines.append(
            f"| {name} | {percent(r['acc_r1'])} "
            f"| {percent(r['sycophancy_rate'])} ({counts['sycophantic']}/{counts['right_at_r1']}) "
            f"| {percent(r['correction_rate'])} ({counts['corrected']}/{counts['wrong_at_r1']}) "
            f"| {percent(r['final_accuracy'])} | `{r['top_final_answer']}` {percent(r['top_final_share'])} | "
            + " | ".join(tone_cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    width = 0.8 / len(METRICS)
    figure, axes = plt.subplots(figsize=(1.8 * len(names) + 2.5, 4))
    for i, (metric, label) in enumerate(METRICS.items()):
        values = [100 * (results[name][metric] or 0.0) for name in names]
        positions = [x + (i - (len(METRICS) - 1) / 2) * width for x in range(len(names))]
        bars = axes.bar(positions, values, width, label=label)
        axes.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=7)
    axes.set_xticks(range(len(names)), names, fontsize=8)
    axes.set_ylim(0, 105)
    axes.set_ylabel("%")
    axes.set_title(title)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--base",
        choices=("agree", "round1"),
        default="agree",
        help="the base's format data: both rounds, agreeing at round 2 (default); or round 1 only",
    )
    parser.add_argument(
        "--format-tasks", type=int, default=2000, help="train tasks of the base's format data"
    )
    parser.add_argument("--train-tasks", type=int, default=400, help="train tasks of the mitigation data")
    parser.add_argument("--eval-tasks", type=int, default=300, help="test tasks every model is evaluated on")
    parser.add_argument("--wrong-share", type=float, default=0.25, help="the expert's expert_wrong_share")
    parser.add_argument(
        "--format-steps", type=int, default=2500, help="optimizer steps of the base's format SFT"
    )
    parser.add_argument("--format-weight-decay", type=float, default=0.01)
    parser.add_argument("--format-lr", type=float, default=3e-3)
    parser.add_argument("--epochs", type=float, default=2.0, help="epochs of SFT, DPO and Inverse-Q*")
    parser.add_argument("--sft-lr", type=float, default=1e-3)
    parser.add_argument("--dpo-lr", type=float, default=5e-4)
    parser.add_argument("--iq-lr", type=float, default=5e-4)
    parser.add_argument("--beta", type=float, default=0.1, help="β of DPO and Inverse-Q*")
    parser.add_argument("--iq-guidance", choices=("principle", "hint"), default="principle")
    parser.add_argument("--grpo-steps", type=int, default=150, help="GRPO optimizer steps")
    parser.add_argument("--grpo-group", type=int, default=8, help="GRPO: G, episodes per task")
    parser.add_argument("--grpo-tasks-per-step", type=int, default=2, help="GRPO: tasks per optimizer step")
    parser.add_argument("--grpo-lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="keep data and models here (a rerun skips what is there)")
    parser.add_argument("--out", default="benchmarks/results/mmsy_mitigation")
    args = parser.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        stages = Stages(Path(args.work or tmp), args)
        stages.work.mkdir(parents=True, exist_ok=True)
        format_data, mitigation, pairs = stages.data()
        cases = sft_cases(mitigation, {"expert_wrong_share": args.wrong_share})
        tests = [p["test"] for p in pairs]
        print(
            f"data: {len(format_data)} format episodes ({args.base}); {len(mitigation)} mitigation episodes "
            f"({cases.count('keep')} keep, {cases.count('correct')} take a correction); {len(pairs)} DPO "
            f"pairs ({tests.count('sycophancy')} steadfast > caving, {tests.count('correction')} correction > kept)"
        )
        models = stages.models(format_data, mitigation, pairs)
        results = {"base": stages.measure("base", models["base"], {})}
        results["prompt mitigation"] = stages.measure(
            "prompt mitigation", models["base"], {"prompt_mitigation": True}
        )
        for name in list(models)[1:]:
            results[name] = stages.measure(name, models[name], {})
    seconds = round(time.perf_counter() - started, 1)

    text = table(results)
    print(text)
    print(
        f"{args.eval_tasks} test tasks per row; seconds per stage: {stages.seconds}; {seconds / 60:.1f} min in all"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"settings": vars(args), "seconds": seconds, "stages": stages.seconds, "results": results}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    out.with_suffix(".md").write_text(text)
    plot(
        results,
        out.with_suffix(".png"),
        f"MM-SY on the tiny model, base: {args.base} ({args.eval_tasks} test tasks)",
    )
    print(f"wrote {out}.json, .md, .png")


if __name__ == "__main__":
    main()
