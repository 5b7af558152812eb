"""Reading tool calls from replies (`envs.tools.call_syntax`) and running several in one turn.

Each class of call text gets a table of cases: Python keywords as argument names, names with
`-` or `.`, several calls in one reply (OOD-Toolset's answer format among them), quotes inside
values, nested JSON values, trailing commas, whitespace and newlines, code fences and
`Action:` text; and what is refused, with the reason the agent is told.
"""

from __future__ import annotations

import json
import time

import pytest

import envs
from envs.tools.call_syntax import MAX_CALLS, CallSyntaxError, read_calls, read_value
from envs.tools.calls import parse_action
from envs.tools.env import ToolUseEnv

READ = {
    # ---- Python keywords as argument names
    "keyword from/to": (
        "convertCurrency(from='EUR', to='USD', amount=50)",
        [("convertCurrency", {"from": "EUR", "to": "USD", "amount": 50})],
    ),
    "keyword class/import/lambda": (
        "enrol(class='7B', import=true, lambda=0.5)",
        [("enrol", {"class": "7B", "import": True, "lambda": 0.5})],
    ),
    "keyword if/in/is/not": ("f(if=1, in=2, is=3, not=4)", [("f", {"if": 1, "in": 2, "is": 3, "not": 4})]),
    "keyword None as a name": ("f(None=None, True=False)", [("f", {"None": None, "True": False})]),
    # ---- names with `-` or `.`
    "hyphenated name": (
        "add-question(text='Why?', points=2)",
        [("add-question", {"text": "Why?", "points": 2})],
    ),
    "hyphens and digits": ("get-2fa-code(user='ada')", [("get-2fa-code", {"user": "ada"})]),
    "dotted name": ("api.v2.search(q='rome')", [("api.v2.search", {"q": "rome"})]),
    "hyphenated argument": ("f(max-results=5)", [("f", {"max-results": 5})]),
    # ---- several calls in one reply
    "one a line": ("f(a=1)\ng(b='x')\nh()", [("f", {"a": 1}), ("g", {"b": "x"}), ("h", {})]),
    "semicolons and commas": ("f(a=1); g(b=2), h(c=3)", [("f", {"a": 1}), ("g", {"b": 2}), ("h", {"c": 3})]),
    "OOD-Toolset answer list": (
        """Function calls: ["convertCurrency(from='EUR', to='USD', amount=50)", "getRate(base='EUR')"]""",
        [("convertCurrency", {"from": "EUR", "to": "USD", "amount": 50}), ("getRate", {"base": "EUR"})],
    ),
    "answer list in single quotes": (
        "['f(a=\"x\")', 'g(b=2)']",
        [("f", {"a": "x"}), ("g", {"b": 2})],
    ),
    "list of bare calls": ("[f(a=1), g(b=2)]", [("f", {"a": 1}), ("g", {"b": 2})]),
    "numbered list": ("1. f(a=1)\n2) g(b=2)\n- h(c=3)", [("f", {"a": 1}), ("g", {"b": 2}), ("h", {"c": 3})]),
    "JSON objects one a line": (
        '{"name": "f", "arguments": {"a": 1}}\n{"name": "g", "parameters": {"b": 2}}',
        [("f", {"a": 1}), ("g", {"b": 2})],
    ),
    "JSON list of call objects": (
        '[{"name": "f", "arguments": {"a": 1}}, {"type": "function", "function": {"name": "g", "arguments": "{}"}}]',
        [("f", {"a": 1}), ("g", {})],
    ),
    "dict argument (OOD-Toolset's AnswerDict)": (
        "f({'from': 'EUR', 'amount': 5})",
        [("f", {"from": "EUR", "amount": 5})],
    ),
    # ---- quotes inside values
    "escaped double quotes": ('say(text="he said \\"hi\\"")', [("say", {"text": 'he said "hi"'})]),
    "escaped single quote": ("note(text='it\\'s')", [("note", {"text": "it's"})]),
    "apostrophe left unescaped": (
        "note(text='it's fine, isn't it')",
        [("note", {"text": "it's fine, isn't it"})],
    ),
    "mixed quotes": ("""f(a="it's", b='say "x"')""", [("f", {"a": "it's", "b": 'say "x"'})]),
    "inner double quotes unescaped": (
        'say(text="he said "hi" twice")',
        [("say", {"text": 'he said "hi" twice'})],
    ),
    "quote then a comma inside": ("f(a='x, y', b='z')", [("f", {"a": "x, y", "b": "z"})]),
    "escapes": (
        r"f(a='tab\tline\nend', b='\u00e9\ud83d\ude00', c='C:\\temp')",
        [("f", {"a": "tab\tline\nend", "b": "é😀", "c": "C:\\temp"})],
    ),
    "parentheses inside a string": ("f(a='(x)', b=')')", [("f", {"a": "(x)", "b": ")"})]),
    # ---- nested JSON-literal values
    "nested object and list": (
        'f(data={"a": [1, -2.5, {"b": null}], "c": true, "d": "x"})',
        [("f", {"data": {"a": [1, -2.5, {"b": None}], "c": True, "d": "x"}})],
    ),
    "Python literals": (
        "f(a=(1, 2), b=None, c=False, d={'k': [True]})",
        [("f", {"a": [1, 2], "b": None, "c": False, "d": {"k": [True]}})],
    ),
    "numbers": (
        "f(a=-3, b=+4, c=1e3, d=.5, e=2.)",
        [("f", {"a": -3, "b": 4, "c": 1000.0, "d": 0.5, "e": 2.0})],
    ),
    "empty containers": ("f(a=[], b={}, c=())", [("f", {"a": [], "b": {}, "c": []})]),
    # ---- trailing commas
    "trailing comma in a call": ("f(a=1,)", [("f", {"a": 1})]),
    "trailing commas everywhere": ("f(a=[1, 2,], b={'x': 1,},)", [("f", {"a": [1, 2], "b": {"x": 1}})]),
    "trailing comma in a list of calls": ('["f(a=1)", "g(b=2)",]', [("f", {"a": 1}), ("g", {"b": 2})]),
    # ---- whitespace and newlines inside calls
    "spaces around =": ("f( a = 1 , b\t=\t'x' )", [("f", {"a": 1, "b": "x"})]),
    "a call over several lines": (
        "f(\n    a=1,\n    b=[\n        2,\n    ],\n)",
        [("f", {"a": 1, "b": [2]})],
    ),
    "a JSON call over several lines": (
        '{\n  "name": "f",\n  "arguments": {\n    "a": 1\n  }\n}',
        [("f", {"a": 1})],
    ),
    # ---- code fences, Action: text, prose around
    "python fence": ("```python\nf(a=1)\ng(b=2)\n```", [("f", {"a": 1}), ("g", {"b": 2})]),
    "json fence": ('```json\n{"name": "f", "arguments": {"a": 1}}\n```', [("f", {"a": 1})]),
    "Action: label": ("Thought: convert first.\nAction: f(a=1)", [("f", {"a": 1})]),
    "Action: after prose on a line": ("I will convert it. Action: f(a=1)", [("f", {"a": 1})]),
    "bold label and backticks": ("**Action:** `f(a=1)`", [("f", {"a": 1})]),
    "prose lines skipped": (
        "Let me think about it (carefully).\nf(a=1)\nThat's the call I'd make.",
        [("f", {"a": 1})],
    ),
    "trailing prose after a call": (
        "f(a=1)  # the first one\ng(b=2) then done",
        [("f", {"a": 1}), ("g", {"b": 2})],
    ),
}


