"""A transformers multimodal backend: an image-text-to-text model that sees image observations.

`HFVisionAgent(path)` loads `AutoProcessor` and `AutoModelForImageTextToText` from a local
checkpoint (LLaVA, Qwen2-VL, Idefics, ... whatever the processor's chat template handles).
User messages may carry OpenAI content parts, as the rollout engine writes image
observations: `{"type": "text", "text": ...}` and `{"type": "image_url", "image_url":
{"url": "data:image/png;base64,..."}}`. The agent decodes each image, puts the processor's
`{"type": "image"}` placeholder in its place, renders the chat template, and samples the
whole batch in one `model.generate` call (left padding). Only the latest `max_images`
images of a conversation are kept (older ones become the text "[image]"), so multi-turn
episodes do not grow by a full image each turn. Text-only conversations work as well.
"""

from __future__ import annotations

import base64
import gc
import io

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, GenerationConfig

from agents.base import AgentInput, Message, SamplingParams
from agents.hf import (
    HFAgent,
    TokenCountingAgent,
    cut_at_stop,
    eos_token_ids,
    pad_left,
    resolve_dtype,
    sampling_options,
)


def image_from_url(url: str) -> Image.Image:
    """The image of a `data:image/...;base64,` URL, as RGB."""
    header, _, data = url.partition(",")
    if not (header.startswith("data:image/") and header.endswith(";base64")):
        raise ValueError("HFVisionAgent takes images as data:image/...;base64 URLs (it never fetches)")
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def processor_messages(messages: list[Message], max_images: int) -> tuple[list[Message], list[Image.Image]]:
    """`messages` in the processor's form (content as part lists) and their images, in order.

    Images beyond the latest `max_images` are replaced by the text part "[image]".
    """
    total = sum(
        1
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") == "image_url"
    )
    skip = max(0, total - max_images)
    converted: list[Message] = []
    images: list[Image.Image] = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            converted.append({"role": message["role"], "content": [{"type": "text", "text": content or ""}]})
            continue
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append({"type": "text", "text": part})
            elif part.get("type") == "image_url":
                if skip:
                    skip -= 1
                    parts.append({"type": "text", "text": "[image]"})
                else:
                    images.append(image_from_url(part["image_url"]["url"]))
                    parts.append({"type": "image"})
            else:
                parts.append({"type": "text", "text": part.get("text", "")})
        converted.append({"role": message["role"], "content": parts})
    return converted, images


class HFVisionAgent(TokenCountingAgent):
    """A local Hugging Face image-text-to-text model as an agent.

    - `path`: a checkpoint directory with a processor (tokenizer + image processor + chat
      template) and an `AutoModelForImageTextToText` model.
    - `device`, `dtype`: as in `agents.hf.HFAgent`.
    - `batch_size`: most sequences (conversations x samples) in one `generate` call.
    - `max_images`: the latest images of a conversation that the model sees (default 1).
    - `seed`: makes sampling reproducible (call k uses `seed + k`).
    - `chat_template`: overrides the processor's template.

    `last_image_counts` holds, after each call, the images each conversation passed to the model.
    """

    def __init__(
        self,
        path: str,
        device: str = "auto",
        dtype: str | torch.dtype = "auto",
        batch_size: int = 16,
        max_images: int = 1,
        seed: int | None = None,
        chat_template: str | None = None,
    ):
        if batch_size < 1 or max_images < 0:
            raise ValueError("batch_size must be >= 1 and max_images >= 0")
        self.name = f"hf-vision:{path}"
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.batch_size = batch_size
        self.max_images = max_images
        self.seed = seed
        self.calls = 0
        self.last_token_counts = []
        self.last_image_counts: list[int] = []
        self.processor = AutoProcessor.from_pretrained(path)
        self.chat_template = chat_template or getattr(self.processor, "chat_template", None)
        if not self.chat_template:
            raise ValueError("the processor has no chat template: pass chat_template= (a Jinja string)")
        self.tokenizer = pad_left(self.processor.tokenizer)
        self.model = AutoModelForImageTextToText.from_pretrained(
            path, dtype=resolve_dtype(dtype, self.device)
        )
        self.model.to(self.device).eval()
        self.eos_token_ids = sorted(eos_token_ids(self.model, self.tokenizer))

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        if self.model is None:
            raise RuntimeError("the agent is closed")
        conversations = [processor_messages(item.messages, self.max_images) for item in inputs]
        texts = [
            self.processor.apply_chat_template(
                messages, chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
            )
            for messages, _ in conversations
        ]
        greedy = sampling.temperature == 0
        samples = 1 if greedy else sampling.n
        per_call = max(1, self.batch_size // samples)
        replies: list[list[str]] = [[] for _ in inputs]
        counts = [0] * len(inputs)
        with self.seeded_rng():
            for start in range(0, len(inputs), per_call):
                chunk = list(range(start, min(start + per_call, len(inputs))))
                images = [image for i in chunk for image in conversations[i][1]]
                outputs = self._generate_batch([texts[i] for i in chunk], images, sampling, samples)
                for j, i in enumerate(chunk):
                    mine = outputs[j * samples : (j + 1) * samples]
                    replies[i] = [text for text, _ in mine] * (sampling.n if greedy else 1)
                    counts[i] = sum(length for _, length in mine)
        self.calls += 1
        self.last_token_counts = counts
        self.last_image_counts = [len(images) for _, images in conversations]
        return replies

    def _generate_batch(
        self, texts: list[str], images: list[Image.Image], sampling: SamplingParams, samples: int
    ) -> list[tuple[str, int]]:
        batch = self.processor(text=texts, images=images or None, return_tensors="pt", padding=True)
        batch = batch.to(self.device)
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(self.model.dtype)
        options = sampling_options(sampling)
        config = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            num_return_sequences=samples,
            stop_strings=[s for s in sampling.stop if s] or None,
            eos_token_id=self.eos_token_ids or None,
            pad_token_id=self.tokenizer.pad_token_id,
            **options,
        )
        with torch.inference_mode():
            output = self.model.generate(**batch, generation_config=config, tokenizer=self.tokenizer)
        results = []
        for row in output[:, batch["input_ids"].shape[1] :].tolist():
            length = next((k + 1 for k, token in enumerate(row) if token in self.eos_token_ids), None)
            if length is None:  # no EOS: drop the padding after a stop
                length = len(row)
                while length and row[length - 1] == self.tokenizer.pad_token_id:
                    length -= 1
            text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
            results.append((cut_at_stop(text, sampling.stop), length))
        return results

    seeded_rng = HFAgent.seeded_rng  # torch's RNG seeded with `seed + calls` inside, restored after

    def close(self) -> None:
        self.model = None
        self.processor = None
        self.tokenizer = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
