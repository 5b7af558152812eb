"""Self-Demos (He et al. 2024): the agent writes its own query-aware demonstrations first.

`SelfDemosAgent(base_agent)` wraps any agent. At the first turn of an episode whose info
carries `tools` (an OpenAI tools list) and `query` (with `demonstrations`, the seed
demonstrations `{query, calls[, answer]}`, where the env gives them), it asks the base
agent, in four steps:

1. Query understanding: which function(s) the query needs (greedy, 32 tokens); the
   answer is read as the declared function names it mentions.
2. Demonstration generation: `num_demos` examples of those functions for queries like
   this one (one request with `n=num_demos`, temperature 0.8); each must hold a
   `Query:` line and calls; at least `keep` distinct ones must come back.
3. Checking and selection: every call of every example is checked against the schemas in
   `info["tools"]` (JSON syntax, declared functions and parameters, no nulls, required
   parameters, types, enums, ranges, date/pattern formats) and the example must use a
   function from step 1 (else it does not show how to solve such a query). Of those that
   pass, the base agent picks one or two (`Selection: <x>, <y>`); when more than `select`
   pass and its pick cannot be read, the first `select` are kept, since they passed.
4. Answering: the selected examples are added to the prompt (to the first user message,
   before the query's own heading) and every turn of the episode is answered with them.

When a step fails (no function named, fewer than `keep` distinct examples, none passing
the checks) the episode falls back to plain few-shot: the conversation unchanged.

Math problems (an info with `question` and `demonstrations` of `{question, solution}`, as
`evol/MathCritique-v0` gives with `demos=k`) take the same four steps: (1) what the problem
needs (its kind of story and operations, one line); (2) `num_demos` worked problems like
this one (query-aware); (3) each checked (a problem and a step, a final `The answer is N.`
line, every `a op b = c` computation right, not the problem itself), then selected;
(4) added before the problem's heading. What
happened is kept per episode (`preparation(messages)`, keyed by the system message and
the first observation, so samples of one task share it). The agent reads only `info`: it
knows nothing of any env.
"""

from __future__ import annotations

import ast
import datetime
import hashlib
import io
import json
import math
import re
import tokenize
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from agents.base import Agent, AgentInput, Message, SamplingParams

SYSTEM = "You are a helpful assistant."
JSON_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}
SELECTION = re.compile(r"<\s*(\d+)\s*>")
# Spaces around the `**` of Markdown bold are `(?:\*+\s*)?`: `\s*\**\s*` splits a run of spaces
# in every way (quadratic in its length) before it fails.
QUERY_LINE = re.compile(r"^\s*(?:\*+\s*)?query\s*(?:\*+\s*)?:\s*(.*)$", re.IGNORECASE)
CALLS_LINE = re.compile(r"^\s*(?:\*+\s*)?function\s*calls?\s*(?:\*+\s*)?:\s*(.*)$", re.IGNORECASE)
# Where a call-syntax line starts: a name (with `-` or `.`) and `(`, a list `[`, or a quoted call.
CALL_HEAD = re.compile(r"""(?:[A-Za-z_][\w.-]*\(|\[|["'][A-Za-z_][\w.-]*\()""")
CALL_LINE_START = re.compile(r"^[ \t]*(?:(?:[-*]|\d{1,3}[.)])[ \t]+)?`*")
STRING_TOKEN = re.compile(r"[rRuU]?['\"]")
MAX_CALL_LINE = 4096  # characters of one call-syntax line
MAX_NESTING = 20  # lists and objects inside one another in a value
MAX_NUMBER_LENGTH = 100  # characters of one number
MAX_REPLY_LENGTH = 32_768  # a longer generated example is read from its first characters only


@dataclass
class Preparation:
    """What steps 1-3 produced for one episode, and the prompt block they led to."""

    query: str = ""
    functions: list[str] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    problems: list[list[str]] = field(default_factory=list)  # one list per candidate
    selected: list[dict[str, Any]] = field(default_factory=list)
    fallback: str | None = None  # why plain few-shot is used, or None
    block: str = ""


