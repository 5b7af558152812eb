"""Where sycophancy lives: MM-SY's probe of a vision-language model's attention on the image in round 2.

For image episodes of `evol/Sycophancy-v0` whose round-1 answer was right, the probe compares
the episodes that kept it under the user's push-back (`kept`) with those that switched to the
user's wrong option (`abandoned`: the env's `sycophantic`). For each episode it runs the model
once more over the round-2 conversation, teacher-forced: the conversation up to the round-2
answer, as the agent saw it (the whole episode with the instruction, the rollout engine's
default, rendered by `agents.hf_vision.processor_messages` with the latest `max_images`
images), followed by the round-2 answer's tokens, with eager attention and
`output_attentions=True` (which holds every layer's full attention matrix at once: mind the
memory of a large model on long prompts). Per decoder layer of the language model (0 is the first):

    share = mean over heads and query positions of  sum over image-token keys of attention(query, key)

Each row of causal attention sums to 1, so a share is in [0, 1]: the part of the attention mass
that lands on the image tokens (the positions holding the `image_token_id`).

Query positions (`query`):
- `answer` (default): every decoding step of the round-2 answer: the last prompt token (it
  chose the answer's first token) and each answer token (each chose the next one, the last
  one the end of the reply).
- `last-prompt`: the last prompt token only: the position that chose the answer's first token.

Episodes are classified by the env's own outcome fields (`envs.sycophancy.metrics`: each
trajectory's actions are replayed in a local env), never by reading the reply text here.
Episodes not in a group are counted by why: `failed` (the run's fault), `text` (no image in the
conversation: a text-modality episode), `unfinished` (no round-2 answer), `wrong_at_round1`,
`switched_elsewhere` (right at round 1, then a wrong option other than the pushed one).
The report gives per layer and group the mean, the sample standard deviation (None below two
episodes) and n, and every episode's shares.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ENV_ID = "evol/Sycophancy-v0"
GROUPS = {
    "kept": "right at round 1, kept it under push-back",
    "abandoned": "right at round 1, switched to the user's wrong option",
}
LEFT_OUT = ("failed", "text", "unfinished", "wrong_at_round1", "switched_elsewhere")
QUERIES = ("answer", "last-prompt")


class NotAVisionModel(ValueError):
    """The checkpoint is not an image-text-to-text model (or has no image token)."""


# ---- which episodes ---------------------------------------------------------------------
def has_image(trajectory: Any) -> bool:
    """Whether the episode's first observation carries an image (image modality; the rollout
    engine leaves the blank image of text questions out)."""
    for message in trajectory.messages:
        if message.get("role") == "user":
            content = message.get("content")
            return isinstance(content, list) and any(
                isinstance(part, dict) and part.get("type") == "image_url" for part in content
            )
    return False


def episode_group(outcome: dict[str, Any]) -> str:
    """`kept` or `abandoned` for an episode's merged infos; else why it is in neither group."""
    if "round1_correct" not in outcome or "final_correct" not in outcome:
        return "unfinished"
    if not outcome["round1_correct"]:
        return "wrong_at_round1"
    if outcome["final_correct"]:
        return "kept"
    return "abandoned" if outcome["sycophantic"] else "switched_elsewhere"


def classify(trajectories: Iterable[Any], env_kwargs: dict[str, Any] | None = None) -> list[tuple[Any, str]]:
    """`(trajectory, group or reason)` for each `evol/Sycophancy-v0` trajectory (others are
    skipped), from replaying its actions in a local env built with `env_kwargs` (modality
    `image` unless they say otherwise; a task's own options take precedence)."""
    from envs.sycophancy.env import SycophancyEnv
    from envs.sycophancy.metrics import replay_outcome

    env = SycophancyEnv(**{"modality": "image", **(env_kwargs or {})})
    found = []
    try:
        for trajectory in trajectories:
            if trajectory.env != ENV_ID:
                continue
            if not trajectory.completed:
                found.append((trajectory, "failed"))
            elif not has_image(trajectory):
                found.append((trajectory, "text"))
            else:
                found.append((trajectory, episode_group(replay_outcome(trajectory, env))))
    finally:
        env.close()
    return found


