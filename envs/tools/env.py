"""`evol/ToolUse-v0`: answer a query with simulated tools, from out-of-demonstration examples."""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from typing import Any

from envs.core import MAX_TASK, RENDER_MODE, TextEnv, turns_param
from envs.errors import TaskOptionError
from envs.params import Param, choice_param, task_param
from envs.tools.apis import API_DESCRIPTIONS, FUNCTIONS_OF_API, TOOL_LIST, TOOLS
from envs.tools.backend import ToolWorld
from envs.tools.calls import (
    FORMAT_HINT,
    Call,
    answer_correct,
    call_match,
    call_string,
    format_answer,
    normalise_call_string,
    parse_action,
)
from envs.tools.data import seeded
from envs.tools.ood_toolset import ToolsetRecord, load_ood_toolset
from envs.tools.schema import ToolError, ToolSpec, render_docs
from envs.tools.tasks import (
    DEMO_MODES,
    SPLITS,
    TASKS_PER_SPLIT,
    Task,
    apis_of,
    demonstrations,
    gold_answer,
    make_task,
    next_gold_call,
)

INSTRUCTION = """\
You answer a user's query with tools (functions). The first message lists the tools, \
shows demonstrations of their use on other queries, and ends with the query.

Reply with one action per turn:
- a tool call as JSON: {{"name": "<tool>", "arguments": {{"<argument>": <value>, ...}}}}
- or the same call in ReAct form, on two lines:
  Action: <tool>
  Action Input: {{"<argument>": <value>, ...}}
- or in call syntax: <tool>(<argument>=<value>, ...)
- or several calls, one a line (or as a list: ["<tool>(<argument>=<value>)", ...]): they run in \
order, each result is shown, and the first call that fails stops the rest
- or, once the results answer the query: Final Answer: <the answer>

Every call is checked against its tool's parameters (names, types, allowed values, units, \
formats); a valid call returns the tool's result as JSON, an invalid one an error that says \
what is wrong. Give the final answer alone: a number as the tools report it (no units, no \
thousands separators), or the exact name, word or code from a tool's result. \
The Final Answer ends the episode. You have {max_turns} turns."""

GENERATED_INTRO = (
    "Solve the query at the end with these tools: call them one at a time, then give the Final Answer."
)


@dataclass
class Episode:
    """What one reset sets up: the tools shown, the demonstrations, the query and its gold."""

    query: str
    tools: dict[str, ToolSpec]
    observation: str
    demonstrations: list[dict[str, Any]]
    gold_calls: list[Call]
    answer: Any = None  # None for loaded records: their calls alone are scored
    task: Task | None = None
    world: ToolWorld | None = None


def render_demonstration(number: int, demo: dict[str, Any]) -> str:
    lines = [f"Example {number}", f"Query: {demo['query']}", "Function calls:"]
    lines += [json.dumps({"name": c["name"], "arguments": c["arguments"]}) for c in demo["calls"]]
    if demo.get("answer") is not None:
        lines.append(f"Final Answer: {format_answer(demo['answer'])}")
    return "\n".join(lines)


def _results_text(results: list[tuple[Call, dict[str, Any]]]) -> str:
    """The results of several calls of one reply, one line each, in order."""
    return "\n".join(
        f"Result {number} ({call.name}): {json.dumps(result)}"
        for number, (call, result) in enumerate(results, 1)
    )


def render_observation(intro: str, docs: str, demos: list[dict[str, Any]], query: str) -> str:
    shown = "\n\n".join(render_demonstration(i + 1, d) for i, d in enumerate(demos))
    return f"{intro}\n\n# Tools\n{docs}\n\n# Demonstrations\n{shown}\n\n# Query\n{query}"


