"""Serve an `agents.Agent` as an OpenAI-compatible chat endpoint: what `evol serve-agent` runs.

The HTTP side is `server.agent_app`, which knows no agents: `AgentChatModel` adapts an agent
to its `ChatModel` (sampling, seeding, stop strings, token counts). `create_agent_app` and
`serve_agent` take the agent itself. The command line is `evol.agent_server_cli` (no Flask).
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from agents import Agent, AgentInput, SamplingParams, seed_rngs
from agents.base import cut_at_stop
from server import agent_app


class AgentChatModel:
    """`agent` as the agent server's `ChatModel`."""

    def __init__(self, agent: Agent):
        self.agent = agent
        self.max_context_tokens: int | None = getattr(agent, "max_context_tokens", None)
        self.last_token_counts: list[int] | None = None

    def generate(
        self, conversations: list[list[dict[str, Any]]], sampling: dict[str, Any], seed: int | None
    ) -> list[list[str]]:
        params = SamplingParams(**sampling)
        seed_rngs(seed)
        replies = self.agent.generate([AgentInput(messages) for messages in conversations], params)
        self.last_token_counts = getattr(self.agent, "last_token_counts", None)
        return [[cut_at_stop(text, params.stop) for text in samples] for samples in replies]

    def count_prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        """Prompt tokens for an agent with a Hugging Face tokenizer (0 for others)."""
        tokenizer = getattr(self.agent, "tokenizer", None)
        if tokenizer is None:
            return 0
        from agents.hf import chat_prompt_ids

        template = getattr(self.agent, "chat_template", None)
        try:
            return len(chat_prompt_ids(tokenizer, messages, chat_template=template))
        except Exception as error:
            raise ValueError(str(error)) from None

    def count_tokens(self, text: str) -> int | None:
        tokenizer = getattr(self.agent, "tokenizer", None)
        return None if tokenizer is None else len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        self.agent.close()


def create_agent_app(agent: Agent, model_name: str, **options: Any) -> Flask:
    """`server.agent_app.create_agent_app` serving `agent` (same options)."""
    return agent_app.create_agent_app(AgentChatModel(agent), model_name, **options)


def serve_agent(agent: Agent, model_name: str, **options: Any) -> None:
    """`server.agent_app.serve_model` serving `agent` (same options) until interrupted."""
    agent_app.serve_model(AgentChatModel(agent), model_name, **options)
