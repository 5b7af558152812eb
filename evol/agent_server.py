"""Serve a local model as an OpenAI-compatible chat endpoint: `evol serve-agent`.

`create_agent_app(agent, model_name)` builds the Flask app; `serve_agent(...)` runs it on
waitress. Any `Agent` can be served (`--model PATH` loads a Hugging Face checkpoint,
`--agent SPEC` any spec), so `OpenAIAgent`, `vllm`'s clients or the `openai` package reach
it like a hosted model.

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
`agent.generate` call; a request with a seed runs alone, so its seed alone decides it.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import sys
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import waitress
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from agents import Agent, AgentInput, SamplingParams
from agents.openai_compat import cut_at_stop
from evol.agent_server_cli import TOKEN_ENV
from server.errors import ApiError
from server.http import allowed_hosts, host_allowed, json_body, token_matches

log = logging.getLogger(__name__)


DEFAULT_MAX_TOKENS = 256
MAX_SAMPLES = 64
ROLES = {"system", "developer", "user", "assistant", "tool"}


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


class Overloaded(Exception):
    """More requests wait than the server's `max_queue`."""


# ---- the batcher ------------------------------------------------------------------------
@dataclass
class GenerationJob:
    """One request's conversation and sampling; `future` gets its `GenerationResult`."""

    input: AgentInput
    sampling: SamplingParams
    seed: int | None = None
    future: Future = field(default_factory=Future)


@dataclass
class GenerationResult:
    replies: list[str]
    tokens: int | None  # tokens generated for all samples, where the agent counts them


def seed_rngs(seed: int | None) -> None:
    """Seed the RNGs a backend samples from: with the request's seed, else a fresh one.

    A fresh seed per call keeps unseeded requests independent even for a backend that
    restores torch's global RNG after sampling (then every call would replay one stream).
    """
    seed = secrets.randbits(63) if seed is None else seed % 2**63
    random.seed(seed)
    torch = sys.modules.get("torch")  # only a backend that already imported torch samples with it
    if torch is not None:
        torch.manual_seed(seed)


class GenerationBatcher:
    """Runs `agent.generate` on one thread of its own, micro-batching requests that sample alike.

    `submit` raises `Overloaded` when `max_queue` requests already wait behind a running
    batch (while the model is idle, the next batch's `max_batch` places count too).
    """

    def __init__(self, agent: Agent, max_queue: int = 16, max_batch: int = 16, wait_s: float = 0.005):
        if max_queue < 0 or max_batch < 1:
            raise ValueError("max_queue must be >= 0 and max_batch >= 1")
        self.agent = agent
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._cond = threading.Condition()
        self._pending: deque[GenerationJob] = deque()
        self._running = 0
        self._closed = False
        self.calls = 0  # agent.generate calls so far
        self._thread = threading.Thread(target=self._loop, name="agent-batcher", daemon=True)
        self._thread.start()

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def submit(self, job: GenerationJob) -> Future:
        with self._cond:
            if self._closed:
                raise RuntimeError("the server is shutting down")
            room = self.max_queue + (0 if self._running else self.max_batch)
            if len(self._pending) >= room:
                raise Overloaded(f"{len(self._pending)} requests are waiting (max_queue={self.max_queue})")
            self._pending.append(job)
            self._cond.notify()
        return job.future

    def close(self) -> None:
        with self._cond:
            self._closed = True
            while self._pending:
                self._pending.popleft().future.set_exception(RuntimeError("the server shut down"))
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                idle = not self._pending
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
            if idle and self.wait_s > 0:
                time.sleep(self.wait_s)  # a client's batch arrives a few ms apart: let it join one call
            with self._cond:
                if self._closed:
                    return
                batch = self._take()
                self._running = len(batch)
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._running = 0

    def _take(self) -> list[GenerationJob]:
        """The oldest job and the waiting jobs that can share its call, in arrival order."""
        first = self._pending.popleft()
        batch, kept = [first], deque()
        while self._pending:
            job = self._pending.popleft()
            joins = first.seed is None and job.seed is None and job.sampling == first.sampling
            (batch if joins and len(batch) < self.max_batch else kept).append(job)
        self._pending = kept
        return batch

    def _run(self, batch: list[GenerationJob]) -> None:
        try:
            results = self._generate(batch)
        except Exception as error:
            if len(batch) == 1:
                batch[0].future.set_exception(error)
                return
            for job in batch:  # one bad request must not fail the others: each runs alone
                self._run([job])
            return
        for job, result in zip(batch, results):
            job.future.set_result(result)

    def _generate(self, batch: list[GenerationJob]) -> list[GenerationResult]:
        sampling = batch[0].sampling
        seed_rngs(batch[0].seed)
        self.calls += 1
        replies = self.agent.generate([job.input for job in batch], sampling)
        if len(replies) != len(batch) or any(len(samples) != sampling.n for samples in replies):
            raise RuntimeError(
                f"the agent returned {len(replies)} reply lists for {len(batch)} conversations"
            )
        counts = getattr(self.agent, "last_token_counts", None)
        if not isinstance(counts, list) or len(counts) != len(batch):
            counts = [None] * len(batch)
        return [
            GenerationResult([cut_at_stop(text, sampling.stop) for text in samples], count)
            for samples, count in zip(replies, counts)
        ]


