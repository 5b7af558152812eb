"""An agent behind any OpenAI-compatible `/v1/chat/completions` endpoint.

`OpenAIAgent(url, model=None)` talks to a hosted model, a third-party agent, `vllm serve`
or our own `evol serve-agent`. A batch of conversations becomes concurrent requests over
one pooled connection; 429s, 5xx answers and connection errors are retried with
exponential backoff and jitter (honouring `Retry-After`); anything else that fails raises
`AgentRequestError` with the status and the server's message.

Messages travel unchanged, so OpenAI content parts (text + `image_url`) reach vision
models as they are. Each episode's own tools (the OpenAI `tools` list an env puts in its
`info["tools"]`, as `evol/ToolUse-v0` does) go with that episode's requests; native tool
calls come back as the text `{"name": ..., "arguments": {...}}`, one call a line, the
form our tool-use envs accept as an action (several calls run in order).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from agents.base import Agent, AgentInput, SamplingParams, cut_at_stop

API_KEY_ENV = "OPENAI_API_KEY"
EVOL_API_KEY_ENV = "EVOL_AGENT_API_KEY"


class AgentRequestError(RuntimeError):
    """A request the endpoint did not answer: `status` (None without an HTTP answer) and its message."""

    def __init__(self, message: str, status: int | None = None, url: str | None = None):
        self.status = status
        self.message = message
        self.url = url
        prefix = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{prefix} from {url}: {message}" if url else f"{prefix}: {message}")


def api_base(url: str) -> str:
    """The API root that `/chat/completions` hangs from: `http://h:p` and `http://h:p/v1` both give `.../v1`.

    A URL with another path (`https://host/openai/v1`, `.../v1beta/openai`) is taken as given.
    """
    url = url.rstrip("/")
    if not urlsplit(url).path:
        return url + "/v1"
    return url


def tool_call_text(call: dict[str, Any]) -> str:
    """A native tool call as the action text `{"name": ..., "arguments": {...}}`."""
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            pass  # the model wrote broken JSON: the env sees it as it is and says what was wrong
    return json.dumps(
        {"name": function.get("name", ""), "arguments": arguments if arguments is not None else {}}
    )


def choice_text(choice: dict[str, Any]) -> str:
    """A choice's reply as action text: its tool calls, one a line, else its content."""
    message = choice.get("message") or {}
    calls = message.get("tool_calls")
    if calls:
        return "\n".join(tool_call_text(call) for call in calls if isinstance(call, dict))
    content = message.get("content")
    if isinstance(content, list):  # some servers answer in content parts too
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def _retryable(status: int) -> bool:
    """Worth asking again: a timeout, a rate limit or a server error (not 501, which never changes)."""
    return status in (408, 429) or (status >= 500 and status != 501)


