"""The agent server's batcher: one thread runs the model, micro-batching requests that sample alike.

Also what a job asks of the model beyond its conversation and sampling (`GenerationOptions`)
and what comes back (`GenerationResult`, with a `Reply` per sample from models that give
details: tool calls, finish reasons, token log-probabilities).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class Overloaded(Exception):
    """More requests wait than the server's `max_queue`."""


@dataclass(frozen=True)
class GenerationOptions:
    """What a request asks beyond its sampling (OpenAI's fields, checked by `server.openai_schema`)."""

    tools: list[dict[str, Any]] | None = None  # shown to the model through its chat template
    tool_choice: str = "auto"  # "auto", "required", or "function" (then `function` names it)
    function: str | None = None
    parallel_tool_calls: bool = True
    response_format: dict[str, Any] | None = (
        None  # {"type": "json_object"} or {"type": "json_schema", "schema"}
    )
    top_logprobs: int | None = None  # None: no log-probabilities; k: the chosen token's and the k most likely
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)

    @property
    def plain(self) -> bool:
        """Whether a model's plain `generate` answers it (nothing beyond sampling is asked)."""
        return self == GenerationOptions()


@dataclass
class TokenLogprob:
    """A generated token (its bytes), its log-probability, and the most likely tokens at its place."""

    token: bytes
    logprob: float
    top: list[tuple[bytes, float]] = field(default_factory=list)


# A streamed job's new text as it comes: (sample, text, the log-probabilities of its tokens).
DeltaSink = Callable[[int, str, list[TokenLogprob]], None]


@dataclass
class GenerationJob:
    """One request's conversation, sampling and options; `future` gets its `GenerationResult`.

    A model that streams calls `on_delta` as text comes (never past a stop string or a tool
    call's start), and stops early once `cancelled` is set (the client went away)."""

    messages: list[dict[str, Any]]
    sampling: dict[str, Any]  # temperature, top_p, max_new_tokens, stop, n
    seed: int | None = None
    future: Future = field(default_factory=Future)
    options: GenerationOptions = field(default_factory=GenerationOptions)
    on_delta: DeltaSink | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class Reply:
    """One sample as a detailed model gives it."""

    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name": str, "arguments": dict}
    finish_reason: str = "stop"  # "stop" or "length"
    tokens: int | None = None
    logprobs: list[TokenLogprob] | None = None


@dataclass
class GenerationResult:
    replies: list[str]
    tokens: int | None  # tokens generated for all samples, where the model counts them
    details: list[Reply] | None = None  # one per sample, from a model's `generate_jobs`


class GenerationBatcher:
    """Runs `model.generate` (`server.agent_app.ChatModel`) on one thread of its own,
    micro-batching requests that sample alike.

    `submit` raises `Overloaded` when `max_queue` requests already wait behind a running
    batch (while the model is idle, the next batch's `max_batch` places count too).
    """

    def __init__(self, model: Any, max_queue: int = 16, max_batch: int = 16, wait_s: float = 0.005):
        if max_queue < 0 or max_batch < 1:
            raise ValueError("max_queue must be >= 0 and max_batch >= 1")
        self.model = model
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._cond = threading.Condition()
        self._pending: deque[GenerationJob] = deque()
        self._running = 0
        self._closed = False
        self.calls = 0  # model.generate calls so far
        self.generated_tokens = 0  # tokens generated so far, where the model counts them
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
        self.generated_tokens += sum(result.tokens or 0 for result in results)
        for job, result in zip(batch, results):
            job.future.set_result(result)

    def _generate(self, batch: list[GenerationJob]) -> list[GenerationResult]:
        sampling = batch[0].sampling
        self.calls += 1
        generate_jobs = getattr(self.model, "generate_jobs", None)
        if generate_jobs is not None:
            results = generate_jobs(batch, batch[0].seed)
            if len(results) != len(batch):
                raise RuntimeError(f"the model returned {len(results)} results for {len(batch)} jobs")
            return results
        replies = self.model.generate([job.messages for job in batch], sampling, batch[0].seed)
        if len(replies) != len(batch) or any(len(samples) != sampling["n"] for samples in replies):
            raise RuntimeError(
                f"the model returned {len(replies)} reply lists for {len(batch)} conversations"
            )
        counts = getattr(self.model, "last_token_counts", None)
        if not isinstance(counts, list) or len(counts) != len(batch):
            counts = [None] * len(batch)
        return [GenerationResult(list(samples), count) for samples, count in zip(replies, counts)]
