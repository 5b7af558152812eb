"""`evol serve-agent` against the official `openai` client: a real server on loopback serving a
tiny model built here; models, tools, tool choice, logprobs, response formats, penalties,
logit bias, streaming, and every request field either served or refused by name."""

from __future__ import annotations

import json
import os
import re
import threading
import time

import jsonschema
import openai
import pytest
import requests

from tests.conftest import AgentServerProcess

os.environ["HF_HUB_OFFLINE"] = "1"
TOKEN = "agent-secret"
NAME = "tiny"
SERVER_PATH = re.compile(r"(/[\w.-]+){2,}|\.(py|cc|so)\b")
CHAT = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": "go to the red ball"}]


def function(name: str, description: str, properties: dict, required: list[str]) -> dict:
    parameters = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


MOVE = function(
    "move", "Move one step.", {"direction": {"enum": ["left", "right", "up", "down"]}}, ["direction"]
)
PICK = function(
    "pick_up",
    "Pick up an object.",
    {"object": {"type": "string", "enum": ["ball", "key", "box"]}, "careful": {"type": "boolean"}},
    ["object", "careful"],
)
TOOLS = [MOVE, PICK]
SCHEMAS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    from agents.tiny import build_tiny_model

    corpus = ["go to the red ball", "open the door", json.dumps(TOOLS)] * 10
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny"), corpus))


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def compact(tokenizer) -> dict[str, int]:
    """A logit bias that bans whitespace-only tokens: the random model's JSON stays compact
    (a grammar's own whitespace, the only choice at its place, is still written)."""
    return {
        str(i): -100
        for i in range(len(tokenizer))
        if tokenizer.decode([i]) and not tokenizer.decode([i]).strip()
    }


@pytest.fixture(scope="module")
def servers(model_dir):
    """The main server (with a token), and one that admits no queue, to be overloaded."""
    main = AgentServerProcess(model_dir, "--token", TOKEN)
    small = AgentServerProcess(model_dir, "--max-queue", "0", "--max-batch", "1")
    try:
        yield main.wait_ready(), small.wait_ready()
    finally:
        main.stop()
        small.stop()


@pytest.fixture(scope="module")
def server(servers) -> AgentServerProcess:
    return servers[0]


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=TOKEN, max_retries=0, timeout=120)
    yield client
    client.close()


def create(client: openai.OpenAI, **fields):
    return client.chat.completions.create(model=NAME, **{"messages": CHAT, "temperature": 0, **fields})


def check_calls(calls, names: set[str] = frozenset(SCHEMAS)) -> list[tuple[str, dict]]:
    """The calls as (name, arguments), each valid against its tool's schema."""
    read = []
    for call in calls:
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name in names
        arguments = json.loads(call.function.arguments)
        jsonschema.validate(arguments, SCHEMAS[call.function.name])
        read.append((call.function.name, arguments))
    return read


def bad_request(client: openai.OpenAI, **fields) -> dict:
    with pytest.raises(openai.BadRequestError) as raised:
        create(client, max_tokens=2, **fields)
    error = raised.value.body
    assert raised.value.status_code == 400 and error["type"] == "invalid_request_error" and error["message"]
    assert not SERVER_PATH.search(error["message"])  # no server path ever reaches a client
    return error


# ---- models --------------------------------------------------------------------------------------
def test_models_list_and_retrieve(client):
    assert [model.id for model in client.models.list()] == [NAME]
    card = client.models.retrieve(NAME)
    assert card.id == NAME and card.object == "model" and card.owned_by == "evolgym"


@pytest.mark.parametrize("model_id", ["gpt-4o", "tiny-2", "org/tiny", "TINY"])
def test_retrieving_another_model_is_404_in_openai_shape(client, model_id):
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve(model_id)
    assert raised.value.body["code"] == "model_not_found" and raised.value.body["param"] == "model"


# ---- tools ---------------------------------------------------------------------------------------
def test_tool_choice_required_answers_tool_calls(client, compact):
    answer = create(client, tools=TOOLS, tool_choice="required", max_tokens=200, logit_bias=compact)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert len(check_calls(choice.message.tool_calls)) >= 1