class SelfDemosAgent(Agent):
    """Self-Demos around `base_agent` (see the module docstring).

    Args:
        base_agent: any agent; it answers the three preparation prompts and every turn.
        num_demos: examples generated in step 2 (5 in the paper).
        temperature: their sampling temperature (0.8 in the paper).
        keep: the fewest distinct examples step 2 must yield (2 in the paper).
        select: the most examples added to the prompt (1-2 in the paper).
        select_with_model: let the base agent choose among the checked examples.
        max_new_tokens: the budget of one generated example.
        cache_size: episodes whose preparation is remembered.
    """

    def __init__(
        self,
        base_agent: Agent,
        num_demos: int = 5,
        temperature: float = 0.8,
        keep: int = 2,
        select: int = 2,
        select_with_model: bool = True,
        max_new_tokens: int = 256,
        cache_size: int = 1024,
    ):
        if num_demos < 1 or keep < 1 or select < 1:
            raise ValueError("num_demos, keep and select must be >= 1")
        self.base = base_agent
        self.num_demos = num_demos
        self.temperature = temperature
        self.keep = keep
        self.select = select
        self.select_with_model = select_with_model
        self.max_new_tokens = max_new_tokens
        self.cache_size = cache_size
        self.name = f"self-demos:{getattr(base_agent, 'name', 'agent')}"
        self._prepared: OrderedDict[str, Preparation] = OrderedDict()

    # ---- the agent interface ----------------------------------------------------------
    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        keys = [opening_key(item.messages) for item in inputs]
        todo: dict[str, AgentInput] = {}
        math: dict[str, AgentInput] = {}
        for key, item in zip(keys, inputs, strict=True):
            if key in self._prepared or key in todo or key in math:
                continue
            if _task_of(item.info) is not None:
                todo[key] = item
            elif math_task_of(item.info) is not None:
                math[key] = item
        if todo:
            for key, preparation in zip(todo, self._prepare(list(todo.values())), strict=True):
                self._remember(key, preparation)
        if math:
            for key, preparation in zip(math, self._prepare_math(list(math.values())), strict=True):
                self._remember(key, preparation)
        augmented = [
            self._augment(item, self._prepared.get(key)) for key, item in zip(keys, inputs, strict=True)
        ]
        return self.base.generate(augmented, sampling)

    def preparation(self, messages: list[Message]) -> Preparation | None:
        """What Self-Demos prepared for the episode these messages belong to, if anything."""
        return self._prepared.get(opening_key(messages))

    def close(self) -> None:
        self.base.close()

    # ---- steps 1-3 ----------------------------------------------------------------------
    def _prepare(self, items: list[AgentInput]) -> list[Preparation]:
        tasks = [_task_of(item.info) for item in items]
        preparations = [Preparation(query=task["query"]) for task in tasks]
        # Step 1: which function(s) the query needs.
        replies = self._ask([understanding_prompt(t) for t in tasks], SamplingParams(max_new_tokens=32))
        for task, preparation, reply in zip(tasks, preparations, replies, strict=True):
            preparation.functions = named_functions(reply[0] if reply else "", list(task["schemas"]))
            if not preparation.functions:
                preparation.fallback = "step 1: the reply names no declared function"
        # Step 2: query-aware demonstrations.
        live = [i for i, p in enumerate(preparations) if p.fallback is None]
        sampling = SamplingParams(
            temperature=self.temperature, n=self.num_demos, max_new_tokens=self.max_new_tokens
        )
        replies = self._ask([generation_prompt(tasks[i], preparations[i].functions) for i in live], sampling)
        for i, samples in zip(live, replies, strict=True):
            candidates = distinct(c for c in (parse_demonstration(s) for s in samples) if c is not None)
            preparations[i].candidates = candidates
            if len(candidates) < self.keep:
                reason = f"step 2: {len(candidates)} distinct demonstrations, fewer than {self.keep}"
                preparations[i].fallback = reason
        # Step 3: check against the schemas, then select.
        choose = []
        for i in [i for i, p in enumerate(preparations) if p.fallback is None]:
            preparation = preparations[i]
            preparation.problems = [
                check_demonstration(c, tasks[i]["schemas"], preparation.functions)
                for c in preparation.candidates
            ]
            passed = [
                c
                for c, problems in zip(preparation.candidates, preparation.problems, strict=True)
                if not problems
            ]
            if not passed:
                preparation.fallback = "step 3: no demonstration passed the checks"
            elif len(passed) <= self.select or not self.select_with_model:
                preparation.selected = passed[: self.select]
            else:
                choose.append((i, passed))
        if choose:
            prompts = [selection_prompt(tasks[i], preparations[i].functions, passed) for i, passed in choose]
            replies = self._ask(prompts, SamplingParams(max_new_tokens=64))
            for (i, passed), reply in zip(choose, replies, strict=True):
                picked = read_selection(reply[0] if reply else "", len(passed), self.select)
                preparations[i].selected = (
                    [passed[n - 1] for n in picked] if picked else passed[: self.select]
                )
        for task, preparation in zip(tasks, preparations, strict=True):
            if preparation.fallback is None:
                first = len(task["demonstrations"]) + 1
                preparation.block = demonstrations_block(preparation.selected, first)
        return preparations

    def _prepare_math(self, items: list[AgentInput]) -> list[Preparation]:
        """Steps 1-3 for math problems (see the module docstring)."""
        tasks = [math_task_of(item.info) for item in items]
        preparations = [Preparation(query=task["query"]) for task in tasks]
        replies = self._ask([math_understanding_prompt(t) for t in tasks], SamplingParams(max_new_tokens=48))
        for preparation, reply in zip(preparations, replies, strict=True):
            need = " ".join((reply[0] if reply else "").split())[:300]
            preparation.functions = [need] if need else []
            if not need:
                preparation.fallback = "step 1: the reply says nothing of what the problem needs"
        live = [i for i, p in enumerate(preparations) if p.fallback is None]
        sampling = SamplingParams(
            temperature=self.temperature, n=self.num_demos, max_new_tokens=self.max_new_tokens
        )
        prompts = [math_generation_prompt(tasks[i], preparations[i].functions[0]) for i in live]
        for i, samples in zip(live, self._ask(prompts, sampling), strict=True):
            found = (parse_math_demonstration(s) for s in samples)
            preparations[i].candidates = distinct(c for c in found if c is not None)
            if len(preparations[i].candidates) < self.keep:
                n = len(preparations[i].candidates)
                preparations[i].fallback = f"step 2: {n} distinct demonstrations, fewer than {self.keep}"
        choose = []
        for i in [i for i, p in enumerate(preparations) if p.fallback is None]:
            preparation = preparations[i]
            preparation.problems = [
                check_math_demonstration(c, tasks[i]["query"]) for c in preparation.candidates
            ]
            passed = [
                c for c, bad in zip(preparation.candidates, preparation.problems, strict=True) if not bad
            ]
            if not passed:
                preparation.fallback = "step 3: no demonstration passed the checks"
            elif len(passed) <= self.select or not self.select_with_model:
                preparation.selected = passed[: self.select]
            else:
                choose.append((i, passed))
        if choose:
            prompts = [math_selection_prompt(tasks[i], passed) for i, passed in choose]
            for (i, passed), reply in zip(
                choose, self._ask(prompts, SamplingParams(max_new_tokens=64)), strict=True
            ):
                picked = read_selection(reply[0] if reply else "", len(passed), self.select)
                preparations[i].selected = (
                    [passed[n - 1] for n in picked] if picked else passed[: self.select]
                )
        for task, preparation in zip(tasks, preparations, strict=True):
            if preparation.fallback is None:
                first = len(task["demonstrations"]) + 1
                shown = "\n\n".join(
                    render_math_demonstration(d, first + n) for n, d in enumerate(preparation.selected)
                )
                preparation.block = f"# More demonstrations (written for this problem)\n{shown}"
        return preparations

    def _ask(self, prompts: list[str], sampling: SamplingParams) -> list[list[str]]:
        return ask(self.base, prompts, sampling)

    def _remember(self, key: str, preparation: Preparation) -> None:
        self._prepared[key] = preparation
        self._prepared.move_to_end(key)
        while len(self._prepared) > self.cache_size:
            self._prepared.popitem(last=False)

    # ---- step 4 ---------------------------------------------------------------------------
    def _augment(self, item: AgentInput, preparation: Preparation | None) -> AgentInput:
        if preparation is None or not preparation.block:
            return item
        messages = [dict(m) for m in item.messages]
        target = next(
            (m for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)), None
        )
        if target is not None:
            target["content"] = insert_before_query(target["content"], preparation.query, preparation.block)
        elif messages and isinstance(messages[0].get("content"), str):
            messages[0]["content"] += "\n\n" + preparation.block
        return AgentInput(messages, item.info, item.env)


