"""Image-mode trajectories as training data, for vision checkpoints and for text ones.

The rollout engine writes an image observation as OpenAI content parts (`{"type": "text"}`,
`{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`) while the
instruction and the replies stay plain strings. Arrow, under TRL's datasets, cannot hold both
in one column, so every conversation is converted first:

- Vision checkpoints (`is_vision_checkpoint`: a model config with a `vision_config`) train
  on TRL's vision-language path. A conversation goes to the processor's form exactly as
  `HFVisionAgent` gives it at inference (`agents.hf_vision.processor_messages`): content as
  part lists, each image decoded from its data URL (nothing is ever fetched) into the row's
  `images` column and replaced by the `{"type": "image"}` placeholder; only the latest
  `max_images` images of a conversation stay images, older ones become the text "[image]".
  SFT scores the assistant tokens only where TRL can mask them for vision-language models:
  the chat template carries `{% generation %}` markers, or TRL ships a training version of
  it (LLaVA-NeXT, Qwen2.5-VL, Qwen3-VL, Idefics3, SmolVLM, Gemma 3, ...). A template TRL
  cannot patch (plain LLaVA 1.5's, say) trains on every text token instead, image
  placeholders and padding excluded, with one warning. DPO (TRL's vision preference collator)
  takes images in the prompt only: an image inside chosen or rejected (`pairing: whole`)
  becomes the text "[image]".
- Text checkpoints see images the way `HFAgent` shows them at inference: a message's text
  parts joined by newlines, the images dropped, with one warning per training run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Message = dict[str, Any]


def is_vision_checkpoint(path: str | Path) -> bool:
    """Whether `path` holds an image-text-to-text model (its config has a `vision_config`)."""
    config_file = Path(path) / "config.json"
    if config_file.is_file():
        return "vision_config" in json.loads(config_file.read_text())
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(path), "vision_config", None) is not None


def has_images(messages: list[Message]) -> bool:
    """Whether any message carries an `image_url` content part."""
    return any(
        isinstance(part, dict) and part.get("type") == "image_url"
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
    )


def text_messages(messages: list[Message]) -> list[Message]:
    """`messages` with list content flattened to its text parts (as `HFAgent` shows them);
    string content is left as it is."""
    from agents.hf import text_only

    return [
        {**message, "content": text_only({"role": message["role"], "content": message["content"]})["content"]}
        if isinstance(message.get("content"), list)
        else message
        for message in messages
    ]


def _warn_images_dropped(what: str, count: int) -> None:
    log.warning(
        "%d %s carry images but the model is text-only: each image is dropped and its message keeps its "
        "text parts, as HFAgent shows them at inference (train an hf-vision checkpoint to learn from images)",
        count,
        what,
    )


def text_examples(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SFT examples for a text checkpoint: unchanged unless some hold content parts (then flattened)."""
    mixed = [e for e in examples if any(isinstance(m.get("content"), list) for m in e["messages"])]
    if not mixed:
        return examples
    with_images = sum(has_images(e["messages"]) for e in mixed)
    if with_images:
        _warn_images_dropped("training examples", with_images)
    return [{**e, "messages": text_messages(e["messages"])} for e in examples]


def text_pairs(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Preference pairs for a text checkpoint: unchanged unless some hold content parts (then flattened)."""
    sides = ("prompt", "chosen", "rejected")
    mixed = [p for p in pairs if any(isinstance(m.get("content"), list) for s in sides for m in p[s])]
    if not mixed:
        return pairs
    with_images = sum(any(has_images(p[s]) for s in sides) for p in mixed)
    if with_images:
        _warn_images_dropped("preference pairs", with_images)
    return [{**p, **{s: text_messages(p[s]) for s in sides}} for p in pairs]


def vision_examples(examples: list[dict[str, Any]], max_images: int) -> list[dict[str, Any]]:
    """SFT rows for TRL's vision-language collator: `{"messages", "images", "weight"}`."""
    from agents.hf_vision import processor_messages

    rows = []
    for example in examples:
        messages, images = processor_messages(example["messages"], max_images)
        rows.append({"messages": messages, "images": images, "weight": float(example.get("weight", 1.0))})
    return rows


def vision_pairs(pairs: list[dict[str, Any]], max_images: int) -> list[dict[str, Any]]:
    """DPO rows for TRL's vision preference collator: images of the prompt in `images`, the
    replies as text (an image inside one becomes "[image]")."""
    from agents.hf_vision import processor_messages

    rows = []
    for pair in pairs:
        prompt, images = processor_messages(pair["prompt"], max_images)
        chosen, _ = processor_messages(pair["chosen"], 0)
        rejected, _ = processor_messages(pair["rejected"], 0)
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "images": images})
    return rows