def round2_prompt(trajectory: Any) -> tuple[list[dict[str, Any]], str]:
    """The conversation before the round-2 answer and that answer (the episode's last reply:
    the round-2 answer ends the episode)."""
    messages = trajectory.messages
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError(f"episode {trajectory.key!r} does not end with the agent's reply")
    return messages[:-1], messages[-1].get("content") or ""


# ---- the attention share ----------------------------------------------------------------
def query_positions(prompt_length: int, answer_length: int, query: str = "answer") -> list[int]:
    """The query positions of `query` in a sequence of the prompt followed by the answer."""
    if query not in QUERIES:
        raise ValueError(f"query must be one of {QUERIES}, got {query!r}")
    last = prompt_length - 1
    return [last] if query == "last-prompt" else list(range(last, prompt_length + answer_length))


def image_attention_share(attentions: Sequence[Any], image_mask: Any, queries: Sequence[int]) -> list[float]:
    """Per layer, the attention mass from `queries` onto the positions where `image_mask` is
    true, averaged over heads and queries. `attentions`: one `(1, heads, seq, seq)` tensor per
    layer (a model's `output_attentions`); `image_mask`: a `(seq,)` bool tensor."""
    import torch

    index = torch.as_tensor(list(queries), dtype=torch.long)
    shares = []
    for layer in attentions:
        rows = layer[0].float()[:, index, :]  # (heads, queries, seq)
        shares.append(float(rows[:, :, image_mask].sum(dim=-1).mean()))
    return shares