# ---- reading the task from info ---------------------------------------------------------
def opening_key(messages: list[Message]) -> str:
    """The key of a conversation's opening (system message, first observation): samples of one task share it."""
    head = [m.get("content") for m in messages[:2]]
    return hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode()).hexdigest()


def _task_of(info: dict[str, Any]) -> dict[str, Any] | None:
    tools, query = info.get("tools"), info.get("query")
    if not isinstance(tools, list) or not tools or not isinstance(query, str):
        return None
    schemas = {}
    for tool in tools:
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            schemas[function["name"]] = function
    if not schemas:
        return None
    demos = info.get("demonstrations") if isinstance(info.get("demonstrations"), list) else []
    return {"schemas": schemas, "query": query, "demonstrations": demos}


def math_task_of(info: dict[str, Any]) -> dict[str, Any] | None:
    """A math problem with worked demonstrations (`question`, `demonstrations` of
    `{question, solution}`), or None."""
    question, demos = info.get("question"), info.get("demonstrations")
    if not isinstance(question, str) or not question.strip() or not isinstance(demos, list):
        return None
    kept = [
        {"query": d["question"], "solution": str(d.get("solution", ""))}
        for d in demos
        if isinstance(d, dict) and isinstance(d.get("question"), str)
    ]
    return {"query": question, "demonstrations": kept}


