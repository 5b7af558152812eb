"""Inverse-Q*: token-level credit from guidance, with no reward model, value model or pairs.

    evol train inverse-q --config inverse_q.yaml

Inverse-Q* (Xia et al. 2024) estimates a better policy by conditioning the model itself on
guidance, and reads a dense, per-token credit off the difference: for a response y to a
prompt x and guidance g, token t earns

    c_t = log π_ref(y_t | x ⊕ g, y_<t) − log π_ref(y_t | x, y_<t)

(how much more likely the guided model finds the token than the plain one). The policy's
implicit token reward β·log(π_θ(y_t|x, y_<t) / π_ref(y_t|x, y_<t)) is then trained toward that
credit. π_ref is the starting model, frozen; both log-probabilities under it are computed
once, before training.

The paper leaves these choices open; each is a field of `InverseQSettings`, default first:

| field | default | choices |
|---|---|---|
| `guidance` | `principle` | `principle` (a fixed text), `reference` (a successful episode of the same task), `hint` (the env's expert action at that turn) |
| `guidance_place` | `system` | appended to the system message, or `user` (added to the last user turn) |
| `objective` | `regression` | squared error between implicit reward and credit; `weighted_nll`: −Σ c_t·log π_θ(y_t) |
| `beta` | 0.1 | scale of the implicit reward |
| `credit_clip` | 5.0 | credits clipped to [−clip, clip] (a rare token can swing by tens of nats) |
| `credit_scale` | 1.0 | credits multiplied by this before clipping |
| `center_credits` | false | subtract each response's mean credit (credit only relative to its own tokens) |

Inverse-Q* trains text models: image observations in trajectories are read as their text
parts, as `hf:` agents see them. `inverse_q_tune(base_model, rows, output_dir, settings)` is the learn step the
self-improvement loop calls with `learn: inverse_q`; `rows` are `{"prompt": [messages],
"completion": [assistant message], "guidance": str}` (`inverse_q_rows` makes them from
trajectories). `evol train inverse-q` runs it on rollout files:

```yaml
model: runs/bc/model             # an HF checkpoint directory (also the reference)
data: [runs/explore.jsonl]       # trajectory JSONL: every completed reply is scored
output_dir: runs/inverse_q
inverse_q: {guidance: hint, beta: 0.1, learning_rate: 1.0e-4}
```
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agents.base import sees_instruction, window
from evol.trainers.config import save_config
from evol.trainers.sft import TrainResult, TrainSettings, _load_model, trainer_arguments
from evol.trainers.vision import is_vision_checkpoint, text_messages
from evol.trajectory import Trajectory

DEFAULT_PRINCIPLE = (
    "Guidance: act as an expert would. Choose the action that makes the most progress toward "
    "the goal, follow the action format exactly, and never repeat an action that did not help."
)


@dataclass
class InverseQSettings(TrainSettings):
    """How one Inverse-Q* run learns (the `inverse_q:` section); TrainSettings' fields plus these."""

    beta: float = field(default=0.1, metadata={"help": "β of the implicit token reward β·log(π/π_ref)"})
    guidance: Literal["principle", "reference", "hint"] = field(
        default="principle",
        metadata={"help": "what conditions the better policy: a principle text, a successful episode "
                  "of the same task (reference), or the env's expert action at the turn (hint)"},
    )  # fmt: skip
    principle: str = field(default=DEFAULT_PRINCIPLE, metadata={"help": "the guidance text of `principle`"})
    guidance_place: Literal["system", "user"] = field(
        default="system", metadata={"help": "where guidance goes: the system message or the last user turn"}
    )
    objective: Literal["regression", "weighted_nll"] = field(
        default="regression",
        metadata={"help": "regression: (β·log π/π_ref − c_t)²; weighted_nll: −c_t·log π_θ(y_t)"},
    )
    credit_clip: float = field(default=5.0, metadata={"help": "credits are clipped to [-clip, clip]"})
    credit_scale: float = field(default=1.0, metadata={"help": "credits are multiplied by this first"})
    center_credits: bool = field(
        default=False, metadata={"help": "subtract each response's mean credit from its tokens'"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise ValueError("inverse_q.beta must be > 0")
        if self.credit_clip <= 0:
            raise ValueError("inverse_q.credit_clip must be > 0")
        if self.guidance not in ("principle", "reference", "hint"):
            raise ValueError(
                f"inverse_q.guidance must be principle, reference or hint, got {self.guidance!r}"
            )
        if self.objective not in ("regression", "weighted_nll"):
            raise ValueError(
                f"inverse_q.objective must be regression or weighted_nll, got {self.objective!r}"
            )
        if self.guidance_place not in ("system", "user"):
            raise ValueError(f"inverse_q.guidance_place must be system or user, got {self.guidance_place!r}")


# ---- the arithmetic (pure tensors: tested on hand-built values) -----------------------------
def token_credits(
    guided_logps, plain_logps, mask, clip: float = 5.0, scale: float = 1.0, center: bool = False
):
    """Per-token credit c_t = scale·(guided − plain), centred per row if asked, clipped; 0 off the mask."""
    import torch

    credits = (guided_logps - plain_logps) * scale
    mask = mask.to(credits.dtype)
    if center:
        mean = (credits * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1)
        credits = credits - mean
    return torch.clamp(credits, -clip, clip) * mask


def inverse_q_loss(policy_logps, ref_logps, credits, mask, beta: float, objective: str = "regression"):
    """The mean over response tokens of (β·(log π − log π_ref) − c)² (regression) or −c·log π (weighted_nll)."""
    mask = mask.to(policy_logps.dtype)
    count = mask.sum().clamp(min=1)
    if objective == "regression":
        implicit = beta * (policy_logps - ref_logps)
        return (((implicit - credits) ** 2) * mask).sum() / count
    if objective == "weighted_nll":
        return (-(credits * policy_logps) * mask).sum() / count
    raise ValueError(f"unknown objective {objective!r}")


def _sequence_logps(model, input_ids, attention_mask):
    """log p(token_t | tokens_<t) for t >= 1: shape (batch, length - 1)."""
    import torch

    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1, :].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)


