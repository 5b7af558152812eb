"""Fine-tuning on chat trajectories with TRL's SFTTrainer: loss on assistant turns only,
optionally weighted per trajectory (reward-weighted log-likelihood), optionally LoRA.

`fine_tune(base_model, examples, output_dir, settings)` is the learning step shared by
behaviour cloning and AgentEvol; it returns the directory of a normal HF checkpoint. A vision
checkpoint (`hf-vision`) trains on TRL's vision-language path and image-mode trajectories
train a text checkpoint on their text: `evol.trainers.vision` says how.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _checkpointing_arg() -> str:
    """transformers renamed `gradient_checkpointing` to `activation_checkpointing` (5.2x); take the one it has."""
    import inspect

    from trl import SFTConfig

    params = inspect.signature(SFTConfig.__init__).parameters
    return "activation_checkpointing" if "activation_checkpointing" in params else "gradient_checkpointing"


@dataclass
class TrainSettings:
    """How one fine-tuning run learns (the `train:` section of a config file)."""

    epochs: float = field(default=1.0, metadata={"help": "passes over the data (AgentGym's scripts: 1)"})
    learning_rate: float = field(
        default=1e-5,
        metadata={"help": "AgentGym's scripts: 1e-5; the tiny preset learns from scratch and wants ~2e-3"},
    )
    batch_size: int = field(default=8, metadata={"help": "sequences per device per step"})
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "global batch = batch_size * accumulation * devices (AgentGym: 32)"}
    )
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "share of steps with linear warmup (AgentGym: 0.1)"}
    )
    lr_scheduler: str = field(default="linear", metadata={"help": "any transformers scheduler name"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_length: int = field(
        default=2048,
        metadata={"help": "tokens per example; longer ones keep their start (counted in the result)"},
    )
    save_steps: int | None = field(
        default=None,
        metadata={"help": "save a checkpoint every N optimizer steps; null: only the final model"},
    )
    logging_steps: int = field(default=10, metadata={"help": "log the loss every N optimizer steps"})
    seed: int = field(default=0, metadata={"help": "seed of the data order and of new weights (LoRA)"})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 mixed precision (GPUs that support it)"})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in the backward pass to save memory"}
    )
    lora: bool = field(
        default=False,
        metadata={"help": "train LoRA adapters (peft) instead of all weights; merged into the saved model"},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA adapters' input"})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "modules that get adapters; null: peft's default for the architecture"},
    )
    max_images: int = field(
        default=1,
        metadata={
            "help": "vision models: the latest images of a conversation trained on; older ones become the "
            'text "[image]" (as hf-vision agents see them, their max_images)'
        },
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        for name in ("epochs", "learning_rate"):
            if getattr(self, name) <= 0:
                raise ValueError(f"train.{name} must be > 0")
        for name in ("batch_size", "gradient_accumulation_steps", "max_length", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("train.warmup_ratio must be in [0, 1)")
        if self.max_images < 0:
            raise ValueError("train.max_images must be >= 0")


@dataclass
class TrainResult:
    model_dir: Path
    examples: int
    tokens: int  # tokens seen (examples' lengths x epochs)
    truncated: int  # examples longer than max_length
    seconds: float
    losses: list[float] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def _weighted_trainer_class():
    import torch
    import torch.nn.functional as F
    from trl import SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    class WeightedCollator(DataCollatorForLanguageModeling):
        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            weights = [float(example.pop("weight", 1.0)) for example in examples]
            batch = super().torch_call(examples)
            batch["weight"] = torch.tensor(weights, dtype=torch.float32)
            return batch

    class WeightedSFTTrainer(SFTTrainer):
        """SFT whose per-token loss is scaled by each example's `weight` (1.0: plain NLL)."""

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if "weight" not in self._signature_columns:
                self._signature_columns.append("weight")

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            weights = inputs.pop("weight")
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs.logits[:, :-1, :].float()
            targets = labels[:, 1:].to(logits.device)
            nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none")
            mask = (targets != -100).float()
            total = (nll * mask * weights.to(logits.device)[:, None]).sum()
            count = num_items_in_batch if num_items_in_batch is not None else mask.sum()
            loss = total / torch.as_tensor(count, device=logits.device).clamp(min=1)
            return (loss, outputs) if return_outputs else loss

    return WeightedSFTTrainer, WeightedCollator