@pytest.mark.parametrize("text, calls", list(READ.values()), ids=list(READ))
def test_call_text_is_read(text, calls):
    assert read_calls(text) == calls


REFUSED = {
    "positional argument": ("get_weather('Paris')", "pass the arguments of get_weather by name"),
    "star arguments": ("f(**kwargs)", "pass the arguments of f by name"),
    "bare word value": ("f(city=Paris)", "Paris is a bare word"),
    "a call as a value": ("f(a=g(1))", "g is a bare word"),
    "a set": ("f(a={1, 2})", "keys of an object must be strings"),
    "an unhashable key": ("f(a={[]: 1})", "must be a literal"),
    "bytes": ("f(a=b'x')", "b is a bare word"),
    "complex number": ("f(a=1j)", "separate the arguments with commas"),
    "an expression": ("f(a=1+2)", "separate the arguments with commas"),
    "infinity": ("f(a=1e999)", "out of a number's range"),
    "NaN": ("f(a=NaN)", "NaN is a bare word"),
    "a huge integer": ("f(a=" + "9" * 200 + ")", "more than 100 digits"),
    "too deep": ("f(a=" + "[" * 30 + "]" * 30 + ")", "nested more than 20 levels deep"),
    "an argument twice": ("f(a=1, a=2)", "gives the argument 'a' twice"),
    "an unclosed call": ("f(a=1", "is not closed"),
    "an unclosed string": ("f(a='x)", "a string is not closed on its line"),
    "missing comma": ("f(a=1 b=2)", "separate the arguments with commas"),
    "too many calls": ("\n".join(f"f(a={n})" for n in range(MAX_CALLS + 1)), f"at most {MAX_CALLS} calls"),
    "a list holding prose": ("[f(a=1), hello]", "a list of calls holds calls"),
    "a JSON call without a name": ('{"arguments": {}}', 'needs a "name"'),
    "broken JSON": ('{"name": "f", "arguments": {"a": 1,', "the tool call is not valid JSON"),
    "a bad arguments string": (
        '{"name": "f", "arguments": "{\\"a\\": "}',
        'the "arguments" string of f is not valid JSON',
    ),
}