@pytest.mark.parametrize("name", ["move", "pick_up"])
def test_named_tool_choice_calls_that_function_once(client, compact, name):
    choice = {"type": "function", "function": {"name": name}}
    answer = create(client, tools=TOOLS, tool_choice=choice, max_tokens=200, logit_bias=compact)
    [(called, _)] = check_calls(answer.choices[0].message.tool_calls)
    assert called == name and answer.choices[0].finish_reason == "tool_calls"


def test_parallel_tool_calls_false_gives_one_call_per_choice(client, compact):
    answer = create(
        client,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=200,
        logit_bias=compact,
        n=3,
        temperature=1.0,
        seed=5,
    )
    assert len(answer.choices) == 3
    for choice in answer.choices:
        assert len(check_calls(choice.message.tool_calls)) == 1


def test_tools_reach_the_prompt_and_tool_choice_none_leaves_them_out(client):
    plain = create(client, max_tokens=1).usage.prompt_tokens
    with_tools = create(client, tools=TOOLS, max_tokens=1).usage.prompt_tokens
    one_tool = create(client, tools=[MOVE], max_tokens=1).usage.prompt_tokens
    assert with_tools > one_tool > plain
    answer = create(client, tools=TOOLS, tool_choice="none", max_tokens=3)
    assert answer.usage.prompt_tokens == plain and not answer.choices[0].message.tool_calls


def test_auto_tool_choice_answers_text_or_valid_calls(client, compact):
    for seed in range(3):
        answer = create(client, tools=TOOLS, max_tokens=40, temperature=1.0, seed=seed, logit_bias=compact)
        message = answer.choices[0].message
        if message.tool_calls:
            check_calls(message.tool_calls)
            assert answer.choices[0].finish_reason == "tool_calls"
        else:
            assert isinstance(message.content, str) and "<tool_call>" not in message.content


def test_a_conversation_with_tool_calls_and_tool_results_is_taken(client, compact):
    first = create(client, tools=TOOLS, tool_choice="required", max_tokens=200, logit_bias=compact)
    message = first.choices[0].message
    history = [
        *CHAT,
        message.model_dump(exclude_none=True),
        *[
            {"role": "tool", "tool_call_id": call.id, "content": '{"moved": true}'}
            for call in message.tool_calls
        ],
        {"role": "user", "content": "and now?"},
    ]
    second = client.chat.completions.create(
        model=NAME, messages=history, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=200,
        logit_bias=compact,
    )  # fmt: skip
    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    check_calls(second.choices[0].message.tool_calls)


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name"),
        ({"tools": [MOVE, MOVE]}, "tools[1].function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
            "tools[0].function.parameters",
        ),
        (
            {"tools": [function("f", "d", {"a": {"type": "objekt"}}, [])]},
            "tools[0].function.parameters",
        ),
        ({"tools": [MOVE, function("g", "d", {"a": {"enum": []}}, [])]}, "tools[1].function.parameters"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "fly"}}}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"tools": TOOLS, "response_format": {"type": "json_object"}}, "response_format"),
    ],
)
def test_bad_tools_answer_400_naming_the_field(client, fields, param):
    assert bad_request(client, **fields)["param"] == param


@pytest.mark.parametrize(
    "message, param",
    [
        ({"role": "tool", "content": "result"}, "messages[2].tool_call_id"),
        (
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "move"}}],
                "content": None,
            },
            None,
        ),
        ({"role": "assistant", "tool_calls": "move", "content": None}, "messages[2].tool_calls"),
        (
            {"role": "assistant", "content": "x", "function_call": {"name": "move"}},
            "messages[2].function_call",
        ),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]},
            "messages[2].content",
        ),
        ({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}, "messages[2].content"),
        ({"role": "user", "content": "hi", "tool_call_id": "c"}, "messages[2].tool_call_id"),
    ],
)
def test_messages_with_tool_turns_are_checked(client, message, param):
    if param is None:  # an assistant call without arguments is fine
        assert create(client, messages=[*CHAT, message], max_tokens=2).choices
        return
    assert bad_request(client, messages=[*CHAT, message])["param"] == param