# ---- prompts ----------------------------------------------------------------------------
def render_spec(schemas: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, function in schemas.items():
        parameters = function.get("parameters") or {}
        required = set(parameters.get("required") or [])
        described = {}
        for key, prop in (parameters.get("properties") or {}).items():
            text = ("Required. " if key in required else "") + str(prop.get("type", "any")) + ". "
            if prop.get("enum"):
                text += "One of: [" + ", ".join(str(v) for v in prop["enum"]) + "]. "
            described[key] = text + str(prop.get("description", ""))
        lines.append(f"{name}: {function.get('description', '')}\nParameters: {json.dumps(described)}")
    return "\n".join(lines)


def render_demonstration(demo: dict[str, Any], number: int | None = None) -> str:
    lines = [f"Example {number}"] if number is not None else []
    lines += [f"Query: {demo.get('query', '')}", "Function calls:"]
    lines += [
        json.dumps({"name": c.get("name"), "arguments": c.get("arguments")}) for c in demo.get("calls", [])
    ]
    return "\n".join(lines)


def _seed_demos(task: dict[str, Any]) -> str:
    return "\n\n".join(render_demonstration(d) for d in task["demonstrations"] if isinstance(d, dict))


def understanding_prompt(task: dict[str, Any]) -> str:
    return (
        "You can use the functions below. In this task you decide which function a user query needs.\n\n"
        f"# Tool specification\n{render_spec(task['schemas'])}\n\n"
        f"# User query\nQuery: {task['query']}\n\n"
        "# Instruction\nFunction to call: give the function's name here (several names if the query needs several)."
    )


def generation_prompt(task: dict[str, Any], functions: list[str]) -> str:
    named = " and ".join(f"`{f}`" for f in functions)
    return (
        "You can use the functions below. In this task you write an example of when and how to use them, "
        "following their specification.\n\n"
        f"# Tool specification\n{render_spec(task['schemas'])}\n\n"
        f"# Examples\n{_seed_demos(task) or '(none)'}\n\n"
        f"# A query to prepare for\nQuery: {task['query']}\n\n"
        f"Write one new example, a query like the one above but with its own values, solved with {named}.\n"
        'After "Query: ", describe the problem.\n'
        'After "Function calls:", give each call on its own line as JSON: {"name": "<function>", "arguments": {...}}'
    )


def selection_prompt(task: dict[str, Any], functions: list[str], demos: list[dict[str, Any]]) -> str:
    shown = "\n\n".join(f"Example <{i + 1}>:\n{render_demonstration(d)}" for i, d in enumerate(demos))
    named = ", ".join(f"`{f}`" for f in functions)
    return (
        "You can use the functions below. Here are examples of how to use them; check them and keep "
        "the best.\n\n"
        f"# Tool specification\n{render_spec(task['schemas'])}\n\n"
        "# Check list\n"
        '- Syntax: every call is a JSON object with "name" and "arguments".\n'
        "- Parameters: only declared parameters, no null values, every required one.\n"
        "- Values: of the declared type, among the allowed values, in the right unit.\n"
        "- Solvable: the calls solve the query.\n\n"
        f"# Examples to check (uses of {named})\n{shown}\n\n"
        "# Instruction\nSelect one or two best examples to keep; of similar examples keep only the best.\n"
        'After "Selection: ", give their numbers as <x>, <y>.\nAfter "Explanation: ", say why.'
    )


def demonstrations_block(demos: list[dict[str, Any]], first: int) -> str:
    shown = "\n\n".join(render_demonstration(d, first + i) for i, d in enumerate(demos))
    return f"# More demonstrations (written for this query)\n{shown}"


def insert_before_query(content: str, query: str | None, block: str) -> str:
    """`content` with `block` placed before the query (and the heading just above it), else at the end."""
    index = content.rfind(query) if query else -1
    if index == -1:
        return f"{content}\n\n{block}"
    point = content.rfind("\n", 0, index) + 1
    previous_end = point - 1
    while previous_end > 0 and content[previous_end - 1] == "\n":
        previous_end -= 1
    previous_start = content.rfind("\n", 0, previous_end) + 1
    heading = content[previous_start:previous_end].strip()
    if heading and (heading.startswith("#") or heading.endswith(":")):
        point = previous_start
    return f"{content[:point]}{block}\n\n{content[point:]}"


# ---- reading the replies ----------------------------------------------------------------
def named_functions(reply: str, names: list[str]) -> list[str]:
    """The declared function names the reply mentions, in the order it mentions them."""
    found = []
    for name in names:
        match = re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", reply)
        if match:
            found.append((match.start(), name))
    return [name for _, name in sorted(found)]


def ask(base: Agent, prompts: list[str], sampling: SamplingParams) -> list[list[str]]:
    """`base`'s replies to `prompts`, each a user turn under the demonstration writer's system message."""
    if not prompts:
        return []
    inputs = [
        AgentInput([{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}]) for p in prompts
    ]
    return base.generate(inputs, sampling)


def first_match(lines: list[str], pattern: re.Pattern) -> tuple[str | None, int]:
    """The first line's match of `pattern` (group 1, stripped) and the index after it; (None, 0)."""
    for i, line in enumerate(lines):
        match = pattern.match(line)
        if match:
            return match.group(1).strip(), i + 1
    return None, 0


def parse_demonstration(text: str) -> dict[str, Any] | None:
    """`{"query", "calls", "syntax"}` from a generated example, or None without a query or calls.

    Calls are JSON objects (one a line, or in a list) or call-syntax lines (`keyword_calls`:
    several a line, or OOD-Toolset's `["f(a=1)", ...]`), kept in the order written; `syntax`
    lists the call lines that could not be read.
    """
    lines = text[:MAX_REPLY_LENGTH].splitlines()
    query, start = first_match(lines, QUERY_LINE)
    if not query:
        return None
    found: list[tuple[int, dict[str, Any]]] = []  # (where the call starts in the body, call)
    syntax: list[str] = []
    body_lines, offset = [], 0
    for line in lines[start:]:
        labelled = CALLS_LINE.match(line)
        line = labelled.group(1) if labelled else line
        written = CALL_LINE_START.sub("", line, count=1).strip().strip("`").strip()
        if not written.startswith("{") and CALL_HEAD.match(written):  # call syntax, read here
            calls = keyword_calls(written)
            if calls is None:
                syntax.append(written)
            else:
                found += [(offset, call) for call in calls]
            line = ""  # its braces are argument values, not JSON calls
        body_lines.append(line)
        offset += len(line) + 1
    body = "\n".join(body_lines)
    position = body.find("{")
    while position != -1:
        try:
            value, end = _DECODER.raw_decode(body, position)
        except (ValueError, RecursionError):  # not JSON, or nested past the recursion limit
            line_end = body.find("\n", position)
            syntax.append(body[position : line_end if line_end != -1 else len(body)].strip())
            position = body.find("{", line_end) if line_end != -1 else -1
            continue
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            arguments = value.get("arguments", value.get("parameters", {}))
            if isinstance(arguments, str):
                try:
                    arguments = _DECODER.decode(arguments)
                except (ValueError, RecursionError):
                    syntax.append(json.dumps(value))
            found.append((position, {"name": value["name"], "arguments": arguments}))
        position = body.find("{", end)
    calls = [call for _, call in sorted(found, key=lambda item: item[0])]
    if not calls and not syntax:
        return None
    return {"query": query, "calls": calls, "syntax": syntax}


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of a number's range")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


class _Unreadable(ValueError):
    """A line that is not calls with JSON-literal values."""


def keyword_calls(text: str) -> list[dict[str, Any]] | None:
    """The calls a line writes in call syntax, as `{"name", "arguments"}`, or None.

    Read: `name(key=value, ...)`, several separated by `,` or `;`, a list of calls or of call
    strings (OOD-Toolset's `["convertCurrency(from='EUR', amount=50)", ...]`); argument names
    may be Python keywords (`from=`), function names may hold `-` or `.`, trailing commas
    are fine. The line goes through Python's tokenizer (`tokenize`, never a parser of Python):
    each value's tokens become JSON text for a strict JSON decoder, so only JSON literals
    pass (strings, finite numbers, true/false/null or True/False/None, lists and tuples,
    objects with string keys, at most `MAX_NESTING` deep); anything else is None.
    """
    return _keyword_calls(text, quoted=0)


def _keyword_calls(text: str, quoted: int) -> list[dict[str, Any]] | None:
    if len(text) > MAX_CALL_LINE:
        return None
    try:
        tokens = _tokens(text)
        calls, end = _call_items(tokens, 0, quoted)
        if end != len(tokens) or not calls:
            return None
    except _Unreadable:
        return None
    return calls


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    skipped = (
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.COMMENT,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
    )
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type not in skipped]
    except (tokenize.TokenError, SyntaxError, ValueError):  # an unclosed bracket or string
        raise _Unreadable(text) from None
    if any(t.type == tokenize.ERRORTOKEN for t in tokens):
        raise _Unreadable(text)
    return tokens


