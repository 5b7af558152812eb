"""The baselines Self-Demos is compared with: zero-shot, plain few-shot and Self-ICL-style demos.

Each wraps any agent, as `SelfDemosAgent` does, and changes only what the base agent sees in
the episode's first user message (the env's observation at reset). For the envs that show
demonstrations (`evol/ToolUse-v0`: three, under `# Demonstrations`, before `# Query`;
`evol/MathCritique-v0` with `demos=k`: k worked problems of other topics, before `# Problem`):

- `ZeroShotAgent` (`zero-shot:SPEC`): the `# Demonstrations` section is cut out of every user
  message; the tools (or the problem) and the instruction stay. (The env's system
  instruction still says that the first message shows demonstrations.)
- `FewShotAgent` (`few-shot:SPEC`): the conversation unchanged: the env's demonstrations.
- `SelfICLAgent` (`self-icl:SPEC`): Self-ICL-style pseudo-demonstrations, written without the
  query: (1) pseudo-inputs: `num_demos` new queries (or problems) the tools can solve, asked
  for with the tool specification and the seed demonstrations only (one request, `n`,
  temperature 0.8); (2) pseudo-labels: each distinct pseudo-input answered zero-shot by the
  base agent (function calls, or a step-by-step solution); (3) the first `select` that can be
  read are added before the query, like Self-Demos' block. Nothing is checked against the
  schemas and the query is in no prompt: what Self-Demos adds is query understanding, query-
  aware generation and the checks. With no readable pseudo-demonstration, plain few-shot.
- `SelfDemosAgent` (`self-demos:SPEC`, `agents.self_demos`).

The agents read only `info`, never an env.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

from agents.base import Agent, AgentInput, Message, SamplingParams
from agents.self_demos import (
    MAX_REPLY_LENGTH,
    QUERY_LINE,
    Preparation,
    _seed_demos,
    _task_of,
    ask,
    distinct,
    insert_before_query,
    math_task_of,
    opening_key,
    parse_demonstration,
    parse_math_demonstration,
    render_demonstration,
    render_math_demonstration,
    render_spec,
)

DEMOS_SECTION = re.compile(r"(?ms)^# Demonstrations\n.*?(?=^# |\Z)")


def without_demonstrations(content: str) -> str:
    """`content` with its `# Demonstrations` section (up to the next `# ` heading) cut out."""
    return DEMOS_SECTION.sub("", content)


class _Wrapper(Agent):
    kind = "wrapper"

    def __init__(self, base_agent: Agent):
        self.base = base_agent
        self.name = f"{self.kind}:{getattr(base_agent, 'name', 'agent')}"

    def close(self) -> None:
        self.base.close()


class ZeroShotAgent(_Wrapper):
    """The base agent without the env's demonstrations (see the module docstring)."""

    kind = "zero-shot"

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        return self.base.generate([strip_demonstrations(item) for item in inputs], sampling)


def strip_demonstrations(item: AgentInput) -> AgentInput:
    messages: list[Message] = []
    for message in item.messages:
        message = dict(message)
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            message["content"] = without_demonstrations(message["content"])
        messages.append(message)
    return AgentInput(messages, item.info, item.env)


class FewShotAgent(_Wrapper):
    """The base agent with the env's demonstrations, as given (plain few-shot)."""

    kind = "few-shot"

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        return self.base.generate(inputs, sampling)