def load_vision_model(base_model: str | Path, bf16: bool) -> tuple[Any, Any]:
    """The processor (padding with EOS where its tokenizer has no pad token) and the model."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(base_model)
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None or getattr(processor, "image_processor", None) is None:
        raise ValueError(
            f"{base_model}: a vision checkpoint needs a processor with a tokenizer and an image processor"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForImageTextToText.from_pretrained(
        base_model, dtype=torch.bfloat16 if bf16 else torch.float32
    )
    return processor, model


def language_lora_modules(model: Any) -> str:
    """peft's default LoRA modules of the model's language part, as a pattern that leaves the
    vision tower and projector without adapters (peft has no default for most VLM types)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    text_type = model.config.get_text_config().model_type
    modules = DEFAULTS.get(text_type)
    if not modules:
        raise ValueError(
            f"train.lora_target_modules: peft has no default modules for the language model type "
            f"{text_type!r} of this vision checkpoint; name them"
        )
    return rf".*language_model.*\.({'|'.join(modules)})"


def loss_template(processor: Any) -> tuple[bool, str | None]:
    """(assistant-only loss, the training chat template TRL uses for it or None for the
    processor's own): TRL's own choice, or (False, None) where TRL cannot mask assistant
    turns for this template (warned once)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(processor.chat_template):
        return True, None
    try:
        return True, get_training_chat_template(processor)
    except ValueError:
        log.warning(
            "the processor's chat template has no {% generation %} markers and TRL has no training version "
            "of it: the loss covers every text token (instruction and observations too), image placeholders "
            "excluded; add the markers around assistant turns for assistant-only loss"
        )
        return False, None


def weighted_vision_collator_class():
    """TRL's vision-language collator that also carries each row's `weight` into the batch,
    and, without assistant-only loss, leaves image placeholder tokens out of the labels."""
    import torch
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    class WeightedVisionCollator(DataCollatorForVisionLanguageModeling):
        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            examples = [dict(example) for example in examples]
            weights = [float(example.pop("weight", 1.0)) for example in examples]
            batch = super().torch_call(examples)
            image_token = getattr(self.processor, "image_token_id", None)
            if not self.assistant_only_loss and image_token is not None:
                batch["labels"][batch["input_ids"] == image_token] = -100
            batch["weight"] = torch.tensor(weights, dtype=torch.float32)
            return batch

    return WeightedVisionCollator


def check_image_tokens_fit(lengths: list[tuple[int, int]], max_length: int, field_name: str) -> int:
    """The number of rows longer than `max_length`; refuses (naming the field) a length that
    would cut a row's image tokens, which the model cannot match with its image features.
    `lengths`: (tokens, position after the last image token) per row."""
    cut = [end for _, end in lengths if end > max_length]
    if cut:
        raise ValueError(
            f"{field_name}={max_length} cuts the image tokens of {len(cut)} row(s) (the latest image ends at "
            f"token {max(cut)}): raise it, or lower max_images"
        )
    return sum(length > max_length for length, _ in lengths)


def collated_lengths(
    collator: Any, rows: list[dict[str, Any]], image_token: int | None
) -> list[tuple[int, int]]:
    """(tokens, position after the last image token) of each row, collated alone by `collator`
    (one built without truncation); a preference row counts its longer side."""
    lengths = []
    for row in rows:
        batch = collator([dict(row)])
        best = (0, 0)
        for ids, mask in zip(batch["input_ids"], batch["attention_mask"]):
            ids = ids[mask.bool()]
            images = (ids == image_token).nonzero() if image_token is not None else []
            best = max(best, (len(ids), int(images[-1]) + 1 if len(images) else 0))
        lengths.append(best)
    return lengths