def _call_items(tokens: list[tokenize.TokenInfo], i: int, quoted: int) -> tuple[list[dict[str, Any]], int]:
    """Calls separated by `,` or `;` from token `i` (a list `[...]` of them counts as one)."""
    calls: list[dict[str, Any]] = []
    while i < len(tokens):
        token = tokens[i]
        if token.string == "[":
            inner, i = _call_items(tokens, i + 1, quoted)
            if i >= len(tokens) or tokens[i].string != "]":
                raise _Unreadable("an unclosed list of calls")
            calls += inner
            i += 1
        elif token.type == tokenize.STRING and quoted == 0:  # a call string (not inside another)
            inner = _keyword_calls(_string_token(token.string), quoted + 1)
            if inner is None:
                raise _Unreadable("a string that holds no call")
            calls += inner
            i += 1
        elif token.type == tokenize.NAME:
            call, i = _call(tokens, i)
            calls.append(call)
        else:
            break
        if i < len(tokens) and tokens[i].string in (",", ";"):
            i += 1
        else:
            break
    return calls, i


def _call(tokens: list[tokenize.TokenInfo], i: int) -> tuple[dict[str, Any], int]:
    name = tokens[i].string
    i += 1
    while i + 1 < len(tokens) and tokens[i].string in ("-", ".") and tokens[i + 1].type == tokenize.NAME:
        name += tokens[i].string + tokens[i + 1].string
        i += 2
    if i >= len(tokens) or tokens[i].string != "(":
        raise _Unreadable("a name that is not called")
    i += 1
    arguments: dict[str, Any] = {}
    while i < len(tokens) and tokens[i].string != ")":
        key = tokens[i]
        if (
            key.type != tokenize.NAME
            or i + 1 >= len(tokens)
            or tokens[i + 1].string != "="
            or key.string in arguments
        ):
            raise _Unreadable("an argument not written as key=value")
        pieces, i = _json_value(tokens, i + 2)
        try:
            arguments[key.string] = _DECODER.decode("".join(pieces))
        except (ValueError, RecursionError):
            raise _Unreadable("a value that is not a JSON literal") from None
        if i < len(tokens) and tokens[i].string == ",":
            i += 1
    if i >= len(tokens):
        raise _Unreadable("an unclosed call")
    return {"name": name, "arguments": arguments}, i + 1


