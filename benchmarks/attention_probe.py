"""MM-SY's attention probe (`evol analyze attention`) run end to end on the tiny vision model.

    python benchmarks/attention_probe.py [--fit-steps 300] [--episodes 60] [--out runs/attention-probe]

A random tiny LLaVA (`agents.tiny_vision`, 4 decoder layers) never writes `Answer: X`, so none
of its episodes reaches round 2. This script first fits it, with a plain next-token loss on the
reply only, to answer image questions of `evol/Sycophancy-v0`'s train split, round 1 and round
2, with `Answer: X` for a letter drawn at random: a model in the answer format that knows
nothing. Sampled at temperature 1 on test image tasks, it is right at round 1 about a quarter of
the time, then keeps or takes the pushed option by chance: both groups fill. Then it runs
`evol analyze attention` on it (the model's own episodes), which prints the table and writes
`attention.json`, `attention.png` and the episodes in `--out`.

What it shows is the tool working, not a finding: the model has no reason to look at the image
in either group.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

import envs
from agents.tiny_vision import build_tiny_vision_model
from evol.analysis.attention import ENV_ID, ImageAttentionProbe
from evol.cli import main as evol_main
from evol.rollout import user_content


def format_examples(tasks: int, seed: int) -> list[tuple[list[dict], str]]:
    """(conversation, reply) pairs: each train image task's round-1 prompt and its round-2 prompt
    (after a random round-1 answer), each with `Answer: X` for a random letter."""
    rng = random.Random(seed)
    env = envs.make(ENV_ID, modality="image")
    found = []
    for task in range(tasks):
        observation, info = env.reset(options={"task": task, "split": "train"})
        messages = [{"role": "system", "content": info["instruction"]}, {"role": "user", "content": user_content(observation)}]  # fmt: skip
        first = f"Answer: {rng.choice('ABCD')}"
        found.append((list(messages), first))
        observation, *_ = env.step(first)
        messages += [
            {"role": "assistant", "content": first},
            {"role": "user", "content": user_content(observation)},
        ]
        found.append((messages, f"Answer: {rng.choice('ABCD')}"))
    env.close()
    return found


def fit_answer_format(base: Path, out: Path, steps: int, seed: int) -> list[float]:
    """Fit the model in `base` on `format_examples` (loss on the reply and its end token); save in `out`."""
    torch.manual_seed(seed)
    probe = ImageAttentionProbe(base, device="cpu")  # its encoder renders prompts as the agent does
    model, eos = probe.model, probe.tokenizer.eos_token_id
    model.set_attn_implementation("sdpa")  # the fit needs no attention weights; sdpa is ~4x faster here
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = format_examples(max(1, steps // 2), seed)
    losses = []
    bar = tqdm(range(steps), desc="format fit", unit="step")
    for step in bar:
        messages, reply = data[step % len(data)]
        batch, prompt, _ = probe.encode(messages, reply)
        batch["input_ids"] = torch.cat([batch["input_ids"], torch.tensor([[eos]])], dim=1)
        batch["attention_mask"] = torch.ones_like(batch["input_ids"])
        labels = batch["input_ids"].clone()
        labels[:, :prompt] = -100
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}", refresh=False)
    model.eval()
    model.save_pretrained(out)
    probe.processor.save_pretrained(out)
    probe.close()
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fit-steps", type=int, default=300, help="format-fit steps (default 300)")
    parser.add_argument("--episodes", type=int, default=60, help="test image tasks to probe (default 60)")
    parser.add_argument("--layers", type=int, default=4, help="decoder layers of the tiny model (default 4)")
    parser.add_argument("--out", default="runs/attention-probe", help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    started = time.perf_counter()
    model = out / "model"
    if not (model / "config.json").is_file():
        base = build_tiny_vision_model(out / "model-random", text_layers=args.layers, seed=args.seed)
        losses = fit_answer_format(base, model, args.fit_steps, args.seed)
        print(
            f"format fit: loss {sum(losses[:20]) / 20:.3f} -> {sum(losses[-20:]) / 20:.3f} in {len(losses)} steps"
        )
    code = evol_main(["analyze", "attention", "--model", str(model), "--env", ENV_ID, "--out", str(out / "probe"),
                      "--episodes", str(args.episodes), "--temperature", "1.0", "--max-new-tokens", "12",
                      "--device", "cpu", "--seed", str(args.seed)])  # fmt: skip
    print(f"total {time.perf_counter() - started:.0f} s")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
