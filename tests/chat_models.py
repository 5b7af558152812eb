"""What the transformers-backend tests share: a grid-world chat and a tiny model built locally."""

from __future__ import annotations

from pathlib import Path

SYSTEM = "You are an agent in a grid world. Answer with one action."


def chat(observation: str, turns: int = 0) -> list[dict]:
    """A conversation: the system message, `turns` earlier (observation, action) turns, then `observation`."""
    messages = [{"role": "system", "content": SYSTEM}]
    for turn in range(turns):
        messages += [
            {"role": "user", "content": f"Step {turn}: you see a wall."},
            {"role": "assistant", "content": "Action: turn left"},
        ]
    return messages + [{"role": "user", "content": observation}]


def random_tiny_model(path: Path, seed: int) -> str:
    """A tiny Llama whose weights are large enough that its greedy replies depend on the prompt."""
    import torch
    from transformers import AutoModelForCausalLM

    from agents.tiny import build_tiny_model

    path = build_tiny_model(path, [SYSTEM, "You see a red ball. Action: go to the red ball"])
    model = AutoModelForCausalLM.from_pretrained(path)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    model.save_pretrained(path)
    return str(path)
