"""Self-Demos reads the calls of the demonstrations it generates, in every form OOD-Toolset writes.

`keyword_calls` (call syntax, through Python's tokenizer, values through a strict JSON decoder)
and `parse_demonstration` get a table per class: keyword argument names, names with `-` or `.`,
several calls a line and OOD-Toolset's list of call strings, quotes inside values, nested
values, trailing commas; and what is refused (values that are no JSON literal).
"""

from __future__ import annotations

import pytest

from agents.self_demos import check_demonstration, keyword_calls, parse_demonstration

READ = {
    "keyword names": (
        "convertCurrency(from='EUR', to='USD', amount=50)",
        [{"name": "convertCurrency", "arguments": {"from": "EUR", "to": "USD", "amount": 50}}],
    ),
    "more keywords": (
        "f(class='a', import=1, lambda=None)",
        [{"name": "f", "arguments": {"class": "a", "import": 1, "lambda": None}}],
    ),
    "hyphenated name": (
        "add-question(text='Why?')",
        [{"name": "add-question", "arguments": {"text": "Why?"}}],
    ),
    "dotted name": ("api.v2.search(q='x')", [{"name": "api.v2.search", "arguments": {"q": "x"}}]),
    "several on a line": (
        "f(a=1); g(b=2), h()",
        [
            {"name": "f", "arguments": {"a": 1}},
            {"name": "g", "arguments": {"b": 2}},
            {"name": "h", "arguments": {}},
        ],
    ),
    "OOD-Toolset list of call strings": (
        """["convertCurrency(from='EUR', to='USD', amount=50)", "getRate(base='EUR')"]""",
        [
            {"name": "convertCurrency", "arguments": {"from": "EUR", "to": "USD", "amount": 50}},
            {"name": "getRate", "arguments": {"base": "EUR"}},
        ],
    ),
    "list of bare calls": (
        "[f(a=1), g(b=2)]",
        [{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {"b": 2}}],
    ),
    "escaped double quotes": (
        'say(text="he said \\"hi\\"")',
        [{"name": "say", "arguments": {"text": 'he said "hi"'}}],
    ),
    "escaped single quote": ("note(text='it\\'s')", [{"name": "note", "arguments": {"text": "it's"}}]),
    "mixed quotes": (
        """f(a="it's", b='say "x"')""",
        [{"name": "f", "arguments": {"a": "it's", "b": 'say "x"'}}],
    ),
    "nested values": (
        'f(d={"a": [1, (2, 3)], "b": None, "c": true})',
        [{"name": "f", "arguments": {"d": {"a": [1, [2, 3]], "b": None, "c": True}}}],
    ),
    "trailing commas": (
        "f(a=[1, 2,], b={'x': 1,},)",
        [{"name": "f", "arguments": {"a": [1, 2], "b": {"x": 1}}}],
    ),
    "negative and float numbers": (
        "f(a=-2, b=2.5e1, c=+3)",
        [{"name": "f", "arguments": {"a": -2, "b": 25.0, "c": 3}}],
    ),
}


@pytest.mark.parametrize("text, calls", list(READ.values()), ids=list(READ))
def test_keyword_calls_are_read(text, calls):
    assert keyword_calls(text) == calls


REFUSED = [
    "f(a=x)",
    "f('positional')",
    "f(**m)",
    "f(a={1, 2})",
    "f(a={[]: 1})",
    "f(a=b'x')",
    'f(a=f"{x}")',
    "f(a=1j)",
    "f(a=0x1F)",
    "f(a=1_000)",
    "f(a=1e999)",
    "f(a=float('nan'))",
    "f(a=__import__('os'))",
    "f(a=1 + 2)",
    "f(a=+ +3)",
    "f(a=1, a=2)",
    "f(a='unclosed)",
    "f(a=" + "[" * 30 + "]" * 30 + ")",
    "f(a=1",
    "just prose",
    '["not a call"]',
]


@pytest.mark.parametrize("text", REFUSED)
def test_lines_that_are_no_calls_with_literal_values_are_refused(text):
    assert keyword_calls(text) is None


def test_a_demonstration_in_ood_toolset_form_is_read_and_passes_the_checks():
    schemas = {
        "convertCurrency": {
            "name": "convertCurrency",
            "parameters": {
                "type": "object",
                "properties": {
                    "from": {"type": "string"},
                    "to": {"type": "string"},
                    "amount": {"type": "number"},
                },
                "required": ["from", "to", "amount"],
            },
        },
        "add-question": {
            "name": "add-question",
            "parameters": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
            },
        },
    }
    reply = (
        'Query: Convert 20 GBP to JPY and ask "Isn\'t it late?"\n'
        """Function Calls: ["convertCurrency(from='GBP', to='JPY', amount=20)", "add-question(text=\\"Isn't it late?\\")"]"""
    )
    demo = parse_demonstration(reply)
    assert demo["calls"] == [
        {"name": "convertCurrency", "arguments": {"from": "GBP", "to": "JPY", "amount": 20}},
        {"name": "add-question", "arguments": {"text": "Isn't it late?"}},
    ]
    assert demo["syntax"] == []
    assert check_demonstration(demo, schemas, ["convertCurrency"]) == []


def test_calls_keep_the_order_written_whatever_their_form():
    reply = (
        "Query: q\nFunction calls:\n"
        '{"name": "first", "arguments": {}}\n'
        "second(a={'x': 1})\n"
        '1. {"name": "third", "arguments": {"b": [1]}}\n'
        "- `fourth(from='A')`"
    )
    demo = parse_demonstration(reply)
    assert [c["name"] for c in demo["calls"]] == ["first", "second", "third", "fourth"]
    assert demo["calls"][1]["arguments"] == {"a": {"x": 1}}  # a dict argument is no JSON call
    assert demo["syntax"] == []


def test_unreadable_call_lines_are_kept_as_syntax_problems():
    demo = parse_demonstration('Query: q\nFunction calls:\nf(a=x)\n{"name": broken}\ng(b=1)')
    assert demo["calls"] == [{"name": "g", "arguments": {"b": 1}}]
    assert demo["syntax"] == ["f(a=x)", '{"name": broken}']
    assert check_demonstration(demo, {"g": {"name": "g", "parameters": {}}}, ["g"])[:2] == [
        "syntax: cannot read the call 'f(a=x)'",
        "syntax: cannot read the call '{\"name\": broken}'",
    ]