@pytest.mark.parametrize("text, reason", list(REFUSED.values()), ids=list(REFUSED))
def test_unreadable_call_text_is_refused_with_its_reason(text, reason):
    with pytest.raises(CallSyntaxError) as caught:
        read_calls(text)
    assert reason in str(caught.value)
    action = parse_action(text)
    assert action.error and reason in action.error and not action.calls


PROSE = [
    "hello world",
    "I don't know (yet).",
    "[Note] nothing to call",
    '"Quoted," she said.',
    "The answer: maybe",
]


@pytest.mark.parametrize("text", PROSE)
def test_prose_holds_no_call(text):
    assert read_calls(text) == []
    assert "cannot read a tool call or a final answer" in parse_action(text).error


REACT = {
    "one pair": ('Action: f\nAction Input: {"a": 1}', [("f", {"a": 1})]),
    "two pairs": (
        'Thought: both.\nAction: f\nAction Input: {"a": 1}\nAction: g\nAction Input: {"b": "x"}\nObservation:',
        [("f", {"a": 1}), ("g", {"b": "x"})],
    ),
    "empty input then a pair": (
        'Action: view\nAction Input:\nAction: f\nAction Input: {"a": 1}',
        [("view", {}), ("f", {"a": 1})],
    ),
    "Python-style input": (
        "Action: convert\nAction Input: {'from': 'EUR', 'amount': 5,}",
        [("convert", {"from": "EUR", "amount": 5})],
    ),
    "hyphenated tool": (
        'Action: add-question\nAction Input: {"text": "it\'s"}',
        [("add-question", {"text": "it's"})],
    ),
}


@pytest.mark.parametrize("text, calls", list(REACT.values()), ids=list(REACT))
def test_react_pairs_are_read_in_order(text, calls):
    action = parse_action(text)
    assert action.error is None and [(c.name, c.arguments) for c in action.calls] == calls


def test_read_value_reads_json_and_python_literals_and_refuses_the_rest():
    assert read_value('{"a": [1, 2.5, null, true]}', "x") == {"a": [1, 2.5, None, True]}
    assert read_value("{'a': (1, None, False),}", "x") == {"a": [1, None, False]}
    for text, reason in (("{a: 1}", "keys"), ("[1, 2] extra", "text after its value"), ("", "ends")):
        with pytest.raises(CallSyntaxError, match=reason):
            read_value(text, "x")