def _retry_after(response: requests.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from model servers; back off instead


def _error_message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or response.reason
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return json.dumps(data)[:500]


class OpenAIAgent(Agent):
    """Chat completions from an OpenAI-compatible server, one request per conversation.

    Args:
        url: the server, `http://host:port` or `http://host:port/v1`.
        model: the model id; None takes the first one `GET /v1/models` lists.
        concurrency: requests in flight at once (default 16).
        timeout: seconds to wait for one answer (default 120); a slower answer raises
            `AgentRequestError` at once, since a server still generating gains nothing from a retry.
        max_retries: further tries after a 429, a 5xx or a connection error (default 5).
        backoff: first retry delay in seconds, doubled each try up to `max_backoff`, with jitter.
        api_key: sent as a Bearer token; default from `EVOL_AGENT_API_KEY`, then `api_key_env`.
        api_key_env: the environment variable holding the key (default `OPENAI_API_KEY`).
        tools: an OpenAI tools list sent with every request that has no tools of its own
            (native tool calling); an episode's `info["tools"]` are sent with its requests.
        extra_body: more request fields for every request (`seed`, vLLM's `top_k`, ...).
    """

    def __init__(
        self,
        url: str,
        model: str | None = None,
        concurrency: int = 16,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        api_key: str | None = None,
        api_key_env: str = API_KEY_ENV,
        tools: list[dict[str, Any]] | None = None,
        extra_body: dict[str, Any] | None = None,
    ):
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError("concurrency must be >= 1, max_retries >= 0 and timeout > 0")
        self.base = api_base(url)
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.tools = tools
        self.extra_body = dict(extra_body or {})
        # Totals over the agent's life: answered requests, retries, and the tokens servers reported.
        self.stats = {"requests": 0, "retries": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._stats_lock = threading.Lock()
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=concurrency)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        key = api_key or os.environ.get(EVOL_API_KEY_ENV) or os.environ.get(api_key_env)
        if key:
            self._session.headers["Authorization"] = f"Bearer {key}"
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="openai-agent")
        # The tools each live episode's env gave at its reset (later steps' info need not repeat them).
        self._episode_tools: weakref.WeakKeyDictionary[Any, list[dict[str, Any]]] = (
            weakref.WeakKeyDictionary()
        )
        self.model = model or self.discover_model()
        self.name = f"openai:{self.model}"

    # ---- HTTP -------------------------------------------------------------------------
    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One API call with retries; the decoded JSON answer."""
        url = self.base + path
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._session.request(method, url, json=body, timeout=self.timeout)
            except requests.Timeout as error:
                # A connect timeout is a connection problem; a read timeout means the server is
                # still working on this request, and asking again would only add to its load.
                if isinstance(error, requests.ConnectTimeout) and not last:
                    self._sleep(attempt, None)
                    continue
                message = f"timed out after {self.timeout:g}s (a longer generation needs a larger timeout=)"
                raise AgentRequestError(message, url=url) from None
            except requests.ConnectionError as error:
                if last:
                    raise AgentRequestError(f"cannot connect: {error}", url=url) from None
                self._sleep(attempt, None)
                continue
            if response.status_code < 400:
                try:
                    answer = response.json()
                except ValueError:
                    answer = None
                if not isinstance(answer, dict):
                    message = f"the answer is not a JSON object: {response.text[:200]!r}"
                    raise AgentRequestError(message, response.status_code, url)
                return answer
            if _retryable(response.status_code) and not last:
                self._sleep(attempt, _retry_after(response))
                continue
            message = _error_message(response)
            if _retryable(response.status_code):
                message += f" (after {self.max_retries + 1} tries)"
            raise AgentRequestError(message, response.status_code, url)
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: float | None) -> None:
        with self._stats_lock:
            self.stats["retries"] += 1
        delay = min(self.max_backoff, self.backoff * 2**attempt)
        if retry_after is not None:
            delay = min(self.max_backoff, retry_after)
        # Jitter keeps a batch of clients refused together from coming back together.
        time.sleep(delay * random.uniform(1.0, 1.5))

    def discover_model(self) -> str:
        data = self.request("GET", "/models").get("data") or []
        if not data or not isinstance(data[0], dict) or "id" not in data[0]:
            raise AgentRequestError("GET /models lists no model; pass model=...", url=self.base + "/models")
        return data[0]["id"]

    # ---- the agent --------------------------------------------------------------------
    def episode_tools(self, item: AgentInput) -> list[dict[str, Any]] | None:
        """The tools of `item`'s episode: its info's `tools`, else those its env gave at its
        reset (a reset's info carries `instruction`: one without tools forgets them), else `tools`."""
        info = item.info or {}
        tools = info.get("tools")
        try:
            if isinstance(tools, list):
                if item.env is not None:
                    self._episode_tools[item.env] = tools
            elif item.env is not None:
                if "instruction" in info:
                    self._episode_tools.pop(item.env, None)
                tools = self._episode_tools.get(item.env)
        except TypeError:  # an env that cannot be weakly referenced: only its info counts
            pass
        return tools if isinstance(tools, list) and tools else self.tools

    def completion_body(
        self,
        messages: list[dict[str, Any]],
        sampling: SamplingParams,
        n: int,
        tools: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
            "n": n,
            **self.extra_body,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        tools = self.tools if tools is None else tools
        if tools:
            body["tools"] = tools
        return body

    def chat_replies(
        self,
        messages: list[dict[str, Any]],
        sampling: SamplingParams,
        tools: list[dict[str, Any]] | None = None,
    ) -> list[str]:
        """`sampling.n` replies to one conversation: asked for in one request, topped up if fewer come back."""
        replies: list[str] = []
        while len(replies) < sampling.n:
            answer = self.request(
                "POST",
                "/chat/completions",
                self.completion_body(messages, sampling, sampling.n - len(replies), tools),
            )
            choices = sorted(answer.get("choices") or [], key=lambda choice: choice.get("index", 0))
            if not choices:
                raise AgentRequestError("the answer holds no choices", url=self.base + "/chat/completions")
            replies.extend(cut_at_stop(choice_text(choice), sampling.stop) for choice in choices)
            usage = answer.get("usage") or {}
            with self._stats_lock:
                self.stats["requests"] += 1
                self.stats["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
                self.stats["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        return replies[: sampling.n]

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        tools = [self.episode_tools(item) for item in inputs]
        if len(inputs) == 1:
            return [self.chat_replies(inputs[0].messages, sampling, tools[0])]
        futures = [
            self._pool.submit(self.chat_replies, item.messages, sampling, item_tools)
            for item, item_tools in zip(inputs, tools)
        ]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()