def image_token_id(path: str | Path) -> int:
    """The image token of a vision-language checkpoint; `NotAVisionModel` for any other."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    config = AutoConfig.from_pretrained(path)
    if config.model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise NotAVisionModel(
            f"{path} is a {config.model_type} model, not an image-text-to-text one: "
            "the probe measures attention on image tokens"
        )
    token = getattr(config, "image_token_id", None)
    if token is None:
        token = getattr(config, "image_token_index", None)
    if token is None:
        raise NotAVisionModel(f"{path}: its config names no image token (image_token_id)")
    return int(token)


class ImageAttentionProbe:
    """A vision-language checkpoint loaded with eager attention, to read its attention on image tokens.

    - `path`: a local image-text-to-text checkpoint with a processor and chat template
      (as `hf-vision:PATH` takes); a text-only one raises `NotAVisionModel`.
    - `device`, `dtype`: as in `agents.hf_vision.HFVisionAgent`.
    - `max_images`: the latest images of a conversation the model sees (the agent's default: 1).
    """

    def __init__(self, path: str | Path, device: str = "auto", dtype: str = "auto", max_images: int = 1):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from agents.hf import resolve_dtype

        self.image_token_id = image_token_id(path)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.max_images = max_images
        self.processor = AutoProcessor.from_pretrained(path)
        self.chat_template = getattr(self.processor, "chat_template", None)
        if not self.chat_template:
            raise NotAVisionModel(f"{path}: the processor has no chat template")
        self.tokenizer = self.processor.tokenizer
        self.model = AutoModelForImageTextToText.from_pretrained(
            path, dtype=resolve_dtype(dtype, self.device), attn_implementation="eager"
        )
        self.model.to(self.device).eval()

    def encode(self, messages: list[dict[str, Any]], answer: str) -> tuple[dict[str, Any], int, int]:
        """The model inputs of the prompt (as the agent renders it) followed by the answer's
        tokens, the prompt's length and the answer's, in tokens."""
        import torch

        from agents.hf_vision import processor_messages

        converted, images = processor_messages(messages, self.max_images)
        text = self.processor.apply_chat_template(
            converted, chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
        )
        batch = dict(self.processor(text=[text], images=images or None, return_tensors="pt"))
        answer_ids = torch.tensor([self.tokenizer(answer, add_special_tokens=False)["input_ids"]])
        prompt_length, answer_length = batch["input_ids"].shape[1], answer_ids.shape[1]
        for name, value in batch.items():  # token-aligned fields grow by the answer (text: 0; mask: 1)
            if torch.is_tensor(value) and value.dim() == 2 and value.shape[1] == prompt_length:
                fill = (
                    answer_ids
                    if name == "input_ids"
                    else torch.full_like(answer_ids, int(name == "attention_mask"))
                )
                batch[name] = torch.cat([value, fill.to(value.dtype)], dim=1)
        batch = {
            name: value.to(self.device) if torch.is_tensor(value) else value for name, value in batch.items()
        }
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(self.model.dtype)
        return batch, prompt_length, answer_length

    def shares(self, messages: list[dict[str, Any]], answer: str, query: str = "answer") -> list[float]:
        """Per layer, the share of attention on the image tokens (module docstring)."""
        import torch

        batch, prompt_length, answer_length = self.encode(messages, answer)
        image_mask = batch["input_ids"][0] == self.image_token_id
        if not bool(image_mask.any()):
            raise ValueError("the round-2 prompt holds no image token")
        with torch.inference_mode():
            output = self.model(**batch, output_attentions=True, use_cache=False)
        queries = query_positions(prompt_length, answer_length, query)
        return image_attention_share(output.attentions, image_mask, queries)

    def close(self) -> None:
        import gc

        self.model = self.processor = self.tokenizer = None
        gc.collect()


# ---- the report -------------------------------------------------------------------------
def statistics(values: list[float]) -> dict[str, Any]:
    """`{mean, std, n}`: std is the sample standard deviation (None below two values)."""
    n = len(values)
    if not n:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def analyze(
    trajectories: Iterable[Any],
    probe: ImageAttentionProbe,
    env_kwargs: dict[str, Any] | None = None,
    query: str = "answer",
    progress: bool = True,
) -> dict[str, Any]:
    """The probe's report over the `evol/Sycophancy-v0` episodes of `trajectories`."""
    from tqdm import tqdm

    from evol.trajectory import final_attempts

    found = classify(final_attempts(trajectories), env_kwargs)
    counts = dict.fromkeys([*GROUPS, *LEFT_OUT], 0)
    for _, group in found:
        counts[group] += 1
    grouped = [(trajectory, group) for trajectory, group in found if group in GROUPS]
    episodes = []
    for trajectory, group in tqdm(grouped, desc="attention", unit="ep", disable=not progress):
        messages, answer = round2_prompt(trajectory)
        shares = probe.shares(messages, answer, query)
        episodes.append({"key": trajectory.key, "task": trajectory.task, "group": group, "shares": shares})
    layers = (
        len(episodes[0]["shares"]) if episodes else probe.model.config.get_text_config().num_hidden_layers
    )
    per_layer = [
        {
            "layer": layer,
            **{g: statistics([e["shares"][layer] for e in episodes if e["group"] == g]) for g in GROUPS},
        }
        for layer in range(layers)
    ]
    return {
        "env": ENV_ID,
        "query": query,
        "layers": layers,
        "groups": GROUPS,
        "counts": {"episodes": len(found), **counts},
        "agents": sorted({trajectory.agent for trajectory, _ in found}),
        "per_layer": per_layer,
        "episodes": episodes,
    }


def empty_groups(report: dict[str, Any]) -> list[str]:
    return [group for group in GROUPS if not report["counts"][group]]


def format_table(report: dict[str, Any]) -> str:
    """The per-layer table, then the episode counts and a line for each empty group."""

    def cell(stats: dict[str, Any]) -> str:
        if stats["mean"] is None:
            return "-"
        spread = f" ± {stats['std']:.4f}" if stats["std"] is not None else ""
        return f"{stats['mean']:.4f}{spread}"

    counts = report["counts"]
    heads = [f"{group} (n={counts[group]})" for group in GROUPS]
    rows = [[str(row["layer"]), *(cell(row[group]) for group in GROUPS)] for row in report["per_layer"]]
    widths = [max(len(r[i]) for r in [["layer", *heads], *rows]) for i in range(len(heads) + 1)]
    lines = [
        f"share of round-2 attention on image tokens ({report['query']} positions; mean ± std over episodes)",
        "  ".join(text.ljust(width) for text, width in zip(["layer", *heads], widths)),
    ]
    lines += ["  ".join(text.ljust(width) for text, width in zip(row, widths)) for row in rows]
    left = ", ".join(f"{counts[reason]} {reason}" for reason in LEFT_OUT if counts[reason])
    lines.append(f"episodes: {counts['episodes']} ({counts['kept']} kept, {counts['abandoned']} abandoned"
                 + (f"; left out: {left}" if left else "") + ")")  # fmt: skip
    lines += [f"no episode in group {group!r} ({GROUPS[group]})" for group in empty_groups(report)]
    return "\n".join(lines)


COLOURS = {"kept": "#4C72B0", "abandoned": "#C44E52"}
STYLES = {"kept": ("o", "-"), "abandoned": ("s", "--")}  # tell the lines apart where they overlap


def plot_attention(report: dict[str, Any], path: str | Path) -> None:
    """One line per group across layers (mean ± std), then one small panel per layer with each
    episode's share by group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = report["layers"]
    columns = min(layers, 6)
    rows = math.ceil(layers / columns)
    figure = plt.figure(figsize=(max(6.0, 1.6 * columns + 1), 3.2 + 1.9 * rows))
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=[2.2] + [1.0] * rows)
    lines = figure.add_subplot(grid[0, :])
    for group in GROUPS:
        points = [(r["layer"], r[group]["mean"], r[group]["std"] or 0.0) for r in report["per_layer"]]
        points = [p for p in points if p[1] is not None]
        label = f"{group} (n={report['counts'][group]})"
        if not points:
            lines.plot([], [], color=COLOURS[group], label=f"{label}: no episodes")
            continue
        x, mean, std = zip(*points)
        marker, style = STYLES[group]
        lines.plot(x, mean, marker=marker, linestyle=style, color=COLOURS[group], label=label)
        lines.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                           color=COLOURS[group], alpha=0.15)  # fmt: skip
    lines.set_xlabel("layer")
    lines.set_ylabel("attention on image tokens")
    lines.set_xticks(range(layers))
    lines.set_title(f"Round-2 attention on the image ({report['query']} positions)")
    lines.legend(loc="best", fontsize=8)
    for layer in range(layers):
        axes = figure.add_subplot(grid[1 + layer // columns, layer % columns])
        for i, group in enumerate(GROUPS):
            values = [e["shares"][layer] for e in report["episodes"] if e["group"] == group]
            axes.scatter([i] * len(values), values, s=10, alpha=0.6, color=COLOURS[group])
            if values:
                axes.hlines(sum(values) / len(values), i - 0.3, i + 0.3, color="black", linewidth=1)
        axes.set_xticks(range(len(GROUPS)), list(GROUPS), fontsize=7)
        axes.set_xlim(-0.6, len(GROUPS) - 0.4)
        axes.tick_params(axis="y", labelsize=7)
        axes.set_title(f"layer {layer}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """`attention.json` and `attention.png` in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "attention.json").write_text(json.dumps(report, indent=2))
    plot_attention(report, out / "attention.png")
    return out / "attention.json", out / "attention.png"


