"""Tool calls end to end: the formats read from a local model's replies (`agents.structured`),
and `OpenAIAgent` sending each episode's own `info["tools"]` to a real `serve-agent` and
turning the `tool_calls` answers into the actions a real tool-use env reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import envs
from agents import AgentInput, SamplingParams
from agents.base import conversation
from agents.openai_compat import AgentRequestError, OpenAIAgent, choice_text
from agents.structured import HERMES, LLAMA, PROBE_TOOL, detect_tool_format, held_back, parse_tool_calls
from tests.conftest import AgentServerProcess

os.environ["HF_HUB_OFFLINE"] = "1"
NAMES = {"move", "pick_up"}
RATE = {"type": "function", "function": {"name": "get_exchange_rate"}}
MOVE = {
    "type": "function",
    "function": {
        "name": "move",
        "parameters": {"type": "object", "properties": {"d": {"enum": ["left", "right"]}}, "required": ["d"]},
    },
}
# A template that teaches Llama 3's call format: {"name": ..., "parameters": {...}}.
LLAMA_STYLE = (
    "{% if tools %}{{ '<|im_start|>system\nRespond with a function call as JSON in the format "
    '{"name": function name, "parameters": dictionary of argument name and its value}.\n\' }}'
    "{% for tool in tools %}{{ tool | tojson }}{% endfor %}{{ '<|im_end|>\n' }}{% endif %}"
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# ---- reading calls -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, content, calls",
    [
        (
            '<tool_call>\n{"name": "move", "arguments": {"d": "left"}}\n</tool_call>',
            None,
            [("move", {"d": "left"})],
        ),
        (
            'I will move twice.\n<tool_call>\n{"name": "move", "arguments": {"d": 1}}\n</tool_call>\n'
            '<tool_call>{"name": "pick_up", "arguments": "{\\"object\\": \\"key\\"}"}</tool_call>',
            "I will move twice.",
            [("move", {"d": 1}), ("pick_up", {"object": "key"})],
        ),
        ('<tool_call>\n{"name": "move", "arguments": {}}', None, [("move", {})]),  # cut before its end tag
        (
            '<tool_call>\n{"name": "move", "arguments": {"d": "le',
            '<tool_call>\n{"name": "move", "arguments": {"d": "le',
            [],
        ),
        (
            '<tool_call>{"name": "fly", "arguments": {}}</tool_call>',
            '<tool_call>{"name": "fly", "arguments": {}}</tool_call>',
            [],
        ),
        (
            '<tool_call>{"name": "move", "arguments": [1]}</tool_call>',
            '<tool_call>{"name": "move", "arguments": [1]}</tool_call>',
            [],
        ),
        (
            '<tool_call>{"name": "move", "arguments": {}} extra</tool_call>',
            '<tool_call>{"name": "move", "arguments": {}} extra</tool_call>',
            [],
        ),
        ("no call here", "no call here", []),
    ],
)
def test_hermes_calls_are_read_and_anything_else_stays_text(text, content, calls):
    parsed = parse_tool_calls(text, HERMES, NAMES)
    assert parsed.content == content
    assert [(call["name"], call["arguments"]) for call in parsed.calls] == calls


@pytest.mark.parametrize(
    "text, content, calls",
    [
        ('{"name": "move", "parameters": {"d": "up"}}', None, [("move", {"d": "up"})]),
        (
            '{"name": "move", "parameters": {"d": "up"}}; {"name": "pick_up", "arguments": {"object": "ball"}}',
            None,
            [("move", {"d": "up"}), ("pick_up", {"object": "ball"})],
        ),
        ('Sure: {"name": "move", "parameters": {}}', "Sure:", [("move", {})]),
        ('{"answer": 3}', '{"answer": 3}', []),
        (
            '{"wrapper": {"name": "move", "parameters": {}}}',
            '{"wrapper": {"name": "move", "parameters": {}}}',
            [],
        ),
        ('{"name": "move", "parameters": {"d": ', '{"name": "move", "parameters": {"d": ', []),
    ],
)
def test_llama_calls_are_read_and_anything_else_stays_text(text, content, calls):
    parsed = parse_tool_calls(text, LLAMA, NAMES)
    assert parsed.content == content
    assert [(call["name"], call["arguments"]) for call in parsed.calls] == calls


@pytest.mark.parametrize(
    "text, markers, shown",
    [
        ("Hello <tool", ["<tool_call>"], 6),
        ('Hello <tool_call>\n{"name"', ["<tool_call>"], 6),
        ("Hello", ["<tool_call>"], 5),
        ("the EN", ["END"], 4),
        ("the END", ["END", "<tool_call>"], 4),
        ("<", ["<tool_call>", ""], 0),
    ],
)
def test_streamed_text_stops_short_of_what_may_become_a_marker(text, markers, shown):
    assert held_back(text, markers) == shown


def test_tool_formats_are_detected_from_the_template(tmp_path):
    from transformers import AutoTokenizer

    from agents.hf import render_chat
    from agents.tiny import build_tiny_model

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path, ["hello"]))
    probe = [{"role": "user", "content": "hi"}]

    def detect(template: str | None):
        plain = render_chat(tokenizer, probe, template)
        return detect_tool_format(plain, render_chat(tokenizer, probe, template, tools=[PROBE_TOOL]))

    assert detect(None) is HERMES and detect(LLAMA_STYLE) is LLAMA
    assert detect("{% for m in messages %}{{ m['content'] }}{% endfor %}") is None  # tools never shown
    shown_differently = (
        "{% for t in tools or [] %}{{ t['function']['name'] }}{% endfor %}{{ messages[0]['content'] }}"
    )
    assert detect(shown_differently) is None  # shown, but no call format this server reads


def test_choice_text_writes_each_call_on_a_line_for_the_env():
    calls = [
        {
            "id": "a",
            "type": "function",
            "function": {"name": "get_exchange_rate", "arguments": '{"base": "USD", "target": "EUR"}'},
        },
        {
            "id": "b",
            "type": "function",
            "function": {"name": "get_exchange_rate", "arguments": {"base": "EUR", "target": "GBP"}},
        },
    ]
    text = choice_text({"message": {"content": None, "tool_calls": calls}})
    assert [json.loads(line)["arguments"]["target"] for line in text.splitlines()] == ["EUR", "GBP"]
    env = envs.make("evol/ToolUse-v0")
    env.reset(seed=0, options={"task": 3})
    _, _, _, _, info = env.step(text)
    assert not info["invalid"] and [call["arguments"]["base"] for call in info["calls"]] == ["USD", "EUR"]
    broken = {"function": {"name": "f", "arguments": "{not json"}}
    assert json.loads(choice_text({"message": {"tool_calls": [broken]}}))["arguments"] == "{not json"
    assert choice_text({"message": {"content": "Final Answer: 3"}}) == "Final Answer: 3"


# ---- OpenAIAgent with a served model --------------------------------------------------------------------
@pytest.fixture(scope="module")
def tool_env():
    env = envs.make("evol/ToolUse-v0")
    yield env
    env.close()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tool_env) -> str:
    """A tiny model whose tokenizer learnt the tool env's own text (fewer tokens a prompt)."""
    from agents.tiny import build_tiny_model

    corpus = []
    for task in range(6):
        observation, info = tool_env.reset(seed=task, options={"task": task})
        corpus += [observation, info["instruction"], json.dumps(info["tools"])]
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny"), corpus))