# ---- logprobs --------------------------------------------------------------------------------------
def test_logprobs_are_the_models_own_scores(client, model_dir, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    answer = create(client, logprobs=True, top_logprobs=3, max_tokens=6)
    entries = answer.choices[0].logprobs.content
    assert len(entries) == answer.usage.completion_tokens == 6
    for entry in entries:
        tops = [top.logprob for top in entry.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True) and entry.logprob <= 0
        assert entry.logprob == pytest.approx(tops[0], abs=1e-5)  # greedy: the best token was taken
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    text = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        first = model(torch.tensor([ids])).logits[0, -1].log_softmax(-1)
    best = first.topk(3)
    assert [top.logprob for top in entries[0].top_logprobs] == pytest.approx(best.values.tolist(), abs=1e-4)


def test_logprobs_without_top_and_sampled(client):
    answer = create(client, logprobs=True, max_tokens=5, temperature=1.0, seed=3, n=2)
    for choice in answer.choices:
        assert [entry.top_logprobs for entry in choice.logprobs.content] == [[]] * len(
            choice.logprobs.content
        )
        assert all(entry.logprob <= 0 for entry in choice.logprobs.content)
    assert create(client, max_tokens=2).choices[0].logprobs is None


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": "yes"}, "logprobs"),
    ],
)
def test_bad_logprobs_answer_400(client, fields, param):
    assert bad_request(client, **fields)["param"] == param


# ---- response formats -------------------------------------------------------------------------------
def test_json_object_is_constrained(client, tokenizer, compact):
    # No token with a quote (no key can start) and '}' favoured: the object can only be closed.
    quotes = {str(i): -100 for i in range(len(tokenizer)) if '"' in tokenizer.decode([i])}
    close = {**compact, **quotes, str(tokenizer.convert_tokens_to_ids("}")): 100}
    free = create(client, max_tokens=8, logit_bias=close).choices[0].message.content
    assert free.startswith("}")  # unconstrained, the bias alone writes no JSON
    answer = create(client, max_tokens=40, logit_bias=close, response_format={"type": "json_object"})
    assert json.loads(answer.choices[0].message.content) == {} and answer.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "n": {"type": "integer", "minimum": 0, "maximum": 9},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 2},
                "move": {"enum": ["left", "right"]},
            },
            "required": ["n", "tags", "move"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"inner": SCHEMAS["pick_up"]},
            "required": ["inner"],
            "additionalProperties": False,
        },
    ],
)
def test_json_schema_is_constrained(client, compact, schema):
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    for seed in (1, 2):
        answer = create(
            client,
            max_tokens=120,
            logit_bias=compact,
            response_format=response_format,
            temperature=1.0,
            seed=seed,
        )
        value = json.loads(answer.choices[0].message.content)
        jsonschema.validate(value, schema)
        assert list(value) == list(schema["properties"])  # in the schema's order


@pytest.mark.parametrize(
    "response_format, param",
    [
        ({"type": "xml"}, "response_format"),
        ({"type": "json_schema"}, "response_format.json_schema"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": "object"}},
            "response_format.json_schema.schema",
        ),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "(("}},
            },
            "response_format.json_schema.schema",
        ),
    ],
)
def test_bad_response_format_answers_400(client, response_format, param):
    assert bad_request(client, response_format=response_format)["param"] == param


# ---- penalties and logit bias -------------------------------------------------------------------------
def test_penalties_and_logit_bias_change_the_reply(client, tokenizer):
    base = create(client, max_tokens=24, logprobs=True)
    tokens = [entry.token for entry in base.choices[0].logprobs.content]
    assert len(set(tokens)) < len(tokens)  # the random model repeats itself
    for penalty in ({"frequency_penalty": 2.0}, {"presence_penalty": 2.0}):
        answer = create(client, max_tokens=24, logprobs=True, **penalty)
        assert len({entry.token for entry in answer.choices[0].logprobs.content}) > len(set(tokens))
    x = tokenizer.convert_tokens_to_ids("x")
    forced = create(client, max_tokens=5, logit_bias={str(x): 100}, logprobs=True).choices[0]
    assert forced.message.content == "xxxxx"
    assert [(entry.token, entry.bytes) for entry in forced.logprobs.content] == [("x", [120])] * 5
    first = base.choices[0].logprobs.content[0]
    # The token greedy decoding took first, banned: another comes first.
    ids = tokenizer(first.token, add_special_tokens=False)["input_ids"]
    if len(ids) == 1:
        other = create(client, max_tokens=1, logprobs=True, logit_bias={str(ids[0]): -100}).choices[0]
        assert other.logprobs.content[0].token != first.token


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"logit_bias": {"99999": 5}}, "logit_bias"),
        ({"logit_bias": {"a": 5}}, "logit_bias"),
        ({"logit_bias": {"5": 101}}, "logit_bias"),
        ({"presence_penalty": 2.5}, "presence_penalty"),
        ({"frequency_penalty": "high"}, "frequency_penalty"),
    ],
)
def test_bad_penalties_and_bias_answer_400(client, fields, param):
    assert bad_request(client, **fields)["param"] == param


