"""The agent server: a chat model served as an OpenAI-compatible endpoint (`evol serve-agent`).

`create_agent_app(model, model_name)` builds the Flask app and `serve_model(...)` runs it on
waitress. The model is any `ChatModel`; `evol.agent_server` makes one of any `agents.Agent`
(this package imports no agents), so `OpenAIAgent`, `vllm`'s clients or the `openai`
package reach a local model like a hosted one.

| method, route | answer |
|---|---|
| GET /health | 200 `{"status": "ok", "model", "running", "waiting", "max_queue", "batches"}` (no token needed) |
| GET /v1/models | 200 `{"object": "list", "data": [{"id": model_name, ...}]}` |
| POST /v1/chat/completions | 200 OpenAI's `chat.completion` (messages, temperature, top_p, max_tokens, stop, n, seed) |

Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`: 400 a malformed
body, 401 a bad token, 404 an unknown model or route, 413 a body too large, 500 a failed
generation, and 503 with `Retry-After` when more than `max_queue` requests wait.

One thread runs the model. Requests that arrive within a few milliseconds of each other
and sample alike (same temperature, top_p, max_tokens, stop and n, no seed) share one
`model.generate` call; a request with a seed runs alone, so its seed alone decides it.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Blueprint, Flask, current_app, jsonify, request

from server import AGENT_TOKEN_ENV
from server.agent_batcher import GenerationBatcher, GenerationJob, GenerationResult, Overloaded
from server.http import HttpFront, allowed_hosts, json_body, run_waitress, token_from_env

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 256
MAX_SAMPLES = 64
ROLES = {"system", "developer", "user", "assistant", "tool"}


class ChatModel(Protocol):
    """What the agent server serves. `sampling` holds temperature, top_p, max_new_tokens,
    stop and n (the fields of `agents.SamplingParams`)."""

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


# ---- requests ---------------------------------------------------------------------------
@dataclass
class CompletionRequest:
    messages: list[dict[str, Any]]
    sampling: dict[str, Any]
    seed: int | None


def _invalid(param: str, message: str) -> OpenAIError:
    return OpenAIError(400, message, code="invalid_value", param=param)


def _number(
    data: dict[str, Any], name: str, default: float, low: float, high: float, open_low: bool = False
) -> float:
    value = data.get(name, default)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not ((low < value if open_low else low <= value) and value <= high):
        raise _invalid(name, f"'{name}' must be a number in {'(' if open_low else '['}{low:g}, {high:g}]")
    return float(value)


def _integer(data: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = data.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _invalid(name, f"'{name}' must be an integer in [{low}, {high}]")
    return value


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise OpenAIError(
            400, "'messages' (a non-empty list) is required", code="missing_messages", param="messages"
        )
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise _invalid(f"messages[{i}].role", f"messages[{i}] needs a 'role' among {sorted(ROLES)}")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise _invalid(
                f"messages[{i}].content", f"messages[{i}].content must be a string or content parts"
            )
        role = "system" if message["role"] == "developer" else message["role"]
        messages.append({**message, "role": role, "content": "" if content is None else content})
    return messages


def parse_completion_request(data: Any, model_name: str) -> CompletionRequest:
    """A chat-completion body checked field by field; `OpenAIError` (400 or 404) names what is wrong."""
    if not isinstance(data, dict):
        raise OpenAIError(400, "the request body must be a JSON object", code="invalid_body")
    if data.get("stream"):
        raise _invalid("stream", "streaming is not supported: leave 'stream' out or false")
    model = data.get("model")
    if model is not None and model != model_name:
        message = f"the model {model!r} does not exist; this server serves {model_name!r}"
        raise OpenAIError(404, message, code="model_not_found", param="model")
    messages = _messages(data.get("messages"))
    stop = data.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _invalid("stop", "'stop' must be a string or a list of strings")
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise _invalid("seed", "'seed' must be an integer")
    max_tokens = "max_completion_tokens" if "max_completion_tokens" in data else "max_tokens"
    sampling = {
        "temperature": _number(data, "temperature", 1.0, 0.0, 2.0),
        "top_p": _number(data, "top_p", 1.0, 0.0, 1.0, open_low=True),
        "max_new_tokens": _integer(data, max_tokens, DEFAULT_MAX_TOKENS, 1, 1 << 20),
        "stop": [s for s in stop if s],
        "n": _integer(data, "n", 1, 1, MAX_SAMPLES),
    }
    return CompletionRequest(messages, sampling, seed)


def completion_response(
    model: ChatModel, model_name: str, parsed: CompletionRequest, result: GenerationResult, prompt_tokens: int
) -> dict[str, Any]:
    """OpenAI's `chat.completion` object for one request's replies."""
    limit = parsed.sampling["max_new_tokens"]
    choices, generated = [], 0
    for index, text in enumerate(result.replies):
        # The model's count covers all samples together: per sample, count the text again.
        tokens = result.tokens if len(result.replies) == 1 else model.count_tokens(text)
        generated += tokens or 0
        message = {"role": "assistant", "content": text}
        finish = "length" if tokens is not None and tokens >= limit else "stop"
        choices.append({"index": index, "message": message, "finish_reason": finish, "logprobs": None})
    generated = result.tokens if result.tokens is not None else generated
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generated,
        "total_tokens": prompt_tokens + generated,
    }
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": choices,
        "usage": usage,
    }


# ---- the routes -------------------------------------------------------------------------
@dataclass
class ModelService:
    """What the routes reach through the app: the model, its name and its batcher."""

    model: ChatModel
    name: str
    batcher: GenerationBatcher
    created: int

    def complete(self, data: dict[str, Any]) -> dict[str, Any]:
        parsed = parse_completion_request(data, self.name)
        context = getattr(self.model, "max_context_tokens", None)
        if context is not None and parsed.sampling["max_new_tokens"] >= context:
            message = f"'max_tokens' must be below the model's context of {context} tokens"
            raise OpenAIError(400, message, code="invalid_value", param="max_tokens")
        try:
            # Rendering the prompt here turns a conversation the model cannot take into this
            # request's 400, rather than a failure of the batch it would have joined.
            prompt_tokens = self.model.count_prompt_tokens(parsed.messages)
        except ValueError as error:
            message = f"the model's chat template cannot render these messages: {error}"
            raise OpenAIError(400, message, code="invalid_messages", param="messages") from None
        try:
            future = self.batcher.submit(GenerationJob(parsed.messages, parsed.sampling, parsed.seed))
        except Overloaded as error:
            message = f"the server is overloaded: {error}; retry later"
            raise OpenAIError(
                503, message, "server_error", "overloaded", headers={"Retry-After": "1"}
            ) from None
        try:
            result = future.result()
        except Exception:
            log.exception("generation failed")
            message = "generation failed; the server log has the details"
            raise OpenAIError(500, message, "server_error", "generation_failed") from None
        return completion_response(self.model, self.name, parsed, result, prompt_tokens)


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
    )


@routes.get("/v1/models")
def models():
    svc = service()
    card = {"id": svc.name, "object": "model", "created": svc.created, "owned_by": "evolgym"}
    return jsonify(object="list", data=[card])


@routes.post("/v1/chat/completions")
def chat_completions():
    return jsonify(service().complete(json_body(request, required=True)))


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