# ---- rows from trajectories ---------------------------------------------------------------
def guided_prompt(prompt: list[dict[str, Any]], guidance: str, place: str = "system") -> list[dict[str, Any]]:
    """`prompt` with `guidance` added to its system message (one is made if none) or its last user turn."""
    messages = [dict(m) for m in prompt]
    if place == "user":
        for message in reversed(messages):
            if message["role"] == "user" and isinstance(message["content"], str):
                message["content"] = f"{message['content']}\n\n{guidance}"
                return messages
    if messages and messages[0]["role"] == "system" and isinstance(messages[0]["content"], str):
        messages[0]["content"] = f"{messages[0]['content']}\n\n{guidance}"
        return messages
    return [{"role": "system", "content": guidance}] + messages


def reference_guidance(trajectory: Trajectory) -> str:
    actions = " -> ".join(trajectory.actions)
    return f"Guidance: a successful episode of this task took these actions: {actions}"


def inverse_q_rows(
    trajectories: Iterable[Trajectory],
    settings: InverseQSettings,
    history_turns: int | None = None,
    instruction: bool | Collection[str] = True,
    references: dict[str, Trajectory] | None = None,
    hint: Callable[[Trajectory, int], str | None] | None = None,
) -> list[dict[str, Any]]:
    """One row per assistant turn of each completed trajectory, with its guidance text.

    `references` maps a task identity (`evol.trainers.pairs.task_identity`) to a successful
    episode (guidance `reference`: turns of tasks with none are skipped); `hint(trajectory,
    turn)` gives the expert action at a turn (guidance `hint`: turns without one are skipped).
    """
    from evol.trainers.pairs import task_identity

    rows = []
    for trajectory in trajectories:
        if trajectory.error is not None or trajectory.fault is not None or trajectory.turns == 0:
            continue
        keep = sees_instruction(instruction, trajectory.env)
        messages = trajectory.messages
        turn = -1
        for end in range(1, len(messages)):
            if messages[end]["role"] != "assistant":
                continue
            turn += 1
            if settings.guidance == "principle":
                guidance = settings.principle
            elif settings.guidance == "reference":
                reference = (references or {}).get(task_identity(trajectory))
                guidance = reference_guidance(reference) if reference is not None else None
            else:
                action = hint(trajectory, turn) if hint is not None else None
                guidance = f"Guidance: a good next action here is: {action}" if action else None
            if guidance is None:
                continue
            rows.append(
                {
                    "prompt": text_messages(window(messages[:end], history_turns, keep)),
                    "completion": text_messages([messages[end]]),
                    "guidance": guidance,
                }
            )
    return rows