def test_reading_is_linear_on_long_hostile_texts():
    n = 16_000
    texts = [
        "f(a='" + "' x" * (n // 3),
        "f(a=" * (n // 4),
        "[" * n,
        '["' + 'f(a=\\"' * (n // 8),
        ("'" + "x" * 50 + "\n") * (n // 52),
        "f(a=[" + "1," * (n // 2 - 4) + "])",
        "x " + "Action: y " * (n // 10),
        "f(a='" + "\\" * (n - 10) + "')",
        "Action: f\nAction Input: " * (n // 24),
        "f(a='" + " " * (n - 10) + "x')",
    ]
    for text in texts:
        started = time.perf_counter()
        parse_action(text[:n])
        assert time.perf_counter() - started < 0.5, text[:40]


# ---- several calls in one turn of the env -----------------------------------------------------
@pytest.fixture
def env() -> ToolUseEnv:
    env = envs.make("evol/ToolUse-v0", max_turns=50)
    env.reset(seed=0, options={"task": 11, "split": "test"})  # Weather, Currency, Units, Flights
    return env


WEATHER = "get_weather(city='Paris', date='2025-05-03')"
UNITS = "convert_units(value=10, from_unit='km', to_unit='mi')"


def test_several_calls_run_in_order_and_each_result_is_shown(env):
    observation, reward, terminated, _, info = env.step(f"```python\n{WEATHER}\n{UNITS}\n```")
    lines = observation.splitlines()
    assert lines[0].startswith("Result 1 (get_weather): ") and lines[1].startswith(
        "Result 2 (convert_units): "
    )
    assert json.loads(lines[0].split(": ", 1)[1])["city"] == "Paris"
    assert json.loads(lines[1].split(": ", 1)[1])["result"] == pytest.approx(6.2137, rel=1e-3)
    assert not info["invalid"] and reward == 0.0 and not terminated
    assert [c["name"] for c in info["calls_run"]] == ["get_weather", "convert_units"]
    assert [c["name"] for c in info["calls"]] == ["get_weather", "convert_units"]


@pytest.mark.parametrize(
    "reply",
    [
        f"{WEATHER}\nget_weather(city='Atlantis', date='2025-05-03')\n{UNITS}",
        f'["{WEATHER}", "no_such_tool(x=1)", "{UNITS}"]',
        f"{WEATHER}; get_weather(city='Paris', date='May 3'); {UNITS}",
    ],
    ids=["bad value", "unknown tool", "bad date"],
)
def test_the_first_failing_call_stops_the_reply_after_the_calls_before_it_ran(env, reply):
    observation, reward, terminated, _, info = env.step(reply)
    assert observation.startswith("Result 1 (get_weather): ")
    assert "Call 2 of 3 (" in observation and "the 1 call(s) after it were not run" in observation
    assert info["invalid"] and reward == 0.0 and not terminated
    assert [c["name"] for c in info["calls"]] == ["get_weather"]  # the third never ran


def test_one_call_keeps_its_plain_result_and_error(env):
    observation, _, _, _, info = env.step(WEATHER)
    assert json.loads(observation)["city"] == "Paris" and info["call"]["name"] == "get_weather"
    observation, _, _, _, info = env.step("get_weather(city='Atlantis', date='2025-05-03')")
    assert observation.startswith("Error: ") and "Call 1" not in observation and info["invalid"]


EXCHANGE = {
    "Name": "Exchange",
    "Description": "currency conversion and a quiz",
    "Function_Description": {
        "convertCurrency": 'Convert money.\nParameters: {"from": "Required. string. Currency code.", '
        '"to": "Required. string. Currency code.", "amount": "Required. number. How much."}',
        "add-question": 'Add a quiz question.\nParameters: {"text": "Required. string. The question."}',
    },
    "Demonstration": [
        {
            "Instruction": "Add 'Why?'",
            "Answer": [{"Action": "add-question", "Action_Input": '{"text": "Why?"}'}],
        }
    ],
    "Query": {
        "Instruction": 'Convert 50 EUR to USD and add the question "Isn\'t it cheap?".',
        "Answer": [
            {"Action": "convertCurrency", "Action_Input": '{"from": "EUR", "to": "USD", "amount": 50}'},
            {"Action": "add-question", "Action_Input": '{"text": "Isn\'t it cheap?"}'},
        ],
    },
}


def ood_answer(record: dict) -> str:
    """The record's gold calls written as OOD-Toolset's prompts ask: ["name(key='value')", ...]."""
    calls = []
    for step in record["Query"]["Answer"]:
        arguments = json.loads(step["Action_Input"])
        inner = ", ".join(f"{k}='{v}'" if isinstance(v, str) else f"{k}={v}" for k, v in arguments.items())
        calls.append(f"{step['Action']}({inner})")
    return f"Function calls: {json.dumps(calls)}"


@pytest.mark.parametrize(
    "reply",
    [
        ood_answer(EXCHANGE),
        "convertCurrency(from='EUR', to='USD', amount=50)\nadd-question(text='Isn't it cheap?')",
        'Action: convertCurrency\nAction Input: {"from": "EUR", "to": "USD", "amount": 50}\n'
        'Action: add-question\nAction Input: {"text": "Isn\'t it cheap?"}',
        '[{"name": "convertCurrency", "arguments": {"from": "EUR", "to": "USD", "amount": 50}}, '
        '{"name": "add-question", "arguments": {"text": "Isn\'t it cheap?"}}]',
    ],
    ids=["ood-list", "lines", "react-pairs", "json-list"],
)
def test_an_ood_toolset_answer_in_one_reply_is_an_exact_match(tmp_path, reply):
    path = tmp_path / "exchange.jsonl"
    path.write_text(json.dumps(EXCHANGE) + "\n")
    env = ToolUseEnv(data=str(path))
    env.reset(options={"task": 0})
    observation, reward, terminated, _, info = env.step(reply)
    assert terminated and reward == 1.0 and info["success"] and info["exact_match"] == 1.0, observation
    assert observation.count("Result ") == 2


def test_loaded_records_still_end_after_as_many_single_calls_as_the_gold(tmp_path):
    path = tmp_path / "exchange.json"
    path.write_text(json.dumps([EXCHANGE]))
    env = ToolUseEnv(data=str(path))
    env.reset(options={"task": 0})
    _, reward, terminated, _, _ = env.step("convertCurrency(from='EUR', to='USD', amount=50)")
    assert not terminated and reward == 0.0
    _, reward, terminated, _, info = env.step("""add-question(text="Isn't it cheap?")""")
    assert terminated and reward == 1.0 and info["exact_match"] == 1.0


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"Name": "x"}\n{not json}\n', "line 2 of 'tools.jsonl' is not valid JSON"),
        ('[{"Name": "x"},', "'tools.jsonl' is not valid JSON"),
        ('{"Name": "x"}\n', "record 0 of 'tools.jsonl' is not an OOD-Toolset record"),
        ("\n\n", "'tools.jsonl' holds no records"),
        (b"\xff\xfe", "cannot read the OOD-Toolset file 'tools.jsonl'"),
    ],
)
def test_a_bad_toolset_file_is_named_by_its_name_alone(tmp_path, content, message):
    path = tmp_path / "tools.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError) as caught:
        ToolUseEnv(data=str(path))
    assert message in str(caught.value) and str(tmp_path) not in str(caught.value)


def test_a_missing_toolset_file_is_named_by_its_name_alone(tmp_path):
    with pytest.raises(ValueError) as caught:
        ToolUseEnv(data=str(tmp_path / "nowhere" / "tools.jsonl"))
    assert "cannot read the OOD-Toolset file 'tools.jsonl': No such file or directory" == str(caught.value)
