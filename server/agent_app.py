"""The agent server: a chat model served as an OpenAI-compatible endpoint (`evol serve-agent`).

`create_agent_app(model, model_name)` builds the Flask app and `serve_model(...)` runs it on
waitress. The model is any `ChatModel`; `evol.agent_server` makes one of any `agents.Agent`
(this package imports no agents), so `OpenAIAgent`, `vllm`'s clients or the `openai`
package reach a local model like a hosted one.

| method, route | answer |
|---|---|
| GET /health | 200 `{"status": "ok", "model", "running", "waiting", "max_queue", "batches"}` (no token needed) |
| GET /v1/models | 200 `{"object": "list", "data": [{"id": model_name, ...}]}` |
| GET /v1/models/{id} | 200 the model's card; 404 `model_not_found` for another id |
| POST /v1/chat/completions | 200 OpenAI's `chat.completion`, or with `stream: true` its `chat.completion.chunk` events (server-sent events ending in `data: [DONE]`) |

`server.openai_schema` checks each request field by field (what is served, what is taken
as advice, what is refused). Tools, `tool_choice`, `response_format`, logprobs, penalties and
`logit_bias` need a model that serves them (`ChatModel.features`: a local Hugging Face
model does); another model answers them with a 400 naming the field. Streaming works with
every model: one that does not stream sends its reply as one chunk when it is done.

Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`: 400 a malformed
body or a field not served, 401 a bad token, 404 an unknown model or route, 413 a body too
large, 500 a failed generation, and 503 with `Retry-After` when more than `max_queue`
requests wait. A stream that fails after it started ends with an `{"error": ...}` event.

One thread runs the model. Requests that arrive within a few milliseconds of each other
and sample alike (same temperature, top_p, max_tokens, stop and n, no seed) share one
`model.generate` call; a request with a seed runs alone, so its seed alone decides it.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from envs.errors import public_message
from server import AGENT_TOKEN_ENV
from server.agent_batcher import (
    GenerationBatcher,
    GenerationJob,
    GenerationOptions,
    GenerationResult,
    Overloaded,
    Reply,
    TokenLogprob,
)
from server.http import HttpFront, allowed_hosts, json_body, run_waitress, token_from_env
from server.openai_schema import (
    ChatRequest,
    ChunkWriter,
    RequestError,
    completion_object,
    finish_reason,
    parse_chat_request,
    usage_object,
)

log = logging.getLogger(__name__)

# Request fields beyond sampling, each served only by a model that lists it in `features`.
FEATURES = ("tools", "response_format", "logprobs", "presence_penalty", "frequency_penalty", "logit_bias")


class ChatModel(Protocol):
    """What the agent server serves. `sampling` holds temperature, top_p, max_new_tokens,
    stop and n (the fields of `agents.SamplingParams`).

    A model may also have `features` (the names in `FEATURES` it serves), `prepare`
    (checks a request's options and counts its prompt) and `generate_jobs` (answers jobs
    with their options, `Reply` details per sample and streamed text); `accepts_images`
    says whether it takes image content parts."""

    max_context_tokens: int | None  # prompt + reply tokens at most, where the model has a limit

    def generate(
        self, conversations: list[list[dict[str, Any]]], sampling: dict[str, Any], seed: int | None
    ) -> list[list[str]]:
        """`sampling["n"]` replies per conversation, each cut before the first `stop` string;
        sampling seeded with `seed` (None: a fresh seed). `last_token_counts`, where the model
        sets it, holds the tokens generated for each conversation (all samples together)."""
        ...

    def count_prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        """The prompt's tokens (0 where the model does not count); ValueError if it cannot render them."""
        ...

    def count_tokens(self, text: str) -> int | None: ...

    def close(self) -> None: ...


class OpenAIError(Exception):
    """Answered as `{"error": {"message", "type", "param", "code"}}` with `status` (and `headers`)."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        message = public_message(message)  # a message may reach a client; a server path may not
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def openai_error(status: int, kind: str, message: str, headers: dict[str, str]) -> OpenAIError:
    """The HTTP plumbing's failures (`server.http`) in OpenAI's shape: `kind` is the code."""
    type_ = "server_error" if status >= 500 else "invalid_request_error"
    return OpenAIError(status, message, type_, code=kind, headers=headers)


def request_error(error: RequestError) -> OpenAIError:
    return OpenAIError(error.status, error.message, code=error.code, param=error.param)


def requested_features(options: GenerationOptions) -> list[str]:
    """The `FEATURES` a request's options use."""
    used = {
        "tools": bool(options.tools),
        "response_format": options.response_format is not None,
        "logprobs": options.top_logprobs is not None,
        "presence_penalty": bool(options.presence_penalty),
        "frequency_penalty": bool(options.frequency_penalty),
        "logit_bias": bool(options.logit_bias),
    }
    return [name for name in FEATURES if used[name]]