# ---- tokenising and scoring with the reference ----------------------------------------------
def _encode(tokenizer, prompt, completion) -> tuple[list[int], list[int]]:
    """Prompt ids (with the generation prompt) and the completion's ids after them."""
    prompt_ids = list(
        tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
    )
    full = list(tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=False))
    shared = 0
    while shared < min(len(prompt_ids), len(full)) and prompt_ids[shared] == full[shared]:
        shared += 1
    return prompt_ids[:shared], full[shared:]


def _score_rows(
    reference, tokenizer, rows, settings: InverseQSettings, batch_size: int
) -> list[dict[str, Any]]:
    """Token ids, completion mask, the reference's plain log-probs and the credits of every row."""
    import torch

    encoded = []
    for row in rows:
        plain_prompt, completion = _encode(tokenizer, row["prompt"], row["completion"])
        guided, guided_completion = _encode(
            tokenizer,
            guided_prompt(row["prompt"], row["guidance"], settings.guidance_place),
            row["completion"],
        )
        if not completion or completion != guided_completion:
            continue  # the template joins prompt and reply differently: no token alignment
        budget = settings.max_length - max(len(plain_prompt), len(guided))
        if budget < 1:
            continue
        completion = completion[:budget]
        encoded.append((plain_prompt, guided, completion))

    def logps_of(sequences: list[list[int]], tails: list[int]) -> list[list[float]]:
        width = max(len(s) for s in sequences)
        pad = tokenizer.pad_token_id or 0
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in sequences])
        attention = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
        with torch.no_grad():
            scores = _sequence_logps(
                reference, ids.to(reference.device), attention.to(reference.device)
            ).cpu()
        return [
            scores[i, len(s) - 1 - n : len(s) - 1].tolist() for i, (s, n) in enumerate(zip(sequences, tails))
        ]

    scored = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        tails = [len(c) for _, _, c in chunk]
        plain = logps_of([p + c for p, _, c in chunk], tails)
        guided = logps_of([g + c for _, g, c in chunk], tails)
        for (prompt_ids, _, completion), plain_row, guided_row in zip(chunk, plain, guided):
            mask = torch.ones(len(completion))
            credits = token_credits(
                torch.tensor(guided_row)[None], torch.tensor(plain_row)[None], mask[None],
                settings.credit_clip, settings.credit_scale, settings.center_credits,
            )[0]  # fmt: skip
            scored.append(
                {
                    "input_ids": prompt_ids + completion,
                    "prompt_length": len(prompt_ids),
                    "ref_logps": plain_row,
                    "credits": credits.tolist(),
                }
            )
    return scored


def _collate(rows: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Pad to the batch's longest row; per-token values are aligned to next-token positions."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids, attention, mask, ref, credits = [], [], [], [], []
    for r in rows:
        n, p = len(r["input_ids"]), r["prompt_length"]
        ids.append(r["input_ids"] + [pad_id] * (width - n))
        attention.append([1] * n + [0] * (width - n))
        tail = width - 1 - (n - 1)
        mask.append([0.0] * (p - 1) + [1.0] * (n - p) + [0.0] * tail)
        ref.append([0.0] * (p - 1) + list(r["ref_logps"]) + [0.0] * tail)
        credits.append([0.0] * (p - 1) + list(r["credits"]) + [0.0] * tail)
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": torch.tensor(attention),
        "completion_mask": torch.tensor(mask),
        "ref_logps": torch.tensor(ref),
        "credits": torch.tensor(credits),
    }


def _trainer_class():
    from transformers import Trainer

    class InverseQLossTrainer(Trainer):
        """Trains the implicit token reward toward precomputed credits (`inverse_q_loss`)."""

        def __init__(self, *args, beta: float, objective: str, **kwargs):
            super().__init__(*args, **kwargs)
            self.beta, self.objective = beta, objective

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            policy = _sequence_logps(model, inputs["input_ids"], inputs["attention_mask"])
            loss = inverse_q_loss(
                policy,
                inputs["ref_logps"],
                inputs["credits"],
                inputs["completion_mask"],
                self.beta,
                self.objective,
            )
            return (loss, {"logps": policy}) if return_outputs else loss

    return InverseQLossTrainer