# ---- every request field: served, advice, or refused by name ----------------------------------------------
def test_advisory_fields_are_accepted(client):
    answer = create(
        client,
        max_tokens=2,
        user="someone",
        safety_identifier="hash",
        metadata={"run": "7"},
        store=False,
        service_tier="auto",
        prompt_cache_key="k",
        max_completion_tokens=2,
        seed=1,
        stop=["\n\n", "END"],
        top_p=0.9,
    )
    assert answer.choices[0].message.role == "assistant" and answer.usage.completion_tokens <= 2


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"functions": [MOVE["function"]]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"reasoning_effort": "low"}, "reasoning_effort"),
        ({"verbosity": "low"}, "verbosity"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"store": True}, "store"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"extra_body": {"top_k": 5}}, "top_k"),
        ({"extra_body": {"best_of": 2}}, "best_of"),
        ({"max_tokens": 3, "max_completion_tokens": 4}, "max_tokens"),
        ({"user": 5}, "user"),
        ({"metadata": {"a": 1}}, "metadata"),
        ({"stop": ["a"] * 17}, "stop"),
    ],
)
def test_unsupported_fields_answer_400_naming_them(client, fields, param):
    if "max_tokens" in fields:
        with pytest.raises(openai.BadRequestError) as raised:
            create(client, **fields)
        assert raised.value.body["param"] == param
        return
    assert bad_request(client, **fields)["param"] == param


# ---- streaming --------------------------------------------------------------------------------------------
def collect(stream) -> dict:
    """A stream's chunks folded into choices: content, tool calls, finish reason, logprobs."""
    choices: dict[int, dict] = {}
    usage, ids, count = None, set(), 0
    for chunk in stream:
        count += 1
        assert chunk.object == "chat.completion.chunk" and chunk.model == NAME
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            mine = choices.setdefault(
                choice.index, {"content": "", "calls": {}, "finish": None, "logprobs": []}
            )
            assert mine["finish"] is None  # nothing after a choice's finish
            delta = choice.delta
            mine["content"] += delta.content or ""
            for call in delta.tool_calls or []:
                slot = mine["calls"].setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                slot["name"] += (call.function.name or "") if call.function else ""
                slot["arguments"] += (call.function.arguments or "") if call.function else ""
            if choice.logprobs is not None and choice.logprobs.content:
                mine["logprobs"] += choice.logprobs.content
            mine["finish"] = choice.finish_reason
    assert len(ids) == 1
    return {"choices": choices, "usage": usage, "chunks": count}


def test_stream_gives_the_same_reply_as_a_whole_answer(client):
    fields = {"max_tokens": 12, "logprobs": True, "top_logprobs": 2}
    whole = create(client, **fields)
    streamed = collect(create(client, stream=True, stream_options={"include_usage": True}, **fields))
    [choice] = streamed["choices"].values()
    assert choice["content"] == whole.choices[0].message.content
    assert choice["finish"] == whole.choices[0].finish_reason == "length"
    assert [e.logprob for e in choice["logprobs"]] == pytest.approx(
        [e.logprob for e in whole.choices[0].logprobs.content]
    )
    assert (
        streamed["usage"].completion_tokens == 12
        and streamed["usage"].prompt_tokens == whole.usage.prompt_tokens
    )
    assert streamed["chunks"] > 3  # text came in pieces


def test_stream_without_usage_option_and_with_stop_strings(client, compact):
    fields = {"max_tokens": 24, "temperature": 1.0, "seed": 11, "logit_bias": compact}
    whole = create(client, logprobs=True, **fields).choices[0].message.content
    start = next(
        i for i in range(3, len(whole) - 2) if whole[i : i + 2].isascii() and whole[i : i + 2].strip()
    )
    stop = whole[start : start + 2]
    streamed = collect(create(client, stream=True, stop=[stop], **fields))
    [choice] = streamed["choices"].values()
    assert streamed["usage"] is None
    assert choice["content"] == whole[: whole.index(stop)] and choice["finish"] == "stop"