# ---- requests ---------------------------------------------------------------------------
@dataclass
class CompletionRequest:
    messages: list[dict[str, Any]]
    sampling: SamplingParams
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
    sampling = SamplingParams(
        temperature=_number(data, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(data, "top_p", 1.0, 0.0, 1.0, open_low=True),
        max_new_tokens=_integer(data, max_tokens, DEFAULT_MAX_TOKENS, 1, 1 << 20),
        stop=[s for s in stop if s],
        n=_integer(data, "n", 1, 1, MAX_SAMPLES),
    )
    return CompletionRequest(messages, sampling, seed)


def count_prompt_tokens(agent: Agent, messages: list[dict[str, Any]]) -> int:
    """Prompt tokens for an agent with a Hugging Face tokenizer (0 for others).

    Rendering the chat template here also turns a conversation the model cannot take
    into this request's 400, rather than a failure of the batch it would have joined.
    """
    tokenizer = getattr(agent, "tokenizer", None)
    if tokenizer is None:
        return 0
    from agents.hf import chat_prompt_ids

    try:
        return len(chat_prompt_ids(tokenizer, messages, chat_template=getattr(agent, "chat_template", None)))
    except Exception as error:
        raise OpenAIError(
            400,
            f"the model's chat template cannot render these messages: {error}",
            code="invalid_messages",
            param="messages",
        ) from None


def _count_tokens(agent: Agent, text: str) -> int | None:
    tokenizer = getattr(agent, "tokenizer", None)
    return None if tokenizer is None else len(tokenizer(text, add_special_tokens=False)["input_ids"])


def completion_response(
    agent: Agent, model_name: str, parsed: CompletionRequest, result: GenerationResult, prompt_tokens: int
) -> dict[str, Any]:
    """OpenAI's `chat.completion` object for one request's replies."""
    limit = parsed.sampling.max_new_tokens
    choices, generated = [], 0
    for index, text in enumerate(result.replies):
        # The agent's count covers all samples together: per sample, count the text again.
        tokens = result.tokens if len(result.replies) == 1 else _count_tokens(agent, text)
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


# ---- the app ----------------------------------------------------------------------------
def create_agent_app(
    agent: Agent,
    model_name: str,
    token: str | None = None,
    max_queue: int = 16,
    max_batch: int = 16,
    max_body_bytes: int = 16 << 20,
    host: str = "127.0.0.1",
    extra_hosts: tuple[str, ...] = (),
) -> Flask:
    """The Flask app serving `agent` as the model `model_name` (see the module docstring)."""
    hosts = allowed_hosts(host, extra_hosts)
    batcher = GenerationBatcher(agent, max_queue=max_queue, max_batch=max_batch)
    created = int(time.time())
    context_tokens = getattr(agent, "max_context_tokens", None)

    app = Flask("evolgym-agent")
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.extensions["evol_agent"] = {"agent": agent, "batcher": batcher}

    @app.errorhandler(OpenAIError)
    def openai_error(error: OpenAIError):
        response = jsonify(error.body())
        response.status_code = error.status
        response.headers.update(error.headers)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if isinstance(error, RequestEntityTooLarge):
            return openai_error(
                OpenAIError(413, f"request body over {max_body_bytes} bytes", code="too_large")
            )
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.code or 500, "http_error")
        headers = {k: v for k, v in error.get_headers() if k.lower() == "allow"}
        return openai_error(
            OpenAIError(error.code or 500, error.description or str(error), code=code, headers=headers)
        )

    @app.errorhandler(Exception)
    def internal_error(error: Exception):
        log.exception("unhandled error")
        return openai_error(
            OpenAIError(
                500,
                "the server failed on this request; its log has the details",
                "server_error",
                "internal_error",
            )
        )

    @app.errorhandler(ApiError)
    def plumbing_error(error: ApiError):
        return openai_error(OpenAIError(error.status, error.message, code=error.type, headers=error.headers))

    @app.before_request
    def check_request():
        if not host_allowed(request.headers.get("Host", ""), hosts):
            raise OpenAIError(403, "this server does not answer to that Host name", code="host_not_allowed")
        if token is None or request.path == "/health":
            return None
        if not token_matches(request.headers.get("Authorization", ""), token):
            raise OpenAIError(
                401, "a valid 'Authorization: Bearer <token>' header is required", code="invalid_api_key"
            )
        return None

    @app.get("/health")
    def health():
        return jsonify(
            status="ok",
            model=model_name,
            running=batcher.running,
            waiting=batcher.waiting,
            max_queue=max_queue,
            batches=batcher.calls,
        )

    @app.get("/v1/models")
    def models():
        return jsonify(
            object="list",
            data=[{"id": model_name, "object": "model", "created": created, "owned_by": "evolgym"}],
        )

    @app.post("/v1/chat/completions")
    def chat_completions():
        parsed = parse_completion_request(json_body(request, required=True), model_name)
        if context_tokens is not None and parsed.sampling.max_new_tokens >= context_tokens:
            raise OpenAIError(
                400,
                f"'max_tokens' must be below the model's context of {context_tokens} tokens",
                code="invalid_value",
                param="max_tokens",
            )
        prompt_tokens = count_prompt_tokens(agent, parsed.messages)
        job = GenerationJob(AgentInput(parsed.messages), parsed.sampling, parsed.seed)
        try:
            future = batcher.submit(job)
        except Overloaded as error:
            raise OpenAIError(
                503,
                f"the server is overloaded: {error}; retry later",
                "server_error",
                "overloaded",
                headers={"Retry-After": "1"},
            ) from None
        try:
            result = future.result()
        except Exception:
            log.exception("generation failed")
            raise OpenAIError(
                500,
                "generation failed; the server log has the details",
                "server_error",
                "generation_failed",
            ) from None
        return jsonify(completion_response(agent, model_name, parsed, result, prompt_tokens))

    return app


def serve_agent(
    agent: Agent,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 8100,
    threads: int | None = None,
    token: str | None = None,
    max_queue: int = 16,
    max_batch: int = 16,
    extra_hosts: tuple[str, ...] = (),
) -> None:
    """Serve `agent` on waitress until interrupted. `threads` defaults to enough for every
    request the batcher admits, so overload is answered with 503 rather than left in waitress's queue."""
    token = token or os.environ.get(TOKEN_ENV) or None
    app = create_agent_app(
        agent,
        model_name,
        token=token,
        max_queue=max_queue,
        max_batch=max_batch,
        host=host,
        extra_hosts=extra_hosts,
    )
    threads = threads or max_queue + max_batch + 4
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    print(f"evol: serving agent {model_name!r} on http://{host}:{port}/v1 ({threads} threads)", flush=True)
    try:
        waitress.serve(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="evolgym-agent",
            connection_limit=1000,
            channel_timeout=300,
            _quiet=True,
        )
    finally:
        app.extensions["evol_agent"]["batcher"].close()
        agent.close()


if __name__ == "__main__":
    from evol.agent_server_cli import main

    sys.exit(main())