def plain_replies(model: ChatModel, parsed: ChatRequest, result: GenerationResult) -> list[Reply]:
    """A plain model's replies with their finish reasons (from token counts where it counts them)."""
    limit = parsed.sampling["max_new_tokens"]
    replies = []
    for text in result.replies:
        # The model's count covers all samples together: per sample, count the text again.
        tokens = result.tokens if len(result.replies) == 1 else model.count_tokens(text)
        finish = "length" if tokens is not None and tokens >= limit else "stop"
        replies.append(Reply(text, finish_reason=finish, tokens=tokens))
    return replies


def completion_tokens(result: GenerationResult, replies: list[Reply]) -> int:
    if result.tokens is not None:
        return result.tokens
    return sum(reply.tokens or 0 for reply in replies)


# ---- the routes -------------------------------------------------------------------------
@dataclass
class ModelService:
    """What the routes reach through the app: the model, its name and its batcher."""

    model: ChatModel
    name: str
    batcher: GenerationBatcher
    created: int

    def card(self) -> dict[str, Any]:
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "evolgym"}

    def check(self, data: Any) -> tuple[ChatRequest, int]:
        """The parsed request and its prompt tokens; `OpenAIError` for anything not served."""
        try:
            parsed = parse_chat_request(
                data, self.name, images=bool(getattr(self.model, "accepts_images", False))
            )
        except RequestError as error:
            raise request_error(error) from None
        served = getattr(self.model, "features", frozenset())
        for name in requested_features(parsed.options):
            if name not in served:
                message = (
                    f"'{name}' is not served by this model's backend (a local Hugging Face model serves it)"
                )
                raise OpenAIError(400, message, code="unsupported_parameter", param=name)
        context = getattr(self.model, "max_context_tokens", None)
        if context is not None and parsed.sampling["max_new_tokens"] >= context:
            field = parsed.max_tokens_field
            message = f"'{field}' must be below the model's context of {context} tokens"
            raise OpenAIError(400, message, code="invalid_value", param=field)
        prepare = getattr(self.model, "prepare", None)
        try:
            # Rendering the prompt here turns a conversation the model cannot take into this
            # request's 400, rather than a failure of the batch it would have joined.
            if prepare is not None:
                prompt_tokens = prepare(parsed.messages, parsed.options, parsed.sampling["max_new_tokens"])
            else:
                prompt_tokens = self.model.count_prompt_tokens(parsed.messages)
        except RequestError as error:
            raise request_error(error) from None
        except ValueError as error:
            message = f"the model's chat template cannot render these messages: {error}"
            raise OpenAIError(400, message, code="invalid_messages", param="messages") from None
        return parsed, prompt_tokens

    def submit(self, job: GenerationJob):
        try:
            return self.batcher.submit(job)
        except Overloaded as error:
            message = f"the server is overloaded: {error}; retry later"
            raise OpenAIError(
                503, message, "server_error", "overloaded", headers={"Retry-After": "1"}
            ) from None

    def replies(self, parsed: ChatRequest, result: GenerationResult) -> list[Reply]:
        return result.details if result.details is not None else plain_replies(self.model, parsed, result)

    def complete(self, data: Any) -> dict[str, Any] | Response:
        parsed, prompt_tokens = self.check(data)
        if parsed.stream:
            return self.stream(parsed, prompt_tokens)
        job = GenerationJob(parsed.messages, parsed.sampling, parsed.seed, options=parsed.options)
        future = self.submit(job)
        try:
            result = future.result()
        except Exception:
            log.exception("generation failed")
            message = "generation failed; the server log has the details"
            raise OpenAIError(500, message, "server_error", "generation_failed") from None
        replies = self.replies(parsed, result)
        usage = usage_object(prompt_tokens, completion_tokens(result, replies))
        return completion_object(self.name, replies, parsed.options.top_logprobs is not None, usage)

    def stream(self, parsed: ChatRequest, prompt_tokens: int) -> Response:
        """The completion as server-sent events: text as it is generated, then each choice's
        tool calls and finish reason, the usage (with `include_usage`), and `[DONE]`."""
        events: queue.Queue = queue.Queue()

        def on_delta(sample: int, text: str, logprobs: list[TokenLogprob]) -> None:
            events.put((sample, text, logprobs))

        job = GenerationJob(
            parsed.messages, parsed.sampling, parsed.seed, options=parsed.options, on_delta=on_delta
        )
        future = self.submit(job)  # a 503 here is still a plain JSON answer
        future.add_done_callback(lambda _: events.put(None))
        writer = ChunkWriter(self.name, parsed.include_usage)
        scored = parsed.options.top_logprobs is not None

        def body() -> Iterator[str]:
            shown = [""] * parsed.sampling["n"]
            sent = [0] * parsed.sampling["n"]  # log-probabilities sent per choice
            try:
                for index in range(parsed.sampling["n"]):
                    yield writer.delta(index, {"role": "assistant", "content": ""}, [] if scored else None)
                while (event := events.get()) is not None:
                    index, text, logprobs = event
                    shown[index] += text
                    sent[index] += len(logprobs)
                    yield writer.delta(index, {"content": text}, logprobs if scored else None)
                try:
                    result = future.result()
                except Exception:
                    log.exception("generation failed")
                    error = OpenAIError(
                        500, "generation failed; the server log has the details", "server_error"
                    )
                    yield writer.error(error.body())
                    return
                replies = self.replies(parsed, result)
                for index, reply in enumerate(replies):
                    content = reply.content or ""
                    rest = content[len(shown[index]) :] if content.startswith(shown[index]) else ""
                    logprobs = (reply.logprobs or [])[sent[index] :] if scored else None
                    if rest or logprobs:
                        yield writer.delta(index, {"content": rest}, logprobs)
                    if reply.tool_calls:
                        yield from writer.tool_calls(index, reply.tool_calls)
                    yield writer.delta(index, {}, finish=finish_reason(reply))
                if parsed.include_usage:
                    yield writer.usage(usage_object(prompt_tokens, completion_tokens(result, replies)))
                yield writer.done()
            finally:
                job.cancelled.set()  # the client went away, or all is sent: stop generating for it

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return Response(body(), mimetype="text/event-stream", headers=headers)