def test_stream_with_several_choices(client):
    streamed = collect(create(client, stream=True, n=3, temperature=1.0, seed=4, max_tokens=6))
    assert sorted(streamed["choices"]) == [0, 1, 2]
    assert all(choice["finish"] in ("stop", "length") for choice in streamed["choices"].values())


def test_stream_with_required_tools_sends_tool_call_deltas(client, compact):
    streamed = collect(
        create(client, stream=True, tools=TOOLS, tool_choice="required", max_tokens=200, logit_bias=compact, n=2,
               temperature=1.0, seed=8)
    )  # fmt: skip
    for choice in streamed["choices"].values():
        assert choice["finish"] == "tool_calls" and "<tool_call>" not in choice["content"]
        assert choice["calls"]
        for call in choice["calls"].values():
            assert call["id"].startswith("call_")
            jsonschema.validate(json.loads(call["arguments"]), SCHEMAS[call["name"]])


def test_stream_is_incremental_and_stops_when_the_client_leaves(client, server):
    before = server.health()["generated_tokens"]
    stream = create(client, stream=True, max_tokens=1500, logprobs=True)
    tokens = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
            tokens += len(chunk.choices[0].logprobs.content)
            if tokens >= 20:
                break
    assert server.health()["running"] == 1  # the text came while the model was still generating
    stream.close()
    left = time.monotonic()
    while server.health()["running"] and time.monotonic() - left < 60:
        time.sleep(0.05)
    assert server.health()["running"] == 0
    # The generation stopped with the client, long before its 1500 tokens (counted in tokens,
    # not seconds: a loaded machine slows both the model and the server's write that finds the
    # client gone).
    generated = server.health()["generated_tokens"] - before
    assert 20 <= generated < 750


def test_stream_on_an_overloaded_server_answers_503_before_streaming(servers):
    small = servers[1]
    slow = threading.Thread(
        target=lambda: requests.post(
            small.url + "/v1/chat/completions",
            json={"messages": CHAT, "temperature": 0, "max_tokens": 200, "logprobs": True},
            timeout=120,
        )
    )
    slow.start()
    deadline = time.monotonic() + 10
    while small.health()["running"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    refused = requests.post(
        small.url + "/v1/chat/completions", json={"messages": CHAT, "stream": True}, timeout=30
    )
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "overloaded"
    client = openai.OpenAI(base_url=small.url + "/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=NAME, messages=CHAT, stream=True)
    slow.join(120)


# ---- models that serve less ---------------------------------------------------------------------------------
def test_a_plain_agent_refuses_what_it_cannot_serve_and_still_streams():
    from agents.scripted import RandomAgent
    from evol.agent_server import create_agent_app

    client = create_agent_app(RandomAgent(seed=0, fallback=("look",)), "random").test_client()
    for fields, param in [
        ({"tools": [MOVE]}, "tools"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logit_bias": {"1": 1}}, "logit_bias"),
        ({"presence_penalty": 1}, "presence_penalty"),
    ]:
        answer = client.post("/v1/chat/completions", json={"messages": CHAT, **fields})
        assert answer.status_code == 400 and answer.get_json()["error"]["param"] == param
    # tool_choice "none" leaves the tools out: nothing to refuse.
    answer = client.post(
        "/v1/chat/completions", json={"messages": CHAT, "tools": [MOVE], "tool_choice": "none"}
    )
    assert answer.status_code == 200
    events = client.post("/v1/chat/completions", json={"messages": CHAT, "stream": True}).get_data(
        as_text=True
    )
    lines = [line[len("data: ") :] for line in events.splitlines() if line]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "look"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_template_without_tool_support_refuses_tools(model_dir):
    from agents.hf import HFAgent
    from evol.agent_server import create_agent_app

    plain = (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    agent = HFAgent(model_dir, device="cpu", chat_template=plain)
    client = create_agent_app(agent, "plain").test_client()
    answer = client.post("/v1/chat/completions", json={"messages": CHAT, "tools": [MOVE], "max_tokens": 2})
    assert answer.status_code == 400 and answer.get_json()["error"]["param"] == "tools"
    assert "chat template" in answer.get_json()["error"]["message"]
    answer = client.post("/v1/chat/completions", json={"messages": CHAT, "logprobs": True, "max_tokens": 2})
    assert answer.status_code == 200 and len(answer.get_json()["choices"][0]["logprobs"]["content"]) == 2
    agent.close()
