"""Reward models from the platform's own data, on TRL's RewardTrainer.

    evol train rm --config rm.yaml

A reward model is a sequence classifier with one output (`AutoModelForSequenceClassification`,
`num_labels=1`), started from any local checkpoint (a causal LM gets a new scoring head). It
learns from preference pairs with the Bradley-Terry loss −log σ(r(chosen) − r(rejected)).
Pairs come from rollout files (K samples per task, paired by `evol.trainers.pairs`: a better
(success, reward) episode against a worse one of the same task) or preference files (TRL's
format, `{prompt|messages, chosen, rejected}`, plain strings or messages).

With the default `pairing: whole` a pair is two whole episodes of one task, so the RM learns to
judge a trajectory (what `evol eval --best-of N --rm DIR` asks of it); the env's messages after
the agent's last reply are dropped (the env's last word often states the outcome: the RM is to
judge the agent, not read the verdict). `first_divergence` pairs teach it to judge one reply.

Tasks, not pairs, are split: `eval_fraction` of the tasks are held out (never a task in both),
and the trained checkpoint, loaded as `evol.rewards.classifier.ClassifierRM` (the scorer used at
test time), reports its pairwise accuracy (r(chosen) > r(rejected); a tie is wrong) on the
held-out pairs and on the training pairs in `metrics.json`.

```yaml
model: runs/base              # a checkpoint directory (causal LM or classifier)
data: [runs/explore.jsonl]    # rollout JSONL (K samples per task) or preference JSONL
output_dir: runs/rm
pairing: whole
eval_fraction: 0.2
rm: {learning_rate: 1.0e-4, epochs: 2, batch_size: 8}
```
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evol.trainers.config import save_config
from evol.trainers.data import TrajectoryFileError
from evol.trainers.pairs import check_pair_sources, pairs_from_trajectories, read_pairs, write_pairs
from evol.trainers.sft import TrainResult, TrainSettings, _train_and_save, trainer_arguments
from evol.trajectory import read_trajectories


@dataclass
class RMSettings(TrainSettings):
    """How one reward model learns (the `rm:` section); TrainSettings' fields plus these."""

    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate (TRL's default 1e-4)"})
    max_length: int = field(
        default=1024,
        metadata={"help": "tokens per sequence; longer ones lose their start (the end is judged)"},
    )
    center_rewards_coefficient: float | None = field(
        default=None,
        metadata={"help": "weight of the penalty pulling rewards towards 0 (TRL; null: none)"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.center_rewards_coefficient is not None and self.center_rewards_coefficient < 0:
            raise ValueError("rm.center_rewards_coefficient must be >= 0")


@dataclass
class RMConfig:
    """Every knob of a reward-model run (`evol train rm`)."""

    model: str = field(metadata={"help": "the checkpoint directory to start from"})
    data: list[str] = field(
        metadata={
            "help": "rollout JSONL (K samples per task) or preference JSONL ({prompt, chosen, rejected})"
        }
    )
    output_dir: str = field(
        metadata={"help": "the run directory: config, pairs.jsonl, metrics.json, the RM in `model/`"}
    )
    pairing: str = field(
        default="whole",
        metadata={"help": "rollout files: pair whole episodes (judge trajectories) or first_divergence"},
    )
    pairs_per_task: int = field(default=4, metadata={"help": "rollout files: the most pairs one task gives"})
    instruction_in_context: bool | list[str] = field(
        default=True, metadata={"help": "rollout files: keep envs' instructions in the prompt"}
    )
    eval_fraction: float = field(
        default=0.2, metadata={"help": "share of tasks held out for the pairwise accuracy (0: none)"}
    )
    split_seed: int = field(default=0, metadata={"help": "seed of the task split"})
    rm: RMSettings = field(default_factory=RMSettings, metadata={"help": "how the reward model learns"})

    def __post_init__(self) -> None:
        check_pair_sources(self.model, self.data, self.pairing, self.pairs_per_task)
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")


@dataclass
class RMResult(TrainResult):
    """A trained RM: TrainResult's fields plus the pairwise accuracies and pair counts."""

    metrics: dict[str, Any] = field(default_factory=dict)


def task_of_key(key: str) -> str:
    """The task of an episode key (`env|seed|options|sample`): the key without its sample."""
    return key.rsplit("|", 1)[0] if key.count("|") >= 3 else key


def _agent_ends(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` up to and with the agent's last reply."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    return messages[: last + 1]


def load_rm_pairs(config: RMConfig) -> tuple[list[dict[str, Any]], int]:
    """Conversational pairs with their `task`, and how many were dropped as identical after trimming."""
    rows: list[dict[str, Any]] = []
    trajectories = []
    for path in config.data:
        with open(path, encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "")
        try:
            is_pairs = bool(first) and "chosen" in json.loads(first)
            if is_pairs:
                rows.extend(read_pairs(path))
            else:
                trajectories.extend(read_trajectories(path))
        except (ValueError, KeyError, TypeError) as error:
            raise TrajectoryFileError(f"{path}: {error}") from None
    if trajectories:
        trajectories.sort(key=lambda t: t.key)
        rows.extend(
            pairs_from_trajectories(
                trajectories, config.pairing, config.pairs_per_task, config.instruction_in_context
            )
        )
    pairs, dropped = [], 0
    for row in rows:
        chosen, rejected = _agent_ends(row["chosen"]), _agent_ends(row["rejected"])
        if not chosen or not rejected or chosen == rejected:
            dropped += 1
            continue
        task = row.get("task") or (
            task_of_key(row["key"]) if "key" in row else json.dumps(row["prompt"], sort_keys=True)
        )
        pairs.append({**row, "chosen": chosen, "rejected": rejected, "task": str(task)})
    return pairs, dropped


def split_by_task(
    pairs: list[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, held-out) pairs: `fraction` of the tasks (at least one) held out whole."""
    tasks = sorted({p["task"] for p in pairs})
    if fraction <= 0:
        return pairs, []
    if len(tasks) < 2:
        raise TrajectoryFileError(
            f"eval_fraction {fraction}: the pairs come from {len(tasks)} task(s); holding tasks out "
            "needs >= 2 (more rollout tasks, or eval_fraction: 0)"
        )
    random.Random(seed).shuffle(tasks)
    held = set(tasks[: min(len(tasks) - 1, max(1, round(fraction * len(tasks))))])
    return [p for p in pairs if p["task"] not in held], [p for p in pairs if p["task"] in held]


def pairwise_accuracy(rm: Any, pairs: list[dict[str, Any]]) -> float | None:
    """Share of pairs whose chosen side `rm` (a ClassifierRM) scores above the rejected (ties wrong)."""
    if not pairs:
        return None
    from evol.rewards.classifier import encode

    sequences = [
        encode(rm.tokenizer, p["prompt"] + p[side], rm.max_length)
        for p in pairs
        for side in ("chosen", "rejected")
    ]
    scores = rm.score_ids(sequences)
    return sum(scores[2 * i] > scores[2 * i + 1] for i in range(len(pairs))) / len(pairs)


def _load_classifier(base_model: str | Path, settings: RMSettings) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with suppress_seqcls_warning():
        model = AutoModelForSequenceClassification.from_pretrained(
            base_model,
            num_labels=1,
            dtype=torch.bfloat16 if settings.bf16 else torch.float32,
        )
    model.config.pad_token_id = tokenizer.pad_token_id
    if settings.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=settings.lora_r,
                lora_alpha=settings.lora_alpha,
                lora_dropout=settings.lora_dropout,
                target_modules=settings.lora_target_modules,
                task_type="SEQ_CLS",
                modules_to_save=["score"],
            ),
        )
    return tokenizer, model


def train_rm(
    base_model: str | Path, train: list[dict[str, Any]], output_dir: str | Path, settings: RMSettings
) -> TrainResult:
    """TRL's RewardTrainer on conversational pairs, tokenized by `classifier.encode`, into `output_dir/model`."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from evol.rewards.classifier import encode

    if not train:
        raise TrajectoryFileError(
            "no training pairs (tasks need a better and a worse sample: samples_per_task >= 2)"
        )
    output_dir = Path(output_dir)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tokenizer, model = _load_classifier(base_model, settings)
    tokenizer.model_max_length = settings.max_length  # ClassifierRM scores at the trained length
    rows, lengths, truncated = [], [], 0
    for pair in train:
        full = {
            side: encode(tokenizer, pair["prompt"] + pair[side], 10**9) for side in ("chosen", "rejected")
        }
        truncated += any(len(ids) > settings.max_length for ids in full.values())
        row = {f"{side}_ids": ids[-settings.max_length :] for side, ids in full.items()}
        lengths.append(len(row["chosen_ids"]) + len(row["rejected_ids"]))
        rows.append(row)
    steps_per_epoch = math.ceil(len(rows) / (settings.batch_size * settings.gradient_accumulation_steps))
    args = RewardConfig(
        **trainer_arguments(settings, output_dir, steps_per_epoch),
        max_length=None,  # cut above, from the start, as ClassifierRM cuts
        center_rewards_coefficient=settings.center_rewards_coefficient,
    )
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    seconds, losses = _train_and_save(trainer, settings, output_dir / "model", tokenizer)
    return TrainResult(
        model_dir=output_dir / "model",
        examples=len(rows),
        tokens=int(sum(lengths) * settings.epochs),
        truncated=truncated,
        seconds=seconds,
        losses=losses,
    )


class RMTrainer:
    """config -> trainer -> `train()`: pairs, task split, RewardTrainer, held-out accuracy."""

    def __init__(self, config: RMConfig, log: Any = print):
        self.config = config
        self.log = log

    def train(self) -> RMResult:
        from evol.rewards.classifier import ClassifierRM

        config = self.config
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
        pairs, dropped = load_rm_pairs(config)
        train, held = split_by_task(pairs, config.eval_fraction, config.split_seed)
        rows = [{**p, "split": "train"} for p in train] + [{**p, "split": "eval"} for p in held]
        write_pairs(rows, out / "pairs.jsonl")
        self.log(
            f"evol: {len(pairs)} pairs from {len({p['task'] for p in pairs})} tasks "
            f"({len(train)} train, {len(held)} held-out on {len({p['task'] for p in held})} tasks; "
            f"{dropped} dropped as identical)"
        )
        result = train_rm(config.model, train, out, config.rm)
        rm = ClassifierRM(result.model_dir, batch_size=max(config.rm.batch_size, 8))
        try:
            metrics = {
                "pairs": len(pairs),
                "train_pairs": len(train),
                "eval_pairs": len(held),
                "train_tasks": len({p["task"] for p in train}),
                "eval_tasks": len({p["task"] for p in held}),
                "dropped_pairs": dropped,
                "train_accuracy": pairwise_accuracy(rm, train),
                "eval_accuracy": pairwise_accuracy(rm, held),
                "final_loss": result.losses[-1] if result.losses else None,
                "truncated": result.truncated,
                "seconds": result.seconds,
            }
        finally:
            rm.close()
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))

        def show(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.1%}"

        self.log(
            f"evol: pairwise accuracy: held-out {show(metrics['eval_accuracy'])} "
            f"({len(held)} pairs), train {show(metrics['train_accuracy'])} ({len(train)} pairs); "
            f"{out / 'metrics.json'}"
        )
        return RMResult(**vars(result), metrics=metrics)