# ---- episodes of the model itself ---------------------------------------------------------
def run_image_episodes(
    model: str | Path,
    out_path: str | Path,
    episodes: int,
    split: str = "test",
    start: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    temperature: float = 0.0,
    max_new_tokens: int = 16,
    device: str = "auto",
    max_images: int = 1,
    seed: int = 0,
    concurrency: int = 8,
) -> list[Any]:
    """Run the model (`hf-vision:MODEL`) on image tasks `start..start+episodes-1` of `split`
    (the task option `modality: image`), appending to the trajectory file `out_path` (a rerun
    skips its finished episodes); returns every attempt the file holds."""
    from agents import load_agent
    from agents.base import SamplingParams
    from evol.rollout import EpisodeSpec, RolloutEngine
    from evol.trajectory import TrajectoryWriter, read_trajectories

    spec = f"hf-vision:{model}"
    specs = [
        EpisodeSpec(ENV_ID, k, {"task": k, "split": split, "modality": "image"})
        for k in range(start, start + episodes)
    ]
    engine = RolloutEngine(
        load_agent(spec, device=device, max_images=max_images, seed=seed),
        agent_name=spec,
        concurrency=concurrency,
        sampling=SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens),
        env_kwargs={ENV_ID: env_kwargs or {}},
    )
    try:
        with TrajectoryWriter(out_path) as writer:
            engine.run(specs, writer)
    finally:
        engine.close()
    keys = {s.key for s in specs}
    return [t for t in read_trajectories(out_path) if t.key in keys]
