"""A sequence-classification reward model: any local checkpoint whose head gives one logit.

    rm = ClassifierRM("runs/rm/model")
    rm.score([[{"role": "user", "content": "2+2?"}]] * 2, ["4", "5"])   # -> [1.3, -0.8]

The score of (conversation, answer) is the model's scalar logit on the chat-templated
conversation followed by the answer as the assistant's turn, tokenized by `encode`, the same
function `evol train rm` tokenizes its pairs with, so a trained checkpoint scores at test time
exactly what it learned from. Pairs are scored in batches (sorted by length, padded on the
right; the head reads the last non-padding token), on the GPU where there is one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evol.rewards.base import Message, RewardModel


def encode(tokenizer: Any, messages: list[Message], max_length: int) -> list[int]:
    """Token ids of `messages` through the tokenizer's chat template (plain text joined by
    newlines without one); longer than `max_length`, the start is cut: the end is what is judged."""
    if getattr(tokenizer, "chat_template", None):
        # what apply_chat_template(tokenize=True) gives, without its too-long warning
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    else:
        text = "\n".join(str(m.get("content", "")) for m in messages)
        ids = tokenizer(text, verbose=False)["input_ids"]
    ids = list(ids)
    return ids[-max_length:] if len(ids) > max_length else ids


def check_checkpoint(path: str | Path) -> None:
    """A ValueError unless `path` is a checkpoint directory of a one-logit classifier."""
    import json

    path = Path(path)
    config = path / "config.json"
    if not path.is_dir() or not config.exists():
        raise ValueError(f"{path} is not a checkpoint directory (no config.json)")
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{config}: unreadable: {error}") from None
    labels = data.get("num_labels", len(data.get("id2label") or {}) or None)
    architectures = data.get("architectures") or []
    if not any(name.endswith("ForSequenceClassification") for name in architectures) or labels != 1:
        raise ValueError(
            f"{path} is not a reward model: a reward model is a sequence-classification checkpoint "
            f"with one label (architectures {architectures}, num_labels {labels}); "
            "train one with `evol train rm`"
        )


class ClassifierRM(RewardModel):
    """A `*ForSequenceClassification` checkpoint with `num_labels=1`; score = its logit."""

    name = "classifier"

    def __init__(
        self,
        path: str | Path,
        batch_size: int = 16,
        max_length: int | None = None,
        device: str | None = None,
    ):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if max_length is not None and max_length < 8:
            raise ValueError("max_length must be >= 8")
        check_checkpoint(path)
        self.path = str(path)
        self.name = f"classifier:{path}"
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        # default: the length it was trained at (`evol train rm` saves it as the tokenizer's)
        limits = [
            self.tokenizer.model_max_length,
            getattr(self.model.config, "max_position_embeddings", None),
        ]
        known = [int(x) for x in limits if isinstance(x, int) and 0 < x < 10**9]
        self.max_length = max_length or (min(known) if known else 2048)
        self.model.to(self.device).eval()

    def _encode(self, conversation: list[Message], answer: str) -> list[int]:
        messages = [*conversation, {"role": "assistant", "content": answer}]
        return encode(self.tokenizer, messages, self.max_length)

    def score_ids(self, sequences: list[list[int]]) -> list[float]:
        """The logit of each token sequence, in batches of similar lengths."""
        import torch

        scores: list[float] = [0.0] * len(sequences)
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        pad = self.tokenizer.pad_token_id
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                width = max(len(sequences[i]) for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, index in enumerate(batch):
                    tokens = sequences[index]
                    ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                    mask[row, : len(tokens)] = 1
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                for row, index in enumerate(batch):
                    scores[index] = float(logits[row, 0])
        return scores

    def score(self, conversations: list[list[Message]], answers: list[str]) -> list[float | None]:
        if len(conversations) != len(answers):
            raise ValueError(f"{len(conversations)} conversations but {len(answers)} answers")
        return list(self.score_ids([self._encode(c, a) for c, a in zip(conversations, answers)]))

    def close(self) -> None:
        self.model = None