def inverse_q_tune(
    base_model: str | Path,
    rows: list[dict[str, Any]],
    output_dir: str | Path,
    settings: InverseQSettings,
) -> TrainResult:
    """Inverse-Q* of `base_model` on `rows` (`{prompt, completion, guidance}`) into `output_dir/model`."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainingArguments

    if not rows:
        raise ValueError("no Inverse-Q* rows (no completed turns, or no guidance for any of them)")
    if is_vision_checkpoint(base_model):
        raise ValueError("Inverse-Q* trains text models; image observations are read as their text")
    output_dir = Path(output_dir)
    model_dir = output_dir / "model"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tokenizer, model = _load_model(base_model, settings)
    reference = AutoModelForCausalLM.from_pretrained(base_model).eval()
    scored = _score_rows(reference, tokenizer, rows, settings, batch_size=max(8, settings.batch_size))
    del reference
    if not scored:
        raise ValueError("no row fits max_length with its guidance")
    steps_per_epoch = math.ceil(len(scored) / (settings.batch_size * settings.gradient_accumulation_steps))
    args = TrainingArguments(
        **trainer_arguments(settings, output_dir, steps_per_epoch, checkpointing=False),
        remove_unused_columns=False,
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(scored),
        data_collator=lambda batch: _collate(batch, pad_id),
        beta=settings.beta,
        objective=settings.objective,
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    if settings.lora:
        trainer.model = trainer.model.merge_and_unload()
    trainer.model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return TrainResult(
        model_dir=model_dir,
        examples=len(scored),
        tokens=int(sum(len(r["input_ids"]) for r in scored) * settings.epochs),
        truncated=len(rows) - len(scored),
        seconds=seconds,
        losses=losses,
    )


@dataclass
class InverseQConfig:
    """Every knob of an Inverse-Q* run on rollout files (`evol train inverse-q`)."""

    model: str = field(metadata={"help": "the HF checkpoint directory to start from (and the reference)"})
    data: list[str] = field(metadata={"help": "trajectory JSONL files whose replies are learned"})
    output_dir: str = field(metadata={"help": "the run directory: config and the model in `model/`"})
    references: list[str] = field(
        default_factory=list,
        metadata={"help": "guidance=reference: trajectory files whose successes guide (with `data`'s own)"},
    )
    env_kwargs: dict[str, dict[str, Any]] = field(
        default_factory=dict, metadata={"help": "guidance=hint: kwargs of the envs replayed for expert hints"}
    )
    history_turns: int | None = field(
        default=None, metadata={"help": "null: whole conversations as context; k: the last k turns"}
    )
    instruction_in_context: bool | list[str] = field(
        default=True, metadata={"help": "keep envs' instructions (system message) in the context"}
    )
    inverse_q: InverseQSettings = field(
        default_factory=InverseQSettings, metadata={"help": "how Inverse-Q* learns"}
    )

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("data: give at least one trajectory file")
        if not Path(self.model).is_dir():
            raise ValueError(f"model: {self.model} is not a checkpoint directory")
        missing = [path for path in self.data + self.references if not Path(path).exists()]
        if missing:
            raise ValueError(f"data/references: file(s) not found: {missing}")
        if self.history_turns is not None and self.history_turns < 0:
            raise ValueError("history_turns must be >= 0 or null")


class InverseQRun:
    """config -> trainer -> `train()`, which returns the trained model's result."""

    def __init__(self, config: InverseQConfig):
        self.config = config

    def train(self) -> TrainResult:
        from evol.trainers.data import load_trajectories
        from evol.trainers.objectives.inverse_q import expert_hints
        from evol.trainers.pairs import task_identity

        config = self.config
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
        trajectories = load_trajectories(config.data)
        references: dict[str, Trajectory] = {}
        for trajectory in load_trajectories(config.references) + trajectories:
            if trajectory.success and trajectory.completed:
                references.setdefault(task_identity(trajectory), trajectory)
        hints: dict[str, list[str | None]] = {}

        def hint(trajectory: Trajectory, turn: int) -> str | None:
            if trajectory.key not in hints:
                hints[trajectory.key] = expert_hints(trajectory, config.env_kwargs.get(trajectory.env))
            return hints[trajectory.key][turn]

        rows = inverse_q_rows(
            trajectories,
            config.inverse_q,
            config.history_turns,
            config.instruction_in_context,
            references,
            hint,
        )
        return inverse_q_tune(config.model, rows, out, config.inverse_q)
