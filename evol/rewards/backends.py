"""Reward-model backends, named by a spec string (`load_rm`).

- `classifier:DIR`: a transformers sequence-classification checkpoint with one logit (a reward
  model: any local directory, e.g. one `evol train rm` wrote), scoring (conversation, answer) in
  batches on CPU or GPU: `evol.rewards.classifier.ClassifierRM`.
- `judge:AGENT_SPEC`: a generative judge over any agent spec (`hf:PATH`, `vllm:PATH`,
  `openai:URL#MODEL`, ...): `evol.rewards.judge.JudgeRM`.
- `openai:URL#MODEL`: a judge over an OpenAI-compatible endpoint (`judge:openai:...`).
- `guard`: the platform's rule guard (`envs.redteam.judges.GuardJudge`).
"""

from __future__ import annotations

from typing import Any

from evol.rewards.base import Message, RewardModel

RM_KINDS = ("classifier:DIR", "judge:AGENT_SPEC", "openai:URL#MODEL", "guard")


class GuardRM(RewardModel):
    """The platform's rule guard as a reward: (1 - P(unsafe)) + helpfulness, each in [0, 1],
    for the answer to the conversation's user turns (joined)."""

    name = "guard"

    def __init__(self) -> None:
        from envs.redteam.judges import GuardJudge

        self.judge = GuardJudge()

    def score(self, conversations: list[list[Message]], answers: list[str]) -> list[float | None]:
        prompts = [
            "\n".join(str(t["content"]) for t in conv if t.get("role") == "user") for conv in conversations
        ]
        verdicts = self.judge.judge_many(list(zip(prompts, answers)))
        return [round((1.0 - v.p_unsafe) + v.helpfulness, 6) for v in verdicts]


CLASSIFIER_OPTIONS = ("device", "batch_size", "max_length")
JUDGE_OPTIONS = ("mode", "style", "criteria", "votes", "temperature", "max_new_tokens", "seed")


def load_rm(spec: str, **options: Any) -> RewardModel:
    """The reward model a spec names; `options` are its backend's settings (None: the default).
    A ValueError names a bad spec or an option the backend does not take."""
    options = {key: value for key, value in options.items() if value is not None}
    kind, _, target = spec.partition(":")
    if spec == "guard":
        _only(spec, options, ())
        return GuardRM()
    if kind == "classifier" and target:
        from evol.rewards.classifier import ClassifierRM

        _only(spec, options, CLASSIFIER_OPTIONS)
        return ClassifierRM(target, **options)
    if kind in ("judge", "openai") and target:
        from agents import load_agent
        from evol.rewards.judge import JudgeRM

        _only(spec, options, JUDGE_OPTIONS)
        agent_spec = target if kind == "judge" else spec
        return JudgeRM(load_agent(agent_spec), name=spec, **options)
    raise ValueError(f"unknown reward-model spec {spec!r}: use one of {', '.join(RM_KINDS)}")


def _only(spec: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    extra = sorted(set(options) - set(allowed))
    if extra:
        raise ValueError(
            f"the reward model {spec!r} takes no option(s) {extra} (it takes {list(allowed) or 'none'})"
        )