def service() -> ModelService:
    return current_app.extensions["evol_agent"]


routes = Blueprint("agent", __name__)


@routes.get("/health")
def health():
    svc = service()
    batcher = svc.batcher
    return jsonify(
        status="ok",
        model=svc.name,
        running=batcher.running,
        waiting=batcher.waiting,
        max_queue=batcher.max_queue,
        batches=batcher.calls,
        generated_tokens=batcher.generated_tokens,
    )


@routes.get("/v1/models")
def models():
    return jsonify(object="list", data=[service().card()])


@routes.get("/v1/models/<path:model_id>")
def model_card(model_id: str):
    svc = service()
    if model_id != svc.name:
        message = f"the model {model_id!r} does not exist; this server serves {svc.name!r}"
        raise OpenAIError(404, message, code="model_not_found", param="model")
    return jsonify(svc.card())


@routes.post("/v1/chat/completions")
def chat_completions():
    answer = service().complete(json_body(request, required=True))
    return answer if isinstance(answer, Response) else jsonify(answer)


# ---- the app ----------------------------------------------------------------------------
def create_agent_app(
    model: ChatModel,
    model_name: str,
    token: str | None = None,
    max_queue: int = 16,
    max_batch: int = 16,
    max_body_bytes: int = 16 << 20,
    host: str = "127.0.0.1",
    extra_hosts: tuple[str, ...] = (),
) -> Flask:
    """The Flask app serving `model` as the model `model_name` (see the module docstring)."""
    app = Flask("evolgym-agent")
    front = HttpFront(
        OpenAIError,
        openai_error,
        hosts=allowed_hosts(host, extra_hosts),
        token=token,
        unauthorized="invalid_api_key",
    )
    front.install(app, max_body_bytes=max_body_bytes)
    batcher = GenerationBatcher(model, max_queue=max_queue, max_batch=max_batch)
    app.extensions["evol_agent"] = ModelService(model, model_name, batcher, created=int(time.time()))
    app.register_blueprint(routes)
    return app


def serve_model(
    model: ChatModel,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 8100,
    threads: int | None = None,
    token: str | None = None,
    max_queue: int = 16,
    max_batch: int = 16,
    extra_hosts: tuple[str, ...] = (),
) -> None:
    """Serve `model` on waitress until interrupted (the token, if none is given, from
    `EVOL_AGENT_TOKEN`). `threads` defaults to enough for every request the batcher admits,
    so overload is answered with 503 rather than left in waitress's queue."""
    app = create_agent_app(
        model,
        model_name,
        token=token_from_env(token, AGENT_TOKEN_ENV),
        max_queue=max_queue,
        max_batch=max_batch,
        host=host,
        extra_hosts=extra_hosts,
    )
    threads = threads or max_queue + max_batch + 4
    banner = f"evol: serving agent {model_name!r} on http://{host}:{port}/v1 ({threads} threads)"
    try:
        run_waitress(app, host, port, threads, ident="evolgym-agent", channel_timeout=300, banner=banner)
    finally:
        app.extensions["evol_agent"].batcher.close()
        model.close()