_JSON_OPS = {
    "[": "[",
    "(": "[",
    "{": "{",
    "]": "]",
    ")": "]",
    "}": "}",
    ",": ",",
    ":": ":",
    "-": "-",
    "+": "",
}
_JSON_NAMES = {
    "True": "true",
    "true": "true",
    "False": "false",
    "false": "false",
    "None": "null",
    "null": "null",
}
_PLAIN_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def _json_value(tokens: list[tokenize.TokenInfo], i: int) -> tuple[list[str], int]:
    """The JSON text of the value whose tokens start at `i`, up to its `,` or the call's `)`."""
    pieces: list[str] = []
    depth = 0
    while i < len(tokens):
        token = tokens[i]
        text = token.string
        if depth == 0 and text in (",", ")"):
            break
        if token.type == tokenize.STRING:
            pieces.append(json.dumps(_string_token(text)))
        elif token.type == tokenize.NUMBER:
            if not _PLAIN_NUMBER.fullmatch(text) or len(text) > MAX_NUMBER_LENGTH:
                raise _Unreadable("not a plain decimal number")
            pieces.append(json.dumps(float(text) if any(c in text for c in ".eE") else int(text)))
        elif token.type == tokenize.NAME and text in _JSON_NAMES:
            pieces.append(_JSON_NAMES[text])
        elif token.type == tokenize.OP and text in _JSON_OPS:
            if text in "+-" and pieces and pieces[-1] not in ("[", "{", ",", ":"):
                raise _Unreadable("an operator between values")  # `1 + 2` is no literal
            depth += text in "[({"
            depth -= text in "])}"
            if depth < 0 or depth > MAX_NESTING:
                raise _Unreadable("brackets that do not match or nest too deeply")
            if text in "])}" and pieces and pieces[-1] == ",":
                pieces.pop()  # a trailing comma
            pieces.append(_JSON_OPS[text])
        else:
            raise _Unreadable("a value that is not a JSON literal")
        i += 1
    return pieces, i