def _load_model(base_model: str | Path, settings: TrainSettings) -> tuple[Any, Any]:
    """The tokenizer (padding with EOS where it has no pad token) and the model, LoRA-wrapped if asked."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        base_model, dtype=torch.bfloat16 if settings.bf16 else torch.float32
    )
    return tokenizer, _with_lora(model, settings, settings.lora_target_modules)


def _with_lora(model: Any, settings: TrainSettings, target_modules: list[str] | str | None) -> Any:
    """`model` wrapped in LoRA adapters on `target_modules` when `settings.lora` asks for them."""
    if not settings.lora:
        return model
    from peft import LoraConfig, get_peft_model

    return get_peft_model(
        model,
        LoraConfig(
            r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            target_modules=target_modules,
            task_type="CAUSAL_LM",
        ),
    )


def _load_vision_model(base_model: str | Path, settings: TrainSettings) -> tuple[Any, Any]:
    """The processor and the image-text-to-text model, LoRA-wrapped if asked (on the language
    model's modules unless `lora_target_modules` names others)."""
    from evol.trainers.vision import language_lora_modules, load_vision_model

    processor, model = load_vision_model(base_model, settings.bf16)
    if settings.lora:
        model = _with_lora(model, settings, settings.lora_target_modules or language_lora_modules(model))
    return processor, model


def trainer_arguments(
    settings: TrainSettings, output_dir: Path, steps_per_epoch: int, checkpointing: bool = True
) -> dict[str, Any]:
    """The transformers/TRL training arguments every trainer takes from `settings` (checkpoints
    under `output_dir/checkpoints`; `checkpointing`: pass the gradient-checkpointing switch)."""
    import torch

    return {
        "output_dir": str(output_dir / "checkpoints"),
        "num_train_epochs": settings.epochs,
        "learning_rate": settings.learning_rate,
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "warmup_steps": int(settings.warmup_ratio * steps_per_epoch * settings.epochs),
        "lr_scheduler_type": settings.lr_scheduler,
        "weight_decay": settings.weight_decay,
        "save_strategy": "steps" if settings.save_steps else "no",
        "save_steps": settings.save_steps or 500,
        "logging_steps": settings.logging_steps,
        "seed": settings.seed,
        "bf16": settings.bf16,
        **({_checkpointing_arg(): settings.gradient_checkpointing} if checkpointing else {}),
        "report_to": "none",
        "disable_tqdm": not settings.progress,
        "dataloader_num_workers": 0,
        "use_cpu": not torch.cuda.is_available(),
    }


def _sft_config(
    output_dir: Path, settings: TrainSettings, steps_per_epoch: int, assistant_only_loss: bool = True
) -> Any:
    """TRL's SFTConfig for `settings`: loss on assistant turns only, checkpoints under `output_dir`."""
    from trl import SFTConfig

    return SFTConfig(
        **trainer_arguments(settings, output_dir, steps_per_epoch),
        max_length=settings.max_length,
        assistant_only_loss=assistant_only_loss,
        remove_unused_columns=True,
    )


def _train_and_save(
    trainer: Any, settings: TrainSettings, model_dir: Path, processing_class: Any
) -> tuple[float, list[float]]:
    """Run `trainer`, merge LoRA adapters into the weights, save the model with its tokenizer or
    processor in `model_dir`: (training seconds, logged losses)."""
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    if settings.lora:
        trainer.model = trainer.model.merge_and_unload()
    trainer.model.save_pretrained(model_dir)
    processing_class.save_pretrained(model_dir)
    return seconds, losses


def fine_tune(
    base_model: str | Path,
    examples: list[dict[str, Any]],
    output_dir: str | Path,
    settings: TrainSettings,
) -> TrainResult:
    """Fine-tune `base_model` on `examples` (`{"messages": [...], "weight": float}`) into `output_dir/model`."""
    from datasets import Dataset

    if not examples:
        raise ValueError("no training examples (check the data files and the reward filter)")
    from evol.trainers.vision import is_vision_checkpoint, text_examples

    output_dir = Path(output_dir)
    model_dir = output_dir / "model"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if is_vision_checkpoint(base_model):
        return _fine_tune_vision(base_model, examples, output_dir, settings)
    tokenizer, model = _load_model(base_model, settings)
    rows = [
        {"messages": e["messages"], "weight": float(e.get("weight", 1.0))} for e in text_examples(examples)
    ]
    dataset = Dataset.from_list(rows)
    steps_per_epoch = math.ceil(len(rows) / (settings.batch_size * settings.gradient_accumulation_steps))
    args = _sft_config(output_dir, settings, steps_per_epoch)
    trainer_class, collator_class = _weighted_trainer_class()
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=collator_class(pad_token_id=tokenizer.pad_token_id),
    )
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    truncated = sum(length >= settings.max_length for length in lengths)
    if truncated:
        log.warning(
            "%d of %d trajectories were cut to max_length=%d tokens",
            truncated,
            len(rows),
            settings.max_length,
        )
    seconds, losses = _train_and_save(trainer, settings, model_dir, tokenizer)
    return TrainResult(
        model_dir=model_dir,
        examples=len(rows),
        tokens=int(sum(lengths) * settings.epochs),
        truncated=truncated,
        seconds=seconds,
        losses=losses,
    )


def _fine_tune_vision(
    base_model: str | Path, examples: list[dict[str, Any]], output_dir: Path, settings: TrainSettings
) -> TrainResult:
    """`fine_tune` of an image-text-to-text checkpoint on TRL's vision-language path; the
    processor is saved beside the model, so `hf-vision:` loads the result."""
    from datasets import Dataset

    from evol.trainers.vision import (
        check_image_tokens_fit,
        collated_lengths,
        loss_template,
        vision_examples,
        weighted_vision_collator_class,
    )

    model_dir = output_dir / "model"
    rows = vision_examples(examples, settings.max_images)
    processor, model = _load_vision_model(base_model, settings)
    assistant_only, template = loss_template(processor)
    collator_class = weighted_vision_collator_class()

    def collator(max_length: int | None) -> Any:
        return collator_class(
            processor=processor,
            max_length=max_length,
            assistant_only_loss=assistant_only,
            chat_template=template,
        )

    image_token = getattr(processor, "image_token_id", None)
    lengths = collated_lengths(collator(None), rows, image_token)
    truncated = check_image_tokens_fit(lengths, settings.max_length, "train.max_length")
    if truncated:
        log.warning(
            "%d of %d trajectories were cut to max_length=%d tokens",
            truncated,
            len(rows),
            settings.max_length,
        )
    steps_per_epoch = math.ceil(len(rows) / (settings.batch_size * settings.gradient_accumulation_steps))
    trainer_class, _ = _weighted_trainer_class()
    trainer = trainer_class(
        model=model,
        args=_sft_config(output_dir, settings, steps_per_epoch, assistant_only),
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
        data_collator=collator(settings.max_length),
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