class ToolUseEnv(TextEnv):
    """
    ToolUse: answer a query by calling simulated APIs, with demonstrations of other functions.

    ## Description

    After Self-Demos and its OOD-Toolset (He et al. 2024). Ten simulated APIs with
    eighteen functions, each with a JSON schema and a deterministic backend (no network):
    Weather (`get_weather`, `get_forecast`), Currency (`convert_currency`,
    `get_exchange_rate`), Units (`convert_units`), Calendar (`create_event`,
    `list_events`), Flights (`search_flights`, `book_flight`), Hotels (`search_hotels`,
    `book_hotel`), Database (`query_database`, `aggregate_database`), Calculator
    (`calculate`), Maps (`get_distance`), Shop (`search_products`, `add_to_cart`,
    `view_cart`). Each task is a query (25 kinds) whose gold answer takes 1 to 3 calls,
    some chaining one call's result into the next (search flights, then book the cheapest;
    look up a distance, then divide it with the calculator). The observation shows the
    tools of the APIs involved (the query's and the demonstrations', plus one API that
    neither uses), three demonstrations (query, gold calls and answer of other
    tasks) and the query. In the default `ood` setting no demonstration uses a function the
    query needs; in `id` one demonstration is of the query's own kind.

    With `data=PATH` the env serves OOD-Toolset records from a local file instead (a JSON
    list or JSON Lines of `Name`, `Description`, `Function_Description`, `Demonstration`,
    `Query{Instruction, Answer[{Action, Action_Input}]}`): those APIs have no backend, so a
    valid call returns `{"status": "recorded"}`, and only the calls are scored.

    ## Instruction and action format

    `info["instruction"]` gives this format. One action per turn, any of:

    | Action | Example |
    |---|---|
    | JSON call | `{"name": "get_weather", "arguments": {"city": "Paris", "date": "2025-05-03"}}` |
    | ReAct call | `Action: get_weather` newline `Action Input: {"city": "Paris", "date": "2025-05-03"}` |
    | call syntax | `get_weather(city='Paris', date='2025-05-03')` (OOD-Toolset's prompts) |
    | several calls | one a line, several ReAct pairs, or OOD-Toolset's `["f(a=1)", "g(b='x')"]` |
    | final answer | `Final Answer: 21.4` |

    Call syntax takes any argument name (`from='EUR'`), function names with `-` or `.`,
    quotes inside values (`'it\\'s'`, `"he said \\"hi\\""`, mixed quotes), nested JSON values,
    trailing commas and newlines inside a call; calls may sit in code fences or after
    `Action:` (`envs.tools.call_syntax`). Values are JSON literals: nothing is evaluated.
    Several calls in one reply (at most 8) run in order: the observation has one line per
    result (`Result 1 (name): {...}`), the first invalid call stops the reply (the calls
    before it ran; the observation says which one failed), and `info["calls_run"]` lists
    the calls run. A single call's observation is its result alone.

    A native tool call from an OpenAI-compatible backend arrives as the JSON form;
    `"parameters"` for `"arguments"`, arguments as a JSON string and OpenAI's
    `{"type": "function", "function": {...}}` wrapper are accepted. `info["tools"]` carries
    the OpenAI `tools` list of the functions shown, `info["query"]` the query and
    `info["demonstrations"]` the demonstrations (`{query, calls, answer}`).

    Every call is validated against its schema. An unknown tool; a missing, unexpected or
    mistyped argument; a value outside an enum; a number given with a unit ("200 EUR"), or a
    unit of the wrong kind (km to kg); a malformed date or time; a value out of range; an id
    the backend does not know: each is answered with an observation that names the tool,
    the argument and what is wrong, `info["invalid"]` is true and the turn counts. A valid
    call returns the tool's result as JSON.

    ## Rewards

    1 when the final answer is correct, else 0 (every other turn 0). A numeric answer is
    correct when the first number in it is within 0.1% of the gold value; a text answer
    (a condition, a title, a city, a code) when it equals the gold up to case, spacing,
    quotes and final punctuation. With `data=` records: 1 when the calls made include every
    gold call (OOD-Toolset's exact match), else 0.

    Each step's info carries `calls` (the valid calls made, defaults filled in) and
    OOD-Toolset's metrics over them against the gold calls, after normalising call strings
    (see `envs.tools.calls`): `exact_match` (1 when every gold call was made) and
    `partial_match` (1 all, 0.5 some, 0 none). The last step adds `gold_calls` and
    `gold_answer`, and `info["outcome"]` (kept in the trajectory) both metrics.

    ## Success

    The final answer is correct (with `data=` records: exact match of the calls).

    ## Termination

    Terminated by a `Final Answer` (with `data=` records also once as many valid calls as
    the gold has were made); truncated after `max_turns` (default 12).

    ## Task options

    `reset(seed, options={"task": k, "split": "train" | "test", "demos": "ood" | "id"})`.
    Task `k` (below 100,000 in train, 10,000 in test) fixes the query kind (`k mod 25`), its
    parameters and the world (the calendar's events); `split` picks train or test queries
    (default train); `demos` picks the demonstrations (default: the `demos` kwarg, "ood").
    Demonstrations always come from the train split. The same seed and options replay the
    same episode. With `data=`, `k` indexes the file's records, `split` is accepted and
    ignored (the file is one split) and `demos` is refused (the records carry theirs).
    Constructor kwargs: `data`, `demos`, `max_turns`, `render_mode`.

    ## Registered configurations

    - `evol/ToolUse-v0`: generated tasks, `ood` demonstrations, 12 turns.
    """

    reward_range = (0.0, 1.0)
    max_turns = 12
    success_rule = "the final answer is correct (data= records: every gold call was made)"
    splits = SPLITS
    max_action_length = 4096
    max_observation_length = 65536
    kwarg_params = {
        "data": Param("object", of=(str, os.PathLike), server_only=True, help="a local OOD-Toolset file"),
        "demos": choice_param(DEMO_MODES, default="ood", help="which demonstrations: ood or id"),
        "max_turns": turns_param(12, maximum=200),
        "render_mode": RENDER_MODE,
    }
    option_params = {
        "task": task_param(MAX_TASK, "task index (generated: below 100,000 in train, 10,000 in test)"),
        "split": choice_param(SPLITS, help='"train" (default) or "test"'),
        "demos": choice_param(DEMO_MODES, help="default: the demos kwarg"),
    }

    def __init__(
        self,
        data: str | None = None,
        demos: str = "ood",
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.demos = demos
        self.records: list[ToolsetRecord] | None = load_ood_toolset(data) if data is not None else None
        self._episode: Episode | None = None
        self._gold_clean: list[Call] = []
        self._calls: list[Call] = []
        self._plan_results: list[dict[str, Any]] = []
        self._correct = False

    # ---- episode ----------------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        for key in ("split", "demos"):
            if options.get(key) is None:
                options.pop(key, None)
        if self.records is not None:
            if "demos" in options:
                raise TaskOptionError(
                    "options.demos does not apply with data=: the records carry their demonstrations"
                )
            index = self.select_task(options, len(self.records))
            episode = self._record_episode(self.records[index])
            info: dict[str, Any] = {"task": index, "source": "ood-toolset", "api": self.records[index].name}
        else:
            split = self.select_choice(options, "split", SPLITS, "train")
            mode = self.select_choice(options, "demos", DEMO_MODES, self.demos)
            index = self.select_task(options, TASKS_PER_SPLIT[split])
            episode = self._generated_episode(split, index, mode)
            info = {"task": index, "split": split, "demos": mode, "source": "generated"}
        self._episode = episode
        self._gold_clean = [self._clean(call) for call in episode.gold_calls]
        self._calls, self._plan_results, self._correct = [], [], False
        info.update(
            instruction=INSTRUCTION.format(max_turns=self.max_turns),
            query=episode.query,
            demonstrations=episode.demonstrations,
            tools=[spec.openai_tool() for spec in episode.tools.values()],
        )
        return episode.observation, info

    def _generated_episode(self, split: str, index: int, mode: str) -> Episode:
        task = make_task(split, index)
        demos = [demo.demonstration() for demo in demonstrations(split, index, mode)]
        used = set(task.functions) | {c["name"] for d in demos for c in d["calls"]}
        apis = apis_of(frozenset(used))
        # One more API that nothing here uses, so that the toolset alone does not give the answer away.
        spare = [api for api in API_DESCRIPTIONS if api not in apis]
        apis.add(seeded("distractor", split, index, mode).choice(spare))
        names = [name for api in API_DESCRIPTIONS if api in apis for name in FUNCTIONS_OF_API[api]]
        tools = {spec.name: spec for spec in TOOL_LIST if spec.name in names}
        docs = render_docs(list(tools.values()), API_DESCRIPTIONS)
        observation = render_observation(GENERATED_INTRO, docs, demos, task.query)
        return Episode(
            task.query,
            tools,
            observation,
            demos,
            list(task.gold_calls),
            task.answer,
            task,
            ToolWorld(task.seed),
        )

    def _record_episode(self, record: ToolsetRecord) -> Episode:
        tools = {spec.name: spec for spec in record.tools}
        intro = f"The {record.name} API is used for: {record.description}"
        docs = render_docs(list(tools.values()), {record.name: record.description})
        demos = list(record.demonstrations)
        observation = render_observation(intro, docs, demos, record.query)
        return Episode(record.query, tools, observation, demos, list(record.gold_calls))

    def _clean(self, call: Call) -> Call:
        """The call with its defaults filled in (as it is executed), where it is valid."""
        spec = self._episode.tools.get(call.name)
        if spec is not None:
            clean, problems = spec.validate(call.arguments)
            if not problems:
                return Call(call.name, clean)
        return call

    def _call_key(self, call: Call) -> str:
        return normalise_call_string(call_string(self._clean(call)))

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        observation, reward, terminated, info = self._act(action)
        return observation, reward, terminated, {**self._metrics(), **info}

    def _act(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        episode = self._episode
        parsed = parse_action(action)
        if parsed.error:
            return self.invalid(f"Error: {parsed.error}")
        if parsed.answer is not None:
            if not parsed.answer:
                return self.invalid(
                    "Error: the Final Answer is empty; write the answer after 'Final Answer:'."
                )
            if episode.answer is None:
                self._correct = self._metrics()["exact_match"] == 1.0
            else:
                self._correct = answer_correct(parsed.answer, episode.answer)
            info = {"answer": parsed.answer, "correct": self._correct}
            return f"Final answer recorded: {parsed.answer}", float(self._correct), True, info
        results: list[tuple[Call, dict[str, Any]]] = []
        for number, call in enumerate(parsed.calls, 1):
            result = self._run(call)
            if isinstance(result, str):  # the error that stops the reply here
                return self.invalid(self._stopped(parsed.calls, results, number, result))
            results.append((call, result))
        made = self._calls[-len(results) :]  # as run: defaults filled in
        if len(results) == 1:
            observation = json.dumps(results[0][1])
            info: dict[str, Any] = {"call": made[0].as_dict()}
        else:
            observation = _results_text(results)
            info = {"calls_run": [call.as_dict() for call in made]}
        if episode.world is None and len(self._calls) >= len(episode.gold_calls):
            self._correct = self._metrics()["exact_match"] == 1.0
            info["correct"] = self._correct
            return observation, float(self._correct), True, info
        return observation, 0.0, False, info

    def _run(self, call: Call) -> dict[str, Any] | str:
        """Validate and execute one call: its result, or the error text that explains why not."""
        episode = self._episode
        spec = episode.tools.get(call.name)
        if spec is None:
            return self._unknown_tool(call.name)
        arguments, problems = spec.validate(call.arguments)
        if problems:
            return f"Error: invalid call to {call.name}: " + "; ".join(problems) + "."
        made = Call(call.name, arguments)
        if episode.world is None:
            result: dict[str, Any] = {
                "status": "recorded",
                "note": "this API is not simulated; the call is scored",
            }
        else:
            try:
                result = episode.world.execute(call.name, dict(arguments))
            except ToolError as error:
                return f"Error: {call.name} failed: {error}."
        self._advance_plan(made, result)
        self._calls.append(made)
        return result

    @staticmethod
    def _stopped(
        calls: tuple[Call, ...], results: list[tuple[Call, dict[str, Any]]], number: int, error: str
    ) -> str:
        if len(calls) == 1:
            return error
        done = _results_text(results) + "\n" if results else ""
        skipped = len(calls) - number
        after = f"; the {skipped} call(s) after it were not run" if skipped else ""
        return f"{done}Call {number} of {len(calls)} ({calls[number - 1].name}) stopped the reply{after}:\n{error}"

    def _unknown_tool(self, name: str) -> str:
        names = list(self._episode.tools)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        elsewhere = (
            " It belongs to an API not available in this task." if name in TOOLS and name not in names else ""
        )
        return f"Error: there is no tool named {name!r}{hint}.{elsewhere} Tools: {', '.join(names)}. {FORMAT_HINT}"

    def _advance_plan(self, made: Call, result: dict[str, Any]) -> None:
        """Keep the expert's plan in step: a call equal to its next planned call feeds the chain."""
        task = self._episode.task
        if task is None:
            return
        planned = next_gold_call(task, self._plan_results)
        if planned is not None and self._call_key(planned) == self._call_key(made):
            self._plan_results.append(result)

    def _metrics(self) -> dict[str, Any]:
        exact, partial = call_match(self._calls, self._gold_clean)
        return {"calls": [c.as_dict() for c in self._calls], "exact_match": exact, "partial_match": partial}

    def _success(self) -> bool:
        return self._correct

    def outcome(self) -> dict[str, Any]:
        """The calls' exact and partial match and the demonstration mode, kept in the trajectory
        (`benchmarks/self_demos_comparison.py` tabulates them without replaying the episode)."""
        metrics = self._metrics()
        task = self._episode.task if self._episode is not None else None
        return {
            "exact_match": metrics["exact_match"],
            "partial_match": metrics["partial_match"],
            "gold_functions": sorted(task.functions) if task is not None else None,
        }

    def step(self, action: Any):
        observation, reward, terminated, truncated, info = super().step(action)
        if terminated or truncated:
            episode = self._episode
            info["gold_calls"] = [c.as_dict() for c in episode.gold_calls]
            info["gold_answer"] = episode.answer
        return observation, reward, terminated, truncated, info

    # ---- the expert -------------------------------------------------------------------
    def expert_action(self) -> str:
        """The next gold call (built from the actual results where calls chain), then the answer."""
        episode = self._episode
        if episode is None:
            raise RuntimeError("call reset() before expert_action()")
        if episode.task is None:
            made = {self._call_key(call) for call in self._calls}
            for call in episode.gold_calls:
                if self._call_key(call) not in made:
                    return call.to_json()
            return "Final Answer: the calls above"
        planned = next_gold_call(episode.task, self._plan_results)
        if planned is not None:
            return planned.to_json()
        return "Final Answer: " + format_answer(gold_answer(episode.task, self._plan_results))
