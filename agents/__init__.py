"""EvolGym agents: one batched interface (`agents.base`) and its backends.

An agent spec string picks a backend: `expert`, `random`, `hf:PATH`, `hf-vision:PATH`, `vllm:PATH`,
`openai:URL#MODEL`, and prompting strategies wrapping one of them: `self-demos:SPEC`,
`self-icl:SPEC`, `few-shot:SPEC`, `zero-shot:SPEC` (`agents.demo_baselines`).
"""

from __future__ import annotations

from typing import Any

from agents.base import (
    Agent,
    AgentInput,
    AgentOutput,
    Message,
    SamplingParams,
    conversation,
    parse_action,
    seed_rngs,
    window,
)


def load_agent(spec: str, **kwargs: Any) -> Agent:
    """Build the agent a spec string names; backends are imported only when asked for."""
    kind, _, target = spec.partition(":")
    if spec == "expert":
        from agents.scripted import ExpertAgent

        return ExpertAgent()
    if spec == "random" or kind == "random":
        from agents.scripted import RandomAgent

        return RandomAgent(seed=int(target) if target else None)
    if kind in STRATEGIES:
        if not target or target.partition(":")[0] in STRATEGIES:
            raise ValueError(
                f"agent spec {spec!r}: {kind}: wraps a model agent spec (e.g. {kind}:hf:PATH), "
                f"not {'nothing' if not target else 'another strategy'}"
            )
        from agents import demo_baselines, self_demos

        module = self_demos if kind == "self-demos" else demo_baselines
        return getattr(module, STRATEGIES[kind])(load_agent(target, **kwargs))
    if kind == "hf" and target:
        from agents.hf import HFAgent

        return HFAgent(target, **kwargs)
    if kind == "hf-vision" and target:
        from agents.hf_vision import HFVisionAgent

        return HFVisionAgent(target, **kwargs)
    if kind == "vllm" and target:
        from agents.vllm_backend import VLLMAgent

        return VLLMAgent(target, **kwargs)
    if kind == "openai" and target:
        from agents.openai_compat import OpenAIAgent

        url, _, model = target.partition("#")
        return OpenAIAgent(url, model=model or None, **kwargs)
    raise ValueError(
        f"unknown agent spec {spec!r}: use expert, random, hf:PATH, vllm:PATH or openai:URL#MODEL, "
        f"or a strategy around one: {', '.join(s + ':SPEC' for s in STRATEGIES)}"
    )


STRATEGIES = {
    "self-demos": "SelfDemosAgent",
    "self-icl": "SelfICLAgent",
    "few-shot": "FewShotAgent",
    "zero-shot": "ZeroShotAgent",
}
SPEC_KINDS = ("expert", "random", *STRATEGIES, "hf", "hf-vision", "vllm", "openai")


class LazyAgent:
    """The agent a spec names, built on first use; it pickles as its spec.

    Env servers hand counterparts (critic, defender, judge) to worker processes this way:
    each worker builds its own agent instead of receiving a copy of a loaded model. It meets
    the counterparts' protocol (`complete`) and tells `needs_env` without building the agent."""

    def __init__(self, spec: str, **kwargs: Any):
        kind = spec.partition(":")[0]
        if kind not in SPEC_KINDS:
            raise ValueError(f"unknown agent spec {spec!r}: use one of {', '.join(SPEC_KINDS)}")
        self.spec = spec
        self.kwargs = kwargs
        self._agent: Agent | None = None

    def load(self) -> Agent:
        """The agent, built now if it was not yet."""
        if self._agent is None:
            self._agent = load_agent(self.spec, **self.kwargs)
        return self._agent

    @property
    def needs_env(self) -> bool:
        return self._agent.needs_env if self._agent is not None else self.spec == "expert"

    def complete(self, conversations: list[list[Message]], **sampling: Any) -> list[list[str]]:
        """`Agent.complete` of the agent (built on the first call)."""
        return self.load().complete(conversations, **sampling)

    def close(self) -> None:
        """Close the agent if it was built; an agent never built is not built to be closed."""
        if self._agent is not None:
            self._agent.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("spec", "kwargs", "_agent"):
            raise AttributeError(name)
        return getattr(self.load(), name)

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "kwargs": self.kwargs, "_agent": None}

    def __repr__(self) -> str:
        return f"LazyAgent({self.spec!r})"


__all__ = [
    "Agent",
    "LazyAgent",
    "AgentInput",
    "AgentOutput",
    "SamplingParams",
    "conversation",
    "load_agent",
    "parse_action",
    "seed_rngs",
    "window",
]