@pytest.fixture(scope="module")
def server(model_dir):
    server = AgentServerProcess(model_dir)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def compact(model_dir) -> dict[str, int]:
    """Whitespace-only tokens banned: the random model's call arguments stay compact."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return {
        str(i): -100
        for i in range(len(tokenizer))
        if tokenizer.decode([i]) and not tokenizer.decode([i]).strip()
    }


def agent_for(server, compact, **extra) -> OpenAIAgent:
    return OpenAIAgent(server.url, model="tiny", max_retries=0, extra_body={"logit_bias": compact, **extra})


def test_each_episode_sends_its_own_tools_and_reads_calls_back_as_actions(server, compact, tool_env):
    agent = agent_for(server, compact, tool_choice=RATE, parallel_tool_calls=False)
    sampling = SamplingParams(max_new_tokens=120)
    observation, info = tool_env.reset(seed=0, options={"task": 3})
    assert "get_exchange_rate" in {tool["function"]["name"] for tool in info["tools"]}
    messages = conversation(info["instruction"], [observation], [])
    [first] = agent.act([AgentInput(messages, info, tool_env)], sampling)
    assert json.loads(first.action)["name"] == "get_exchange_rate"
    observation2, _, _, _, info2 = tool_env.step(first.action)
    assert not info2["invalid"] and info2["calls"][-1]["name"] == "get_exchange_rate" and "tools" not in info2
    # A later step's info has no tools: the episode's tools from its reset still go along.
    later = conversation(info["instruction"], [observation, observation2], [first.text])
    [second] = agent.act([AgentInput(later, info2, tool_env)], sampling)
    assert json.loads(second.action)["name"] == "get_exchange_rate"
    # A reset without tools (another episode) forgets them: naming a tool is now refused.
    with pytest.raises(AgentRequestError) as refused:
        agent.act([AgentInput(messages, {"instruction": "Play."}, tool_env)], sampling)
    assert refused.value.status == 400 and "tool_choice" in refused.value.message
    agent.close()


def test_episodes_in_one_batch_each_get_their_own_tools(server, compact, tool_env):
    agent = agent_for(server, compact, tool_choice="required", parallel_tool_calls=False)
    observation, info = tool_env.reset(seed=1, options={"task": 3})
    rate_only = {
        **info,
        "tools": [tool for tool in info["tools"] if tool["function"]["name"] == "get_exchange_rate"],
    }
    inputs = [
        AgentInput(conversation(info["instruction"], [observation], []), rate_only),
        AgentInput(conversation("Move.", ["Where to?"], []), {"tools": [MOVE]}),
    ]
    outputs = agent.act(inputs, SamplingParams(max_new_tokens=120))
    assert [json.loads(output.action)["name"] for output in outputs] == ["get_exchange_rate", "move"]
    agent.close()


def test_constructor_tools_serve_episodes_without_their_own(server, compact):
    tools = [
        {"type": "function", "function": {"name": "wait", "parameters": {"type": "object", "properties": {}}}}
    ]
    agent = OpenAIAgent(
        server.url,
        model="tiny",
        tools=tools,
        max_retries=0,
        extra_body={"tool_choice": "required", "logit_bias": compact},
    )
    [output] = agent.act([AgentInput(conversation("Wait.", ["now"], []))], SamplingParams(max_new_tokens=60))
    assert json.loads(output.action.splitlines()[0]) == {"name": "wait", "arguments": {}}
    agent.close()


def test_serve_agent_chat_template_flag_gives_llama_style_calls(model_dir, compact, tmp_path):
    import openai

    template = tmp_path / "llama.jinja"
    template.write_text(LLAMA_STYLE)
    server = AgentServerProcess(model_dir, "--chat-template", str(template))
    try:
        client = openai.OpenAI(base_url=server.wait_ready().url + "/v1", api_key="none", max_retries=0)
        answer = client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "Move."}],
            tools=[MOVE],
            tool_choice="required",
            temperature=0,
            max_tokens=80,
            logit_bias=compact,
        )
        [call] = answer.choices[0].message.tool_calls
        assert call.function.name == "move" and json.loads(call.function.arguments)["d"] in ("left", "right")
        client.close()
    finally:
        server.stop()


def test_serve_agent_refuses_an_unreadable_chat_template(model_dir, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "evol.agent_server_cli", "serve-agent", "--model", model_dir,
         "--chat-template", str(tmp_path / "missing.jinja"), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "cannot read --chat-template" in done.stderr
