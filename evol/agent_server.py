"""Serve an `agents.Agent` as an OpenAI-compatible chat endpoint: what `evol serve-agent` runs.

The HTTP side is `server.agent_app`, which knows no agents: `AgentChatModel` adapts an agent
to its `ChatModel` (sampling, seeding, stop strings, token counts). `create_agent_app` and
`serve_agent` take the agent itself. The command line is `evol.agent_server_cli` (no Flask).

An agent with a scored decode loop (`agents.hf.HFAgent`: `prompt_ids` and `decode`) also
serves tools, `tool_choice`, `response_format`, log-probabilities, penalties, logit bias and
streamed text. Tools reach the prompt through the chat template's tool support; the reply
is held to the tool-call format that template teaches (`agents.structured`: xgrammar), so
`tool_choice` "required" or a named function always answers with tool calls, and with
"auto" any call the model starts has arguments that match its tool's schema.
`response_format` json_object / json_schema are constrained the same way.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from agents import Agent, AgentInput, SamplingParams, seed_rngs
from agents.base import cut_at_stop
from server import agent_app
from server.agent_batcher import GenerationJob, GenerationOptions, GenerationResult, Reply, TokenLogprob
from server.openai_schema import RequestError

DETAILED_FEATURES = frozenset(agent_app.FEATURES)


class AgentChatModel:
    """`agent` as the agent server's `ChatModel`."""

    def __init__(self, agent: Agent):
        self.agent = agent
        self.max_context_tokens: int | None = getattr(agent, "max_context_tokens", None)
        self.last_token_counts: list[int] | None = None
        self.detailed = callable(getattr(agent, "decode", None)) and callable(
            getattr(agent, "prompt_ids", None)
        )
        self.features = DETAILED_FEATURES if self.detailed else frozenset()
        # Image parts reach agents that read them or pass them on; a text-only model refuses them.
        self.accepts_images = bool(getattr(agent, "accepts_images", True))

    def generate(
        self, conversations: list[list[dict[str, Any]]], sampling: dict[str, Any], seed: int | None
    ) -> list[list[str]]:
        params = SamplingParams(**sampling)
        seed_rngs(seed)
        replies = self.agent.generate([AgentInput(messages) for messages in conversations], params)
        self.last_token_counts = getattr(self.agent, "last_token_counts", None)
        return [[cut_at_stop(text, params.stop) for text in samples] for samples in replies]

    def count_prompt_tokens(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> int:
        """Prompt tokens (with `tools` shown) for an agent with a Hugging Face tokenizer (0 for others)."""
        tokenizer = getattr(self.agent, "tokenizer", None)
        if tokenizer is None:
            return 0
        from agents.hf import chat_prompt_ids

        template = getattr(self.agent, "chat_template", None)
        try:
            return len(chat_prompt_ids(tokenizer, messages, chat_template=template, tools=tools))
        except Exception as error:
            raise ValueError(str(error)) from None

    def count_tokens(self, text: str) -> int | None:
        tokenizer = getattr(self.agent, "tokenizer", None)
        return None if tokenizer is None else len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        self.agent.close()

    # ---- requests with options (agents with a scored decode loop) ----------------------
    def prepare(self, messages: list[dict[str, Any]], options: GenerationOptions, max_new_tokens: int) -> int:
        """The prompt's tokens, after checking what `options` ask of this model (`RequestError`).
        Called on request threads: it leaves the agent's prompt cache to the model's thread."""
        if not self.detailed:
            return self.count_prompt_tokens(messages)
        from agents.structured import Constraint

        grammars = self.agent.scored_decoder.grammars
        constraint = self.constraint(options)
        # Each schema alone first, so that a 400 names the one that cannot be compiled.
        schemas = [
            (f"tools[{i}].function.parameters", tool["function"]["parameters"])
            for i, tool in enumerate(options.tools or [])
        ]
        if options.response_format is not None and options.response_format["type"] == "json_schema":
            schemas.append(("response_format.json_schema.schema", options.response_format["schema"]))
        for param, schema in schemas:
            try:
                grammars.compile(Constraint.json_schema(schema))
            except ValueError as error:
                raise RequestError(param, f"{param} cannot be used: {error}") from None
        if constraint is not None:
            try:
                grammars.compile(constraint)
            except ValueError as error:
                raise RequestError("tools", f"the tools cannot be used together: {error}") from None
        vocab = self.agent.scored_decoder.vocab_size
        for token in options.logit_bias:
            if token >= vocab:
                raise RequestError(
                    "logit_bias", f"logit_bias names token {token}; the vocabulary has {vocab}"
                )
        return self.count_prompt_tokens(messages, options.tools)

    def tool_format(self, options: GenerationOptions) -> Any:
        if not options.tools:
            return None
        fmt = self.agent.tool_call_format
        if fmt is None:
            raise RequestError(
                "tools",
                "this model's chat template shows no tools, or has them called in a format this "
                "server does not read (<tool_call> JSON as in Qwen/Hermes, or Llama 3's JSON); "
                "serve-agent --chat-template FILE gives it another template",
                code="unsupported_parameter",
            )
        return fmt

    def constraint(self, options: GenerationOptions) -> Any:
        from agents.structured import Constraint

        fmt = self.tool_format(options)
        if fmt is not None:
            choice = options.function if options.tool_choice == "function" else options.tool_choice
            return Constraint.tool_calls(options.tools, fmt, choice, options.parallel_tool_calls)
        response_format = options.response_format
        if response_format is None:
            return None
        if response_format["type"] == "json_object":
            return Constraint.json_object()
        return Constraint.json_schema(response_format["schema"])

    def generate_jobs(self, jobs: list[GenerationJob], seed: int | None) -> list[GenerationResult]:
        """Jobs with nothing beyond sampling through `generate` (prefix cache and all); the
        others (and streamed jobs) through the agent's scored decode loop."""
        plain = [job for job in jobs if not self.detailed or (job.options.plain and job.on_delta is None)]
        results: dict[int, GenerationResult] = {}
        if plain:
            replies = self.generate([job.messages for job in plain], jobs[0].sampling, seed)
            counts = self.last_token_counts
            if not isinstance(counts, list) or len(counts) != len(plain):
                counts = [None] * len(plain)
            for job, samples, count in zip(plain, replies, counts):
                results[id(job)] = GenerationResult(list(samples), count)
        rich = [job for job in jobs if id(job) not in results]
        if rich:
            if not plain:  # a seeded job runs alone: seed here when `generate` did not
                seed_rngs(seed)
            for job, result in zip(rich, self.decode_jobs(rich)):
                results[id(job)] = result
        return [results[id(job)] for job in jobs]

    def decode_jobs(self, jobs: list[GenerationJob]) -> list[GenerationResult]:
        from agents.hf_decode import DecodeRequest
        from agents.structured import parse_tool_calls

        decoder = self.agent.scored_decoder
        sampling = SamplingParams(**jobs[0].sampling)

        def to_logprobs(scores: list[Any]) -> list[TokenLogprob]:
            return [
                TokenLogprob(
                    decoder.token_bytes(s.token), s.logprob, [(decoder.token_bytes(t), lp) for t, lp in s.top]
                )
                for s in scores
            ]

        def sink(job: GenerationJob) -> Any:
            if job.on_delta is None:
                return None
            return lambda sample, text, scores: job.on_delta(sample, text, to_logprobs(scores))

        requests, formats = [], []
        for job in jobs:
            options = job.options
            fmt = self.tool_format(options)
            formats.append(fmt)
            requests.append(
                DecodeRequest(
                    prompt=self.agent.prompt_ids(job.messages, sampling.max_new_tokens, tools=options.tools),
                    constraint=self.constraint(options),
                    top_logprobs=options.top_logprobs,
                    presence_penalty=options.presence_penalty,
                    frequency_penalty=options.frequency_penalty,
                    logit_bias=options.logit_bias,
                    hold=(fmt.trigger,) if fmt is not None else (),
                    on_text=sink(job),
                    cancelled=job.cancelled.is_set,
                )
            )
        decoded = self.agent.decode(requests, sampling)
        counts = getattr(self.agent, "last_token_counts", None) or [None] * len(jobs)
        results = []
        for job, fmt, samples, count in zip(jobs, formats, decoded, counts):
            names = {tool["function"]["name"] for tool in job.options.tools or []}
            replies = []
            for sample in samples:
                reply = Reply(sample.text, finish_reason=sample.finish, tokens=sample.tokens)
                if sample.scores is not None:
                    reply.logprobs = to_logprobs(sample.scores)
                if fmt is not None:
                    parsed = parse_tool_calls(sample.text, fmt, names)
                    reply.content, reply.tool_calls = parsed.content, parsed.calls
                replies.append(reply)
            results.append(GenerationResult([sample.text for sample in samples], count, replies))
        return results


def create_agent_app(agent: Agent, model_name: str, **options: Any) -> Flask:
    """`server.agent_app.create_agent_app` serving `agent` (same options)."""
    return agent_app.create_agent_app(AgentChatModel(agent), model_name, **options)


def serve_agent(agent: Agent, model_name: str, **options: Any) -> None:
    """`server.agent_app.serve_model` serving `agent` (same options) until interrupted."""
    agent_app.serve_model(AgentChatModel(agent), model_name, **options)