def _string_token(text: str) -> str:
    """The text of one string token: plain or raw (no bytes or f-strings), read as a literal."""
    if not STRING_TOKEN.match(text):
        raise _Unreadable("a bytes or formatted string")
    value = ast.literal_eval(text)  # one string literal token, nothing else
    if not isinstance(value, str):
        raise _Unreadable("not a string")
    return value


def distinct(candidates) -> list[dict[str, Any]]:
    seen, kept = set(), []
    for candidate in candidates:
        key = (" ".join(candidate["query"].lower().split()), json.dumps(candidate["calls"], sort_keys=True))
        if key not in seen:
            seen.add(key)
            kept.append(candidate)
    return kept


def check_value(name: str, value: Any, prop: dict[str, Any]) -> str | None:
    """Why `value` does not suit the JSON-schema property `prop`, or None."""
    kind = prop.get("type")
    if value is None:
        return f"argument {name!r} is null"
    if kind in JSON_TYPES:
        ok = isinstance(value, JSON_TYPES[kind]) and not (isinstance(value, bool) and kind != "boolean")
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            return f"argument {name!r} must be {kind}, got {type(value).__name__} {value!r}"
    if "enum" in prop and value not in prop["enum"]:
        return f"argument {name!r} must be one of {prop['enum']}, got {value!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in prop and value < prop["minimum"] or "maximum" in prop and value > prop["maximum"]:
            return (
                f"argument {name!r} is out of range [{prop.get('minimum')}, {prop.get('maximum')}]: {value!r}"
            )
    if isinstance(value, str):
        if prop.get("format") == "date":
            try:
                datetime.date.fromisoformat(value)
            except ValueError:
                return f"argument {name!r} must be a date as YYYY-MM-DD, got {value!r}"
        if "pattern" in prop and not re.search(prop["pattern"], value):
            return f"argument {name!r} does not match {prop['pattern']}: {value!r}"
    return None


def check_demonstration(
    demo: dict[str, Any], schemas: dict[str, dict[str, Any]], functions: list[str]
) -> list[str]:
    """Every problem of a generated demonstration against the schemas (empty when it passes)."""
    problems = [f"syntax: cannot read the call {text!r}" for text in demo.get("syntax", [])]
    for call in demo["calls"]:
        name, arguments = call.get("name"), call.get("arguments")
        function = schemas.get(name)
        if function is None:
            problems.append(f"undeclared function {name!r}")
            continue
        if not isinstance(arguments, dict):
            problems.append(f"the arguments of {name} are not an object")
            continue
        parameters = function.get("parameters") or {}
        properties = parameters.get("properties") or {}
        for key, value in arguments.items():
            if key not in properties:
                problems.append(f"{name}: undeclared parameter {key!r}")
            else:
                problem = check_value(key, value, properties[key])
                if problem:
                    problems.append(f"{name}: {problem}")
        for key in parameters.get("required") or []:
            if key not in arguments:
                problems.append(f"{name}: missing required parameter {key!r}")
    if not any(call.get("name") in functions for call in demo["calls"]):
        problems.append(f"unsolvable: no call to {', '.join(functions)}")
    return problems


def read_selection(reply: str, count: int, most: int) -> list[int]:
    """The example numbers after `Selection:` (1-based, distinct), or [] when unreadable."""
    text = reply.split("Selection:", 1)[1] if "Selection:" in reply else reply
    text = re.split(r"Explanation\s*:", text, maxsplit=1)[0]
    picked = list(dict.fromkeys(int(n) for n in SELECTION.findall(text) if len(n) <= 6))
    if not picked or len(picked) > most or any(not 1 <= n <= count for n in picked):
        return []
    return picked


