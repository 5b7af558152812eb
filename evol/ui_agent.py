"""The agent that takes turns on the page at /ui: `evol serve ... --ui-agent SPEC`.

`ui_agent_from_spec(spec)` loads the agent a spec names (`agents.load_agent`: `hf:PATH`,
`openai:URL#MODEL`, `random`, ...) and wraps it as the server's `UiAgent`: the page's
conversation in, one greedy action out. The page's images reach the agent as the rollout
engine gives them (`evol.rollout.user_content`): OpenAI content parts with a PNG data URL,
re-encoded from the decoded pixels, and a blank image (the text-only modes of multimodal
envs) left out.
"""

from __future__ import annotations

import re
from typing import Any

from agents import Agent, AgentInput, SamplingParams, load_agent
from envs.wire import decode_image, encode_image

UI_MAX_NEW_TOKENS = 256  # room for a short reasoning line before the action, not an essay


class UiAgent:
    """An agent answering the page's conversations one at a time (the server serialises the
    calls). `name` is the spec it was loaded from; calling it with chat messages returns the
    action parsed from the agent's greedy reply."""

    def __init__(self, spec: str, agent: Agent, sampling: SamplingParams):
        self.name = re.sub(r"//[^/@#]*@", "//", spec)  # shown on the page: never a URL's credentials
        self.agent = agent
        self.sampling = sampling

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        conversation = [{**message, "content": agent_content(message["content"])} for message in messages]
        (output,) = self.agent.act([AgentInput(messages=conversation)], self.sampling)
        return output.action

    def close(self) -> None:
        self.agent.close()


def agent_content(content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A message's content as the rollout engine gives it to agents: text stays text; content
    parts keep their text and their images, each decoded and encoded again as a PNG data URL
    (`envs.wire`), blank ones dropped; parts left with no image become plain text."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if part["type"] == "image_url":
            pixels = decode_image(part["image_url"]["url"])
            if pixels.any():
                parts.append({"type": "image_url", "image_url": {"url": encode_image(pixels)}})
        else:
            parts.append({"type": "text", "text": part["text"]})
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def ui_agent_from_spec(spec: str, max_new_tokens: int = UI_MAX_NEW_TOKENS) -> UiAgent:
    """The page's agent for an agent spec, sampling greedily; a ValueError says why a spec
    cannot serve (unknown, not loadable, or an agent that needs the env object, as the
    expert does: the page's expert buttons play it already)."""
    try:
        agent = load_agent(spec)
    except OSError as error:
        raise ValueError(f"--ui-agent {spec}: cannot load it: {error}") from None
    if agent.needs_env:
        raise ValueError(
            f"--ui-agent {spec}: this agent acts by reading the env object, not the conversation "
            "(the page's Expert buttons play the expert already); give a model, e.g. hf:PATH or "
            "openai:URL#MODEL"
        )
    return UiAgent(spec, agent, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
