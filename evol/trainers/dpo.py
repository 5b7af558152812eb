"""Direct Preference Optimisation on TRL's DPOTrainer.

    evol train dpo --config dpo.yaml

DPO (Rafailov et al. 2023) raises the policy's implicit reward β·log(π/π_ref) of the chosen
reply above the rejected one's: loss = −log σ(β[(log π(c) − log π_ref(c)) − (log π(r) −
log π_ref(r))]), summed over the reply's tokens only (the prompt — instruction, earlier
turns, the env's observations — is context, never scored). The reference is the starting
model (a frozen copy, the adapters switched off under LoRA, or its log-probabilities
computed once before training with `precompute_ref_log_probs`), or another checkpoint named
by `reference_model`.

`preference_tune(base_model, pairs, output_dir, settings)` is the learn step the
self-improvement loop calls with `learn: dpo`; pairs come from `evol.trainers.pairs`. A vision
checkpoint (`hf-vision`) learns from pairs with image prompts on TRL's vision path (the
reference's log-probs cannot be precomputed there); a text checkpoint sees their text
(`evol.trainers.vision`).
`evol train dpo` runs it on files: preference JSONL (`{prompt|messages, chosen, rejected}`)
or rollout files whose K samples per task are paired.

```yaml
model: runs/bc/model              # an HF checkpoint directory
data: [runs/explore.jsonl]        # preference JSONL or trajectory JSONL (K samples per task)
output_dir: runs/dpo
pairing: first_divergence         # or whole
dpo: {beta: 0.1, learning_rate: 1.0e-4, epochs: 3}
```
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evol.trainers.config import save_config
from evol.trainers.pairs import check_pair_sources, pairs_from_files, write_pairs
from evol.trainers.sft import (
    TrainResult,
    TrainSettings,
    _load_model,
    _load_vision_model,
    _train_and_save,
    trainer_arguments,
)
from evol.trainers.vision import (
    check_image_tokens_fit,
    collated_lengths,
    is_vision_checkpoint,
    text_pairs,
    vision_pairs,
)

LOSS_TYPES = ("sigmoid", "hinge", "ipo", "robust")


@dataclass
class DPOSettings(TrainSettings):
    """How one DPO run learns (the `dpo:` section of a config file); TrainSettings' fields plus these."""

    learning_rate: float = field(
        default=1e-6, metadata={"help": "TRL's DPO default 1e-6; the tiny preset wants ~1e-4"}
    )
    beta: float = field(
        default=0.1, metadata={"help": "β: how far the policy may move from the reference (DPO paper: 0.1)"}
    )
    loss_type: str = field(
        default="sigmoid",
        metadata={"help": f"TRL's DPO loss: one of {', '.join(LOSS_TYPES)} (sigmoid = DPO)"},
    )
    reference_model: str | None = field(
        default=None,
        metadata={
            "help": "checkpoint directory of the reference policy; null: the model being trained, frozen"
        },
    )
    precompute_ref_log_probs: bool = field(
        default=False,
        metadata={"help": "score every pair with the reference once before training (saves its memory)"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise ValueError("dpo.beta must be > 0")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"dpo.loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if self.reference_model is not None and not Path(self.reference_model).is_dir():
            raise ValueError(f"dpo.reference_model: {self.reference_model} is not a checkpoint directory")


def _dpo_config(output_dir: Path, settings: DPOSettings, steps_per_epoch: int) -> Any:
    from trl import DPOConfig

    return DPOConfig(
        **trainer_arguments(settings, output_dir, steps_per_epoch),
        max_length=settings.max_length,
        beta=settings.beta,
        loss_type=[settings.loss_type],
        precompute_ref_log_probs=settings.precompute_ref_log_probs,
    )


def preference_tune(
    base_model: str | Path,
    pairs: list[dict[str, Any]],
    output_dir: str | Path,
    settings: DPOSettings,
) -> TrainResult:
    """DPO of `base_model` on conversational pairs (`{prompt, chosen, rejected}`) into `output_dir/model`."""
    from datasets import Dataset
    from trl import DPOTrainer

    if not pairs:
        raise ValueError(
            "no preference pairs (tasks need a better and a worse sample: samples_per_task >= 2)"
        )
    output_dir = Path(output_dir)
    model_dir = output_dir / "model"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if is_vision_checkpoint(base_model):
        return _preference_tune_vision(base_model, pairs, output_dir, settings)
    tokenizer, model = _load_model(base_model, settings)
    reference = None
    if settings.reference_model is not None:
        _, reference = _load_model(settings.reference_model, TrainSettings(bf16=settings.bf16))
    rows = [
        {"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]} for p in text_pairs(pairs)
    ]
    steps_per_epoch = math.ceil(len(rows) / (settings.batch_size * settings.gradient_accumulation_steps))
    trainer = DPOTrainer(
        model=model,
        ref_model=reference,
        args=_dpo_config(output_dir, settings, steps_per_epoch),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    dataset = trainer.train_dataset
    lengths = [
        len(p) + max(len(c), len(r))
        for p, c, r in zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"])
    ]
    seconds, losses = _train_and_save(trainer, settings, model_dir, tokenizer)
    return TrainResult(
        model_dir=model_dir,
        examples=len(rows),
        tokens=int(sum(lengths) * settings.epochs),
        truncated=sum(length > settings.max_length for length in lengths),
        seconds=seconds,
        losses=losses,
    )


def check_vision_settings(settings: DPOSettings) -> None:
    """Refuses, naming the field, what DPO of a vision checkpoint cannot do."""
    if settings.precompute_ref_log_probs:
        raise ValueError(
            "dpo.precompute_ref_log_probs: TRL cannot precompute the reference's log-probs for a vision "
            "model (images are processed per batch); set it to false"
        )
    if settings.reference_model is not None and not is_vision_checkpoint(settings.reference_model):
        raise ValueError(
            f"dpo.reference_model: {settings.reference_model} is not a vision checkpoint like the model"
        )


def _preference_tune_vision(
    base_model: str | Path, pairs: list[dict[str, Any]], output_dir: Path, settings: DPOSettings
) -> TrainResult:
    """`preference_tune` of an image-text-to-text checkpoint: TRL's vision preference collator
    (images in the prompt, loss on the reply tokens); the processor is saved beside the model."""
    from datasets import Dataset
    from trl import DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    check_vision_settings(settings)
    model_dir = output_dir / "model"
    rows = vision_pairs(pairs, settings.max_images)
    processor, model = _load_vision_model(base_model, settings)
    reference = None
    if settings.reference_model is not None:
        _, reference = _load_vision_model(settings.reference_model, TrainSettings(bf16=settings.bf16))
    image_token = getattr(processor, "image_token_id", None)
    lengths = collated_lengths(DataCollatorForVisionPreference(processor=processor), rows, image_token)
    truncated = check_image_tokens_fit(lengths, settings.max_length, "dpo.max_length")
    steps_per_epoch = math.ceil(len(rows) / (settings.batch_size * settings.gradient_accumulation_steps))
    trainer = DPOTrainer(
        model=model,
        ref_model=reference,
        args=_dpo_config(output_dir, settings, steps_per_epoch),
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
    )
    seconds, losses = _train_and_save(trainer, settings, model_dir, processor)
    return TrainResult(
        model_dir=model_dir,
        examples=len(rows),
        tokens=int(sum(min(length, settings.max_length) for length, _ in lengths) * settings.epochs),
        truncated=truncated,
        seconds=seconds,
        losses=losses,
    )


@dataclass
class PreferenceConfig:
    """Every knob of a DPO run on files (`evol train dpo`)."""

    model: str = field(metadata={"help": "the HF checkpoint directory to start from (and the reference)"})
    data: list[str] = field(
        metadata={"help": "preference JSONL ({prompt|messages, chosen, rejected}) or rollout JSONL files"}
    )
    output_dir: str = field(
        metadata={"help": "the run directory: config, pairs.jsonl, the model in `model/`"}
    )
    pairing: str = field(
        default="first_divergence",
        metadata={"help": "rollout files: cut pairs at the first differing reply, or pair whole episodes"},
    )
    pairs_per_task: int = field(default=1, metadata={"help": "rollout files: the most pairs one task gives"})
    instruction_in_context: bool | list[str] = field(
        default=True, metadata={"help": "rollout files: keep envs' instructions in the prompt"}
    )
    dpo: DPOSettings = field(default_factory=DPOSettings, metadata={"help": "how DPO learns"})

    def __post_init__(self) -> None:
        check_pair_sources(self.model, self.data, self.pairing, self.pairs_per_task)
        if is_vision_checkpoint(self.model):
            check_vision_settings(self.dpo)


class PreferenceTrainer:
    """config -> trainer -> `train()`, which returns the trained model's result."""

    def __init__(self, config: PreferenceConfig):
        self.config = config

    def train(self) -> TrainResult:
        config = self.config
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
        pairs = pairs_from_files(
            config.data, config.pairing, config.pairs_per_task, config.instruction_in_context
        )
        write_pairs(pairs, out / "pairs.jsonl")
        return preference_tune(config.model, pairs, out, config.dpo)
