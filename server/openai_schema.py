"""OpenAI chat-completion requests checked field by field, and the objects the agent server answers.

Every field of OpenAI's request is either served, accepted as advice, or refused with a 400
naming it; a field OpenAI does not define is refused too (as OpenAI does), so nothing a
client asks for is dropped in silence.

| field | here |
|---|---|
| messages, model, n, seed, stop, temperature, top_p, max_tokens, max_completion_tokens | served |
| stream, stream_options.include_usage | served (server-sent events) |
| tools, tool_choice (none, auto, required, a named function), parallel_tool_calls | served |
| response_format: text, json_object, json_schema | served (constrained decoding) |
| logprobs, top_logprobs (0-20) | served (the model's own scores) |
| presence_penalty, frequency_penalty (-2..2), logit_bias (token id -> -100..100) | served |
| user, safety_identifier, metadata, prompt_cache_key, prompt_cache_retention, store=false, stream_options.include_obfuscation, service_tier auto/default | accepted, no effect: advice about the caller, OpenAI's storage, caching or billing that changes no reply |
| audio, modalities other than ["text"], functions, function_call, prediction, reasoning_effort, verbosity, web_search_options, store=true, service_tier flex/scale/priority, moderation, prompt_cache_options, and any other field | 400 |

A null value counts as the field left out. Messages may be system/developer, user, assistant
(with `tool_calls`) and tool (with `tool_call_id`) messages; content is text or text parts
(image parts only where the model takes images).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from server.agent_batcher import GenerationOptions, Reply, TokenLogprob

DEFAULT_MAX_TOKENS = 256
MAX_SAMPLES = 64
MAX_STOP = 16
MAX_TOOLS = 128
MAX_TOP_LOGPROBS = 20
MAX_LOGIT_BIAS = 300
ROLES = {"system", "developer", "user", "assistant", "tool"}
FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

SERVED = {
    "messages", "model", "n", "seed", "stop", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "stream", "stream_options", "tools", "tool_choice",
    "parallel_tool_calls", "response_format", "logprobs", "top_logprobs", "presence_penalty",
    "frequency_penalty", "logit_bias",
}  # fmt: skip
# Advice that changes no reply: who asks (abuse tracking), OpenAI-side tags, storage and
# prompt caching (the server keeps its own cache and stores nothing), billing tiers.
ADVISORY = {
    "user", "safety_identifier", "metadata", "prompt_cache_key", "prompt_cache_retention",
    "store", "service_tier",
}  # fmt: skip
REFUSED = {
    "audio": "audio output is not supported (text only)",
    "modalities": "only the 'text' modality is supported",
    "functions": "the deprecated 'functions' field is not supported: send 'tools'",
    "function_call": "the deprecated 'function_call' field is not supported: send 'tool_choice'",
    "prediction": "predicted outputs are not supported",
    "reasoning_effort": "this model has no reasoning-effort setting",
    "verbosity": "this model has no verbosity setting",
    "web_search_options": "web search is not available",
    "moderation": "moderation is not available",
    "prompt_cache_options": "prompt cache options are not supported",
}
MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
}


class RequestError(Exception):
    """A request field that is wrong or not served: `param` names it; answered as a 400 (404 for the model)."""

    def __init__(self, param: str | None, message: str, code: str = "invalid_value", status: int = 400):
        super().__init__(message)
        self.param = param
        self.message = message
        self.code = code
        self.status = status


@dataclass
class ChatRequest:
    """A checked chat-completion request."""

    messages: list[dict[str, Any]]
    sampling: dict[str, Any]  # temperature, top_p, max_new_tokens, stop, n
    seed: int | None
    options: GenerationOptions = field(default_factory=GenerationOptions)
    stream: bool = False
    include_usage: bool = False
    max_tokens_field: str = "max_tokens"

    @property
    def tools_active(self) -> bool:
        return bool(self.options.tools)


# ---- fields ----------------------------------------------------------------------------------
def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _number(
    data: dict[str, Any], name: str, default: float, low: float, high: float, open_low: bool = False
) -> float:
    value = data.get(name)
    if value is None:
        return default
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not ((low < value if open_low else low <= value) and value <= high):
        raise RequestError(name, f"'{name}' must be a number in {'(' if open_low else '['}{low:g}, {high:g}]")
    return float(value)


def _integer(data: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(name, f"'{name}' must be an integer in [{low}, {high}]")
    return value


def _boolean(data: dict[str, Any], name: str, default: bool) -> bool:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError(name, f"'{name}' must be true or false, not {_type_name(value)}")
    return value


def _check_fields(data: dict[str, Any]) -> None:
    for name, value in data.items():
        if name in SERVED or value is None:
            continue
        if name in REFUSED:
            raise RequestError(name, f"'{name}': {REFUSED[name]}", code="unsupported_parameter")
        if name not in ADVISORY:
            message = f"unrecognized request argument supplied: '{name}'"
            raise RequestError(name, message, code="unsupported_parameter")
    if data.get("store") is True:
        raise RequestError("store", "'store': this server keeps no completions", code="unsupported_parameter")
    tier = data.get("service_tier")
    if tier is not None and tier not in ("auto", "default"):
        message = f"'service_tier' {tier!r} is not offered: leave it out, or 'auto' or 'default'"
        raise RequestError("service_tier", message, code="unsupported_parameter")
    for name in ("user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise RequestError(name, f"'{name}' must be a string")
    metadata = data.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise RequestError("metadata", "'metadata' must be an object of string values")


def _content(content: Any, where: str, images: bool) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise RequestError(f"{where}.content", f"{where}.content must be a string or content parts")
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url" and images:
            continue
        message = f"{where}.content[{j}] must be a text part ({{'type': 'text', 'text': ...}})"
        if kind == "image_url":
            message = f"{where}.content[{j}]: this model takes text only"
        elif kind in ("input_audio", "file", "refusal"):
            message = f"{where}.content[{j}]: '{kind}' parts are not supported"
        raise RequestError(f"{where}.content", message)


def _tool_call(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if (
        not isinstance(function, dict)
        or call.get("type", "function") != "function"
        or not isinstance(function.get("name"), str)
        or not isinstance(function.get("arguments", ""), str)
    ):
        message = (
            f"{where} must be {{'id', 'type': 'function', 'function': {{'name', 'arguments' (JSON text)}}}}"
        )
        raise RequestError(where, message)
    return call


def _messages(value: Any, images: bool) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise RequestError("messages", "'messages' (a non-empty list) is required", code="missing_messages")
    messages = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise RequestError(f"{where}.role", f"{where} needs a 'role' among {sorted(ROLES)}")
        unknown = sorted(set(message) - MESSAGE_KEYS[role])
        if unknown:
            raise RequestError(f"{where}.{unknown[0]}", f"{where}: a {role} message takes no '{unknown[0]}'")
        _content(message.get("content"), where, images and role == "user")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise RequestError(f"{where}.tool_call_id", f"{where}: a tool message needs its 'tool_call_id'")
        if role == "assistant" and message.get("tool_calls") is not None:
            calls = message["tool_calls"]
            if not isinstance(calls, list):
                raise RequestError(f"{where}.tool_calls", f"{where}.tool_calls must be a list")
            for j, call in enumerate(calls):
                _tool_call(call, f"{where}.tool_calls[{j}]")
        elif role == "assistant" and message.get("content") is None:
            raise RequestError(
                f"{where}.content", f"{where}: an assistant message needs content or tool_calls"
            )
        if role == "assistant" and not message.get("tool_calls"):
            message = {k: v for k, v in message.items() if k != "tool_calls"}
        content = message.get("content")
        role = "system" if role == "developer" else role
        messages.append({**message, "role": role, "content": "" if content is None else content})
    return messages


def _tools(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise RequestError("tools", f"'tools' must be a list of at most {MAX_TOOLS} function tools")
    tools, names = [], set()
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise RequestError(f"{where}.type", f"{where}: only 'function' tools are supported, not {kind!r}")
        function = tool.get("function")
        if not isinstance(function, dict) or set(tool) - {"type", "function"}:
            raise RequestError(where, f"{where} must be {{'type': 'function', 'function': {{'name', ...}}}}")
        name = function.get("name")
        if not isinstance(name, str) or not FUNCTION_NAME.fullmatch(name):
            message = f"{where}.function.name must be 1-64 letters, digits, '_' or '-'"
            raise RequestError(f"{where}.function.name", message)
        if name in names:
            raise RequestError(f"{where}.function.name", f"two tools are named {name!r}")
        names.add(name)
        unknown = sorted(set(function) - {"name", "description", "parameters", "strict"})
        if unknown:
            raise RequestError(f"{where}.function.{unknown[0]}", f"{where}.function takes no '{unknown[0]}'")
        if function.get("description") is not None and not isinstance(function["description"], str):
            raise RequestError(
                f"{where}.function.description", f"{where}.function.description must be a string"
            )
        parameters = function.get("parameters")
        if parameters is not None and (
            not isinstance(parameters, dict) or parameters.get("type", "object") != "object"
        ):
            message = f"{where}.function.parameters must be a JSON schema of type 'object'"
            raise RequestError(f"{where}.function.parameters", message)
        if function.get("strict") is not None and not isinstance(function["strict"], bool):
            raise RequestError(f"{where}.function.strict", f"{where}.function.strict must be true or false")
        # Arguments are always held to the schema (constrained decoding), strict or not.
        clean = {k: v for k, v in function.items() if k != "strict" and v is not None}
        clean.setdefault("parameters", {"type": "object", "properties": {}})
        tools.append({"type": "function", "function": clean})
    return tools


def _tool_choice(value: Any, tools: list[dict[str, Any]] | None) -> tuple[str, str | None]:
    """("none" | "auto" | "required" | "function", the function's name)."""
    if value is None:
        return ("auto" if tools else "none"), None
    if value in ("none", "auto", "required"):
        if value != "none" and not tools:
            raise RequestError("tool_choice", f"tool_choice {value!r} needs 'tools'")
        return value, None
    function = value.get("function") if isinstance(value, dict) and value.get("type") == "function" else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        message = (
            "'tool_choice' must be 'none', 'auto', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}"
        )
        raise RequestError("tool_choice", message)
    if name not in {tool["function"]["name"] for tool in tools or []}:
        raise RequestError("tool_choice", f"tool_choice names {name!r}, which is not among 'tools'")
    return "function", name


def _response_format(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise RequestError("response_format.json_schema", "json_schema needs a 'name' and a 'schema'")
        if not isinstance(schema, dict):
            raise RequestError(
                "response_format.json_schema.schema", "json_schema.schema must be a JSON schema object"
            )
        return {"type": "json_schema", "schema": schema}
    message = (
        "'response_format' must be {'type': 'text'}, {'type': 'json_object'} or {'type': 'json_schema', ...}"
    )
    raise RequestError("response_format", message)


def _logit_bias(value: Any) -> dict[int, float]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_LOGIT_BIAS:
        raise RequestError(
            "logit_bias", f"'logit_bias' must map at most {MAX_LOGIT_BIAS} token ids to numbers"
        )
    bias = {}
    for key, number in value.items():
        if not (isinstance(key, str) and key.isdigit() and len(key) <= 9):
            raise RequestError("logit_bias", f"logit_bias keys are token ids (digits), not {key!r}")
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not -100 <= number <= 100:
            raise RequestError("logit_bias", f"logit_bias[{key!r}] must be a number in [-100, 100]")
        bias[int(key)] = float(number)
    return bias


def _stream_options(data: dict[str, Any], stream: bool) -> bool:
    value = data.get("stream_options")
    if value is None:
        return False
    if not stream:
        raise RequestError("stream_options", "'stream_options' is only allowed with 'stream': true")
    if not isinstance(value, dict):
        raise RequestError("stream_options", "'stream_options' must be an object")
    unknown = sorted(set(value) - {"include_usage", "include_obfuscation"})
    if unknown:
        raise RequestError(f"stream_options.{unknown[0]}", f"stream_options takes no '{unknown[0]}'")
    for key in ("include_usage", "include_obfuscation"):
        if value.get(key) is not None and not isinstance(value[key], bool):
            raise RequestError(f"stream_options.{key}", f"stream_options.{key} must be true or false")
    # include_obfuscation asks for random padding against length side channels: no reply changes.
    return bool(value.get("include_usage"))


def parse_chat_request(data: Any, model_name: str, images: bool = False) -> ChatRequest:
    """A chat-completion body checked field by field; `RequestError` names what is wrong.

    `images`: whether the model takes image content parts."""
    if not isinstance(data, dict):
        raise RequestError(None, "the request body must be a JSON object", code="invalid_body")
    _check_fields(data)
    model = data.get("model")
    if model is not None and model != model_name:
        message = f"the model {model!r} does not exist; this server serves {model_name!r}"
        raise RequestError("model", message, code="model_not_found", status=404)
    messages = _messages(data.get("messages"), images)
    stop = data.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > MAX_STOP:
        raise RequestError("stop", f"'stop' must be a string or a list of at most {MAX_STOP} strings")
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestError("seed", "'seed' must be an integer")
    max_tokens = "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    both = data.get("max_tokens"), data.get("max_completion_tokens")
    if None not in both and both[0] != both[1]:
        raise RequestError("max_tokens", "'max_tokens' and 'max_completion_tokens' differ: send one")
    sampling = {
        "temperature": _number(data, "temperature", 1.0, 0.0, 2.0),
        "top_p": _number(data, "top_p", 1.0, 0.0, 1.0, open_low=True),
        "max_new_tokens": _integer(data, max_tokens, DEFAULT_MAX_TOKENS, 1, 1 << 20),
        "stop": [s for s in stop if s],
        "n": _integer(data, "n", 1, 1, MAX_SAMPLES),
    }
    stream = _boolean(data, "stream", False)
    tools = _tools(data["tools"]) if data.get("tools") is not None else None
    choice, function = _tool_choice(data.get("tool_choice"), tools)
    if data.get("parallel_tool_calls") is not None and not tools:
        raise RequestError("parallel_tool_calls", "'parallel_tool_calls' is only allowed with 'tools'")
    response_format = _response_format(data.get("response_format"))
    if response_format is not None and choice != "none":
        message = "'response_format' with 'tools' is not supported: send tool_choice 'none' or no tools"
        raise RequestError("response_format", message, code="unsupported_parameter")
    logprobs = _boolean(data, "logprobs", False)
    top = data.get("top_logprobs")
    if top is not None and not logprobs:
        raise RequestError("top_logprobs", "'top_logprobs' needs 'logprobs': true")
    options = GenerationOptions(
        # tool_choice "none": the tools stay out of the prompt, and the reply is plain text.
        tools=tools if choice != "none" else None,
        tool_choice=choice if choice != "none" else "auto",
        function=function,
        parallel_tool_calls=_boolean(data, "parallel_tool_calls", True) if choice != "none" else True,
        response_format=response_format,
        top_logprobs=_integer(data, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS) if logprobs else None,
        presence_penalty=_number(data, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=_number(data, "frequency_penalty", 0.0, -2.0, 2.0),
        logit_bias=_logit_bias(data.get("logit_bias")),
    )
    include_usage = _stream_options(data, stream)
    return ChatRequest(messages, sampling, seed, options, stream, include_usage, max_tokens)


# ---- answers ---------------------------------------------------------------------------------
def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def tool_call_objects(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Calls `{"name", "arguments"}` as OpenAI's `tool_calls` (arguments as JSON text)."""
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": json.dumps(call["arguments"], ensure_ascii=False),
            },
        }
        for call in calls
    ]


def logprob_object(entries: list[TokenLogprob]) -> dict[str, Any]:
    """OpenAI's choice `logprobs`: one entry per token, with its most likely alternatives."""

    def item(token: bytes, logprob: float) -> dict[str, Any]:
        # JSON has no -inf: OpenAI writes -9999 for a token the model gives no chance.
        value = max(logprob, -9999.0)
        return {"token": token.decode("utf-8", errors="replace"), "logprob": value, "bytes": list(token)}

    content = [
        {**item(entry.token, entry.logprob), "top_logprobs": [item(t, lp) for t, lp in entry.top]}
        for entry in entries
    ]
    return {"content": content, "refusal": None}


def finish_reason(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls else reply.finish_reason


def message_object(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = tool_call_objects(reply.tool_calls)
    return message


def usage_object(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_object(
    model_name: str, replies: list[Reply], logprobs: bool, usage: dict[str, Any]
) -> dict[str, Any]:
    """OpenAI's `chat.completion`."""
    choices = [
        {
            "index": index,
            "message": message_object(reply),
            "finish_reason": finish_reason(reply),
            "logprobs": logprob_object(reply.logprobs or []) if logprobs else None,
        }
        for index, reply in enumerate(replies)
    ]
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": choices,
        "usage": usage,
    }


@dataclass
class ChunkWriter:
    """OpenAI's `chat.completion.chunk` events of one streamed completion."""

    model_name: str
    include_usage: bool = False
    id: str = field(default_factory=completion_id)
    created: int = field(default_factory=lambda: int(time.time()))

    def event(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> str:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model_name,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    def delta(
        self,
        index: int,
        delta: dict[str, Any],
        logprobs: list[TokenLogprob] | None = None,
        finish: str | None = None,
    ) -> str:
        choice = {
            "index": index,
            "delta": delta,
            "logprobs": logprob_object(logprobs) if logprobs is not None else None,
            "finish_reason": finish,
        }
        return self.event([choice])

    def tool_calls(self, index: int, calls: list[dict[str, Any]]) -> list[str]:
        return [
            self.delta(index, {"tool_calls": [{"index": k, **call}]})
            for k, call in enumerate(tool_call_objects(calls))
        ]

    def usage(self, usage: dict[str, Any]) -> str:
        return self.event([], usage)

    @staticmethod
    def error(body: dict[str, Any]) -> str:
        return f"data: {json.dumps(body)}\n\n"

    @staticmethod
    def done() -> str:
        return "data: [DONE]\n\n"