# ---- math problems ------------------------------------------------------------------------
MATH_PROBLEM_LINE = re.compile(r"^\s*(?:\*+\s*)?problem\s*(?:\*+\s*)?:\s*(.*)$", re.IGNORECASE)
MATH_SOLUTION_LINE = re.compile(r"^\s*(?:\*+\s*)?solution\s*(?:\*+\s*)?:\s*(.*)$", re.IGNORECASE)
MATH_ANSWER_LINE = re.compile(r"the answer is\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)
# One computation `a op b = c` (numbers with optional $ and commas); longer ones are not checked.
COMPUTATION = re.compile(
    r"(?<![\w.])\$?(-?\d[\d,]*(?:\.\d+)?)\s*([-+*/x×])\s*\$?(-?\d[\d,]*(?:\.\d+)?)\s*=\s*\$?(-?\d[\d,]*(?:\.\d+)?)(?![\d.]*\s*[-+*/x×]\s*\d)"
)


def render_math_demonstration(demo: dict[str, Any], number: int | None = None) -> str:
    lines = [f"Example {number}"] if number is not None else []
    return "\n".join([*lines, f"Problem: {demo.get('query', '')}", "Solution:", demo.get("solution", "")])


def _math_seed_demos(task: dict[str, Any]) -> str:
    return "\n\n".join(render_math_demonstration(d) for d in task["demonstrations"])


def math_understanding_prompt(task: dict[str, Any]) -> str:
    return (
        "In this task you decide what a math problem needs before anyone solves it.\n\n"
        f"# Problem\nProblem: {task['query']}\n\n"
        "# Instruction\nIn one line, say what kind of problem it is: what the story is about and "
        "which quantities and operations solving it takes."
    )


def math_generation_prompt(task: dict[str, Any], need: str) -> str:
    return (
        "In this task you write a worked example of a math word problem and its solution.\n\n"
        f"# Examples\n{_math_seed_demos(task) or '(none)'}\n\n"
        f"# A problem to prepare for\nProblem: {task['query']}\nWhat it needs: {need}\n\n"
        "Write one new example: a problem like the one above (the same kind of story and steps) with its "
        'own numbers, and its solution.\nAfter "Problem: ", state the problem.\nAfter "Solution:", write '
        "one step a line, each with its computation (for example `3 * 12 = 36`), and end with the line "
        "`The answer is N.`"
    )


def math_selection_prompt(task: dict[str, Any], demos: list[dict[str, Any]]) -> str:
    shown = "\n\n".join(f"Example <{i + 1}>:\n{render_math_demonstration(d)}" for i, d in enumerate(demos))
    return (
        "Here are worked examples written for the problem below; check them and keep the best.\n\n"
        f"# Problem\nProblem: {task['query']}\n\n# Examples to check\n{shown}\n\n"
        "# Instruction\nSelect one or two best examples (right computations, most like the problem).\n"
        'After "Selection: ", give their numbers as <x>, <y>.\nAfter "Explanation: ", say why.'
    )


def parse_math_demonstration(text: str) -> dict[str, Any] | None:
    """`{"query", "solution", "calls"}` from a generated worked problem, or None without a problem,
    steps or a final answer line (`calls` stays empty: `distinct` keys on it)."""
    lines = text[:MAX_REPLY_LENGTH].splitlines()
    query, start = first_match(lines, MATH_PROBLEM_LINE)
    if not query:
        return None
    steps: list[str] = []
    for line in lines[start:]:
        labelled = MATH_SOLUTION_LINE.match(line)
        line = (labelled.group(1) if labelled else line).strip()
        if not line:
            continue
        steps.append(line)
        if MATH_ANSWER_LINE.search(line):
            break
    if not steps or not MATH_ANSWER_LINE.search(steps[-1]):
        return None
    return {"query": query, "solution": "\n".join(steps), "calls": [], "steps": len(steps) - 1}


def _number(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def check_math_demonstration(demo: dict[str, Any], query: str) -> list[str]:
    """Every problem of a generated worked problem (empty when it passes)."""
    problems = []
    if " ".join(demo["query"].lower().split()) == " ".join(query.lower().split()):
        problems.append("the example is the problem itself")
    if demo.get("steps", 0) < 1:
        problems.append("no step before the final answer")
    for match in COMPUTATION.finditer(demo["solution"]):
        before = demo["solution"][: match.start()].rstrip().rstrip("$").rstrip()
        if before and before[-1] in "+-*/x×(":  # part of a longer computation: not checked
            continue
        a, op, b, c = match.groups()
        try:
            x, y, z = _number(a), _number(b), _number(c)
        except (ValueError, ZeroDivisionError):
            problems.append(f"unreadable computation {match.group(0)!r}")
            continue
        if op == "/" and y == 0:
            problems.append(f"division by zero in {match.group(0)!r}")
            continue
        value = {"+": x + y, "-": x - y, "*": x * y, "x": x * y, "×": x * y}.get(op)
        value = x / y if op == "/" else value
        if value != z:
            problems.append(f"wrong computation {match.group(0)!r} (it is {float(value):g})")
    return problems