class SelfICLAgent(_Wrapper):
    """Self-ICL-style pseudo-demonstrations, not query-aware (see the module docstring).

    Args:
        base_agent: any agent.
        num_demos: pseudo-inputs asked for (one request with `n`).
        temperature: their sampling temperature.
        select: the most pseudo-demonstrations added (3, as many as the seed demonstrations).
        max_new_tokens: the budget of one pseudo-input or pseudo-label.
        cache_size: episodes whose preparation is remembered.
    """

    kind = "self-icl"

    def __init__(
        self,
        base_agent: Agent,
        num_demos: int = 5,
        temperature: float = 0.8,
        select: int = 3,
        max_new_tokens: int = 256,
        cache_size: int = 1024,
    ):
        if num_demos < 1 or select < 1:
            raise ValueError("num_demos and select must be >= 1")
        super().__init__(base_agent)
        self.num_demos, self.temperature, self.select = num_demos, temperature, select
        self.max_new_tokens, self.cache_size = max_new_tokens, cache_size
        self._prepared: OrderedDict[str, Preparation] = OrderedDict()

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        keys = [opening_key(item.messages) for item in inputs]
        todo: dict[str, tuple[str, dict[str, Any]]] = {}
        for key, item in zip(keys, inputs, strict=True):
            if key in self._prepared or key in todo:
                continue
            task = _task_of(item.info)
            if task is not None:
                todo[key] = ("tools", task)
            elif (task := math_task_of(item.info)) is not None:
                todo[key] = ("math", task)
        if todo:
            for key, preparation in zip(todo, self._prepare(list(todo.values())), strict=True):
                self._prepared[key] = preparation
                while len(self._prepared) > self.cache_size:
                    self._prepared.popitem(last=False)
        augmented = []
        for key, item in zip(keys, inputs, strict=True):
            preparation = self._prepared.get(key)
            augmented.append(_with_block(item, preparation) if preparation and preparation.block else item)
        return self.base.generate(augmented, sampling)

    def preparation(self, messages: list[Message]) -> Preparation | None:
        """What was prepared for the episode these messages belong to, if anything."""
        return self._prepared.get(opening_key(messages))

    def _prepare(self, tasks: list[tuple[str, dict[str, Any]]]) -> list[Preparation]:
        preparations = [Preparation(query=task["query"]) for _, task in tasks]
        sampling = SamplingParams(
            temperature=self.temperature, n=self.num_demos, max_new_tokens=self.max_new_tokens
        )
        # Step 1: pseudo-inputs, from the task description and the seed demonstrations only.
        replies = self._ask([pseudo_input_prompt(kind, task) for kind, task in tasks], sampling)
        queries = [distinct_queries(samples) for samples in replies]
        # Step 2: pseudo-labels, each pseudo-input answered zero-shot.
        asked = [(i, q) for i, qs in enumerate(queries) for q in qs]
        prompts = [pseudo_label_prompt(tasks[i][0], tasks[i][1], q) for i, q in asked]
        labels = self._ask(prompts, SamplingParams(max_new_tokens=self.max_new_tokens))
        found: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(tasks))}
        for (i, query), reply in zip(asked, labels, strict=True):
            demo = read_pseudo_label(tasks[i][0], query, reply[0] if reply else "")
            if demo is not None:
                found[i].append(demo)
        # Step 3: the first readable ones go before the query.
        for i, ((kind, task), preparation) in enumerate(zip(tasks, preparations, strict=True)):
            preparation.candidates = distinct(found[i])
            preparation.selected = preparation.candidates[: self.select]
            if not preparation.selected:
                preparation.fallback = f"{len(queries[i])} pseudo-inputs, no readable pseudo-label"
                continue
            first = len(task["demonstrations"]) + 1
            render = render_demonstration if kind == "tools" else render_math_demonstration
            shown = "\n\n".join(render(d, first + n) for n, d in enumerate(preparation.selected))
            preparation.block = f"# More demonstrations (written by the model)\n{shown}"
        return preparations

    def _ask(self, prompts: list[str], sampling: SamplingParams) -> list[list[str]]:
        return ask(self.base, prompts, sampling)


def _with_block(item: AgentInput, preparation: Preparation) -> AgentInput:
    messages = [dict(m) for m in item.messages]
    target = next(
        (m for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)), None
    )
    if target is not None:
        target["content"] = insert_before_query(target["content"], preparation.query, preparation.block)
    return AgentInput(messages, item.info, item.env)


# ---- prompts (no query in any of them) ---------------------------------------------------
def pseudo_input_prompt(kind: str, task: dict[str, Any]) -> str:
    if kind == "tools":
        return (
            "You can use the functions below. In this task you write a new query that they can solve.\n\n"
            f"# Tool specification\n{render_spec(task['schemas'])}\n\n"
            f"# Examples\n{_seed_demos(task) or '(none)'}\n\n"
            'Write one new, different query a user could ask. After "Query: ", write the query.'
        )
    seeds = "\n\n".join(render_math_demonstration(d) for d in task["demonstrations"])
    return (
        "In this task you write a new math word problem.\n\n"
        f"# Examples\n{seeds or '(none)'}\n\n"
        'Write one new, different problem. After "Query: ", write the problem.'
    )


def pseudo_label_prompt(kind: str, task: dict[str, Any], query: str) -> str:
    if kind == "tools":
        return (
            "You can use the functions below. In this task you answer this query with function calls.\n\n"
            f"# Tool specification\n{render_spec(task['schemas'])}\n\n"
            f"# Query\nQuery: {query}\n\n"
            'After "Function calls:", give each call on its own line as JSON: '
            '{"name": "<function>", "arguments": {...}}'
        )
    return (
        "In this task you solve this math word problem.\n\n"
        f"# Problem\nProblem: {query}\n\n"
        "Write one step a line, each with its computation (for example `3 * 12 = 36`), and end with the "
        "line `The answer is N.`"
    )


def distinct_queries(samples: list[str]) -> list[str]:
    """The distinct `Query:` lines of the pseudo-input replies, in order."""
    found: list[str] = []
    for sample in samples:
        query = next(
            (m.group(1).strip() for m in map(QUERY_LINE.match, sample[:MAX_REPLY_LENGTH].splitlines()) if m),
            "",
        )
        if query and query.lower() not in (q.lower() for q in found):
            found.append(query)
    return found


def read_pseudo_label(kind: str, query: str, reply: str) -> dict[str, Any] | None:
    if kind == "tools":
        demo = parse_demonstration(f"Query: {query}\nFunction calls:\n{reply}")
        return demo if demo is not None and demo["calls"] and not demo["syntax"] else None
    return parse_math_demonstration(f"Problem: {query}\nSolution:\n{reply}")
