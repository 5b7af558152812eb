"""evol/ToolUse-v0: simulated APIs, validated calls, OOD demonstrations, metrics, loader, Self-Demos."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import envs
from agents.base import Agent, AgentInput, SamplingParams, parse_action
from agents.openai_compat import tool_call_text
from agents.self_demos import SelfDemosAgent, check_demonstration, insert_before_query, parse_demonstration
from envs.errors import TaskOptionError
from envs.tools.apis import TOOL_LIST, TOOLS, openai_tools
from envs.tools.backend import ToolWorld
from envs.tools.calls import Call, answer_correct, call_match, call_string, normalise_call_string
from envs.tools.env import ToolUseEnv
from envs.tools.tasks import demonstrations, make_task
from envs.tools.templates import TEMPLATE_LIST

VALID_CALLS = {
    "get_weather": {"city": "Paris", "date": "2025-05-03", "unit": "fahrenheit"},
    "get_forecast": {"city": "Tokyo", "start_date": "2025-12-30", "days": 3},
    "convert_currency": {"amount": 250, "from_currency": "USD", "to_currency": "EUR"},
    "get_exchange_rate": {"base": "GBP", "target": "JPY"},
    "convert_units": {"value": 10, "from_unit": "km", "to_unit": "mi"},
    "create_event": {"title": "Haircut", "date": "2025-03-04", "start_time": "10:30", "duration_minutes": 45},
    "list_events": {"date": "2025-03-04"},
    "search_flights": {"origin": "Paris", "destination": "Rome", "date": "2025-06-01"},
    "book_flight": None,  # needs a flight_id from search_flights: filled in by the test
    "search_hotels": {"city": "Rome", "check_in": "2025-06-01", "nights": 2, "min_stars": 3},
    "book_hotel": {"hotel_id": "H-ROM-1", "check_in": "2025-06-01", "nights": 2, "guest_name": "Ada Weber"},
    "query_database": {"table": "employees", "where_column": "department", "equals": "sales"},
    "aggregate_database": {"table": "products", "operation": "max", "column": "price_usd"},
    "calculate": {"expression": "(12.5 + 3) * 4"},
    "get_distance": {"origin": "Paris", "destination": "London"},
    "search_products": {"category": "Books", "max_price_usd": 100},
    "add_to_cart": {"product_id": "P-001", "quantity": 2},
    "view_cart": {},
}


@pytest.fixture
def env() -> ToolUseEnv:
    env = envs.make("evol/ToolUse-v0", max_turns=50)
    # Task 11 of test: book the cheapest flight; its tools include Weather, Currency, Units, Flights.
    env.reset(seed=0, options={"task": 11, "split": "test"})
    return env


# ---- the APIs -----------------------------------------------------------------------------
def test_every_tool_validates_and_executes():
    assert set(VALID_CALLS) == set(TOOLS)
    world = ToolWorld("test")
    flight = world.execute("search_flights", VALID_CALLS["search_flights"])["flights"][0]
    VALID_CALLS["book_flight"] = {"flight_id": flight["flight_id"], "passenger_name": "Ada Weber"}
    for spec in TOOL_LIST:
        arguments, problems = spec.validate(VALID_CALLS[spec.name])
        assert problems == [], (spec.name, problems)
        result = world.execute(spec.name, arguments)
        assert isinstance(result, dict) and json.loads(json.dumps(result)) == result, spec.name
    assert (
        world.execute("convert_units", {"value": 10, "from_unit": "km", "to_unit": "mi"})["result"] == 6.2137
    )
    assert world.execute("calculate", {"expression": "(12.5 + 3) * 4"})["result"] == 62.0
    assert world.execute("view_cart", {})["total_usd"] > 0  # add_to_cart above filled it


def test_backends_are_deterministic_across_worlds():
    a, b = ToolWorld("x"), ToolWorld("x")
    for name in ("get_weather", "search_flights", "search_hotels", "list_events"):
        assert a.execute(name, dict(VALID_CALLS[name])) == b.execute(name, dict(VALID_CALLS[name]))


def test_openai_tools_list_has_function_schemas():
    tools = openai_tools()
    assert [t["function"]["name"] for t in tools] == list(TOOLS)
    weather = tools[0]["function"]["parameters"]
    assert weather["required"] == ["city", "date"] and weather["additionalProperties"] is False
    assert weather["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert weather["properties"]["date"]["format"] == "date"
    duration = openai_tools(["create_event"])[0]["function"]["parameters"]["properties"]["duration_minutes"]
    assert duration["type"] == "integer" and "in minutes" in duration["description"]


# ---- validation errors ---------------------------------------------------------------------
BAD_CALLS = [
    (
        {"name": "get_wether", "arguments": {"city": "Paris"}},
        "Error: there is no tool named 'get_wether' (did you mean 'get_weather'?).",
    ),
    (
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        "Error: invalid call to get_weather: missing required argument 'date' (string: the day, a date as YYYY-MM-DD).",
    ),
    (
        {"name": "get_weather", "arguments": {"city": "Paris", "date": "2025-05-03", "country": "FR"}},
        "Error: invalid call to get_weather: unexpected argument 'country' (get_weather takes city, date, unit).",
    ),
    (
        {"name": "get_forecast", "arguments": {"city": "Paris", "start_date": "2025-05-03", "days": "3"}},
        "Error: invalid call to get_forecast: argument 'days' must be an integer, got string \"3\".",
    ),
    (
        {"name": "get_weather", "arguments": {"city": "Pariss", "date": "2025-05-03"}},
        'argument \'city\' must be one of "Paris", "London", "New York"',
    ),
    (
        {"name": "get_weather", "arguments": {"city": "Paris", "date": "2025-05-03", "unit": "kelvin"}},
        'argument \'unit\' must be a temperature unit this tool accepts: "celsius", "fahrenheit"; got "kelvin".',
    ),
    (
        {"name": "convert_units", "arguments": {"value": 3, "from_unit": "km", "to_unit": "kg"}},
        "cannot convert km (length) to kg (mass): to_unit must be a length unit (m, km, cm, mi, ft, in).",
    ),
    (
        {
            "name": "convert_currency",
            "arguments": {"amount": "100 USD", "from_currency": "USD", "to_currency": "EUR"},
        },
        "argument 'amount' must be a plain number, got \"100 USD\": pass 100 without a unit.",
    ),
    (
        {"name": "get_weather", "arguments": {"city": "Paris", "date": "05/03/2025"}},
        "argument 'date' must be a date as YYYY-MM-DD, got \"05/03/2025\".",
    ),
    (
        {"name": "get_forecast", "arguments": {"city": "Paris", "start_date": "2025-05-03", "days": 10}},
        "argument 'days' must be between 1 and 7, got 10.",
    ),
    (
        {"name": "book_flight", "arguments": {"flight_id": "ZZ999", "passenger_name": "Ada Weber"}},
        "Error: book_flight failed: no flight 'ZZ999' was returned by search_flights in this session",
    ),
    (
        {
            "name": "search_flights",
            "arguments": {"origin": "Rome", "destination": "Rome", "date": "2025-05-03"},
        },
        "origin and destination must be different cities (both are 'Rome').",
    ),
    ({"name": "get_weather", "arguments": ["Paris"]}, "the arguments must be a JSON object, got array."),
    (
        {"name": "get_weather", "arguments": {"city": "Paris", "dat": "2025-05-03"}},
        "unexpected argument 'dat' (get_weather takes city, date, unit); did you mean 'date'?",
    ),
]


@pytest.mark.parametrize(
    "call, message", BAD_CALLS, ids=[c["name"] + str(i) for i, (c, _) in enumerate(BAD_CALLS)]
)
def test_each_bad_call_gets_its_precise_error(env, call, message):
    observation, reward, terminated, truncated, info = env.step(json.dumps(call))
    assert message in observation
    assert info["invalid"] is True and info["turn"] == 1 and reward == 0.0 and not terminated
    assert info["calls"] == [] and info["partial_match"] == 0.0


def test_a_number_with_another_unit_is_named_as_a_wrong_unit():
    _, problems = TOOLS["search_products"].validate({"category": "Books", "max_price_usd": "20 EUR"})
    assert problems == [
        "argument 'max_price_usd' is a number in USD, got \"20 EUR\", a value in EUR: "
        "convert it to USD and pass the number alone"
    ]
    _, problems = TOOLS["create_event"].validate(
        {"title": "x", "date": "2025-01-01", "start_time": "9:30", "duration_minutes": "1.5 hours"}
    )
    assert "argument 'start_time' must be a time as HH:MM (24-hour), got \"9:30\"" in problems
    assert any('is a number in minutes, got "1.5 hours", a value in hours' in p for p in problems)


@pytest.mark.parametrize(
    "action, message",
    [
        ("", "Error: the action is empty."),
        ("hello world", "Error: cannot read a tool call or a final answer in 'hello world'."),
        ('{"name": "get_weather", "arguments": {"city": "Paris",', "Error: the tool call is not valid JSON"),
        (
            "Action: get_weather\nAction Input: {city: Paris}",
            "the Action Input of get_weather is not valid JSON",
        ),
        ('{"arguments": {}}', 'a JSON tool call needs a "name"'),
        ("Final Answer:", "Error: the Final Answer is empty"),
        (
            "Action: list_events\nAction Input: {}\nFinal Answer: 3",
            "either tool calls or a Final Answer, not both",
        ),
        ("get_weather('Paris')", "pass the arguments of get_weather by name"),
        ("calculate", "It belongs to an API not available in this task."),
    ],
)
def test_unreadable_actions_are_explained(env, action, message):
    observation, _, terminated, _, info = env.step(action)
    assert message in observation and info["invalid"] is True and not terminated


def test_invalid_calls_change_nothing_and_the_expert_still_succeeds(env):
    env.step('{"name": "book_flight", "arguments": {"flight_id": "ZZ999", "passenger_name": "X"}}')
    env.step("not a call")
    while True:
        _, reward, terminated, truncated, info = env.step(env.expert_action())
        if terminated or truncated:
            break
    assert info["success"] and reward == 1.0 and info["turn"] == 5
    assert info["exact_match"] == 1.0 and len(info["calls"]) == 2


# ---- call formats ---------------------------------------------------------------------------
WEATHER = {"city": "Paris", "date": "2025-05-03"}


@pytest.mark.parametrize(
    "action",
    [
        json.dumps({"name": "get_weather", "arguments": WEATHER}),
        json.dumps({"name": "get_weather", "parameters": WEATHER}),
        "```json\n" + json.dumps({"name": "get_weather", "arguments": WEATHER}) + "\n```",
        "Thought: I need the weather.\nAction: get_weather\nAction Input: "
        + json.dumps(WEATHER)
        + "\nObservation:",
        parse_action("Thought: weather first.\nAction: get_weather\nAction Input: " + json.dumps(WEATHER)),
        "get_weather(city='Paris', date='2025-05-03')",
        tool_call_text({"id": "c1", "function": {"name": "get_weather", "arguments": json.dumps(WEATHER)}}),
        json.dumps(
            {"type": "function", "function": {"name": "get_weather", "arguments": json.dumps(WEATHER)}}
        ),
    ],
    ids=["json", "parameters", "fenced", "react", "react-parsed", "call-syntax", "native", "openai-wrapper"],
)
def test_call_formats_are_accepted(env, action):
    observation, _, _, _, info = env.step(action)
    assert info["invalid"] is False, observation
    result = json.loads(observation)
    assert result["city"] == "Paris" and result["unit"] == "celsius"
    assert info["calls"] == [{"name": "get_weather", "arguments": {**WEATHER, "unit": "celsius"}}]


def test_native_tool_call_with_broken_arguments_is_explained(env):
    action = tool_call_text({"function": {"name": "get_weather", "arguments": '{"city": "Paris"'}})
    observation, _, _, _, info = env.step(action)
    assert info["invalid"] and 'the "arguments" string of get_weather is not valid JSON' in observation


def test_reset_carries_tools_demonstrations_and_query():
    env = envs.make("evol/ToolUse-v0")
    observation, info = env.reset(options={"task": 3, "split": "test"})
    names = [t["function"]["name"] for t in info["tools"]]
    assert all(t["type"] == "function" for t in info["tools"]) and "convert_currency" in names
    assert all(f"\n{name}: " in observation for name in names)
    assert observation.endswith("# Query\n" + info["query"])
    assert len(info["demonstrations"]) == 3 and observation.count("\nFunction calls:\n") == 3
    assert json.loads(json.dumps(info)) == info


def test_unknown_options_are_refused():
    env = envs.make("evol/ToolUse-v0")
    with pytest.raises(TaskOptionError):
        env.reset(options={"demos": "mixed"})
    with pytest.raises(TaskOptionError):
        env.reset(options={"task": 10_000, "split": "test"})


# ---- tasks, demonstrations, expert ---------------------------------------------------------------
@pytest.mark.parametrize("split", ["train", "test"])
def test_expert_succeeds_on_every_task_of_a_sample(split):
    env = envs.make("evol/ToolUse-v0")
    for k in range(50):
        mode = "ood" if k % 2 else "id"
        episode = envs.run_expert(env, seed=k, options={"task": k, "split": split, "demos": mode})
        assert episode.success and episode.reward == 1.0, (split, k, episode.actions)
        gold = make_task(split, k).gold_calls
        assert len(episode.actions) == len(gold) + 1


def test_ood_demonstrations_never_use_a_function_the_query_needs():
    for split in ("train", "test"):
        for k in range(250):
            needed = make_task(split, k).functions
            for demo in demonstrations(split, k, "ood"):
                assert not needed & demo.functions, (split, k, demo.template)
                assert demo.split == "train" and demo.query != make_task(split, k).query


def test_id_demonstrations_show_the_query_functions_and_ood_ones_show_sibling_functions():
    for k in range(50):
        task = make_task("test", k)
        assert task.functions <= set().union(*(d.functions for d in demonstrations("test", k, "id")))
    # get_weather's query gets a get_forecast demonstration: same API, another function.
    assert any(d.template == "forecast_high" for d in demonstrations("test", 0, "ood"))


def test_chained_calls_use_the_earlier_result():
    task = make_task("test", 11)
    assert task.template == "book_cheapest_flight"
    flights = ToolWorld(task.seed).execute("search_flights", task.gold_calls[0].arguments)["flights"]
    cheapest = min(flights, key=lambda f: f["price_usd"])
    assert task.gold_calls[1].arguments["flight_id"] == cheapest["flight_id"]
    travel = make_task("test", 19)
    assert travel.template == "travel_time"
    assert travel.gold_calls[1].arguments["expression"].endswith(f" / {travel.params['speed']}")


def test_tasks_replay_and_splits_differ():
    assert make_task("train", 7) == make_task("train", 7)
    assert make_task("train", 7).query != make_task("test", 7).query
    assert len({t.name for t in TEMPLATE_LIST}) == 25
    assert {
        c.name for t in TEMPLATE_LIST for c in make_task("train", TEMPLATE_LIST.index(t)).gold_calls
    } == set(TOOLS)


def test_final_answer_rule():
    assert answer_correct("1,042.50 USD", 1042.5) and answer_correct("about 37.33 hours", 37.326667)
    assert not answer_correct("37.2", 37.326667) and not answer_correct("none", 3)
    assert answer_correct("'Yoga class'.", "Yoga class") and not answer_correct("yoga", "Yoga class")


def test_a_wrong_final_answer_ends_the_episode_with_reward_zero(env):
    _, reward, terminated, _, info = env.step("Final Answer: XXXXXX")
    assert terminated and reward == 0.0 and info["success"] is False and info["correct"] is False
    assert info["gold_answer"] == make_task("test", 11).answer and len(info["gold_calls"]) == 2


# ---- metrics ----------------------------------------------------------------------------------------
def test_call_strings_are_normalised_as_in_ood_toolset():
    call = Call("convertCurrency", {"targetCurrency": "EUR", "baseCurrency": "CAD", "amount": 1000.0})
    assert call_string(call) == "convertCurrency(amount=1000, baseCurrency='CAD', targetCurrency='EUR')"
    assert (
        normalise_call_string(call_string(call))
        == "convertcurrency(amount=1000basecurrency='cad'targetcurrency='eur')"
    )
    assert normalise_call_string('f(path="a/b", n=1)') == "f(path='ab'n=1)"


def test_exact_and_partial_match_on_hand_computed_cases():
    gold = [
        Call("getCountryDetails", {"country": "Italy"}),
        Call("getCurrencyInformation", {"country": "Italy"}),
    ]
    both = [
        Call("getCurrencyInformation", {"country": "italy"}),
        Call("getCountryDetails", {"country": "Italy"}),
    ]
    assert call_match(both, gold) == (1.0, 1.0)
    assert call_match([*both, Call("listCountries", {})], gold) == (1.0, 1.0)  # extra calls do not hurt
    assert call_match([gold[0]], gold) == (0.0, 0.5)
    assert call_match([Call("getCountryDetails", {"country": "France"})], gold) == (0.0, 0.0)
    assert call_match([], gold) == (0.0, 0.0)
    assert call_match([Call("f", {"b": 2, "a": "x y"})], [Call("f", {"a": "x y", "b": 2.0})]) == (1.0, 1.0)


def test_env_metrics_follow_the_calls_made(env):
    gold = make_task("test", 11).gold_calls
    _, _, _, _, info = env.step(gold[0].to_json())
    assert (info["exact_match"], info["partial_match"]) == (0.0, 0.5)
    explicit = {**gold[0].arguments, "cabin": "economy"}  # the default, written out, is the same call
    _, _, _, _, info = env.step(json.dumps({"name": "search_flights", "arguments": explicit}))
    assert info["partial_match"] == 0.5 and len(info["calls"]) == 2
    _, _, _, _, info = env.step(gold[1].to_json())
    assert (info["exact_match"], info["partial_match"]) == (1.0, 1.0)


# ---- the OOD-Toolset loader ----------------------------------------------------------------------
RECORDS = [
    {
        "Name": "Holiday Finder",
        "Description": "public holidays of many countries",
        "Function_Description": {
            "holidaysOfYear": 'List the public holidays of a year.\nParameters: {"year": "Required. integer. The year.", '
            '"countryCode": "Required. string. Two-letter country code."}',
            "isHolidayToday": 'Whether today is a public holiday.\nParameters: {"countryCode": "Required. string. '
            'Two-letter country code."}',
            "nextHolidays": 'The next holidays.\nParameters: {"countryCode": "string. Two-letter code.", '
            '"scope": "string. One of: [national, regional]. Which holidays."}',
        },
        "Demonstration": [
            {
                "Instruction": "Is today a holiday in Spain?",
                "Answer": [{"Action": "isHolidayToday", "Action_Input": '{"countryCode": "ES"}'}],
            },
            {
                "Instruction": "What are the next national holidays in Peru?",
                "Answer": [
                    {"Action": "nextHolidays", "Action_Input": '{"countryCode": "PE", "scope": "national"}'}
                ],
            },
            {
                "Instruction": "And in Chile?",
                "Answer": [{"Action": "nextHolidays", "Action_Input": '{"countryCode": "CL"}'}],
            },
        ],
        "Query": {
            "Instruction": "Which public holidays do Kenya and Ghana have in 2024?",
            "Answer": [
                {"Action": "holidaysOfYear", "Action_Input": '{"year": 2024, "countryCode": "KE"}'},
                {"Action": "holidaysOfYear", "Action_Input": '{"year": 2024, "countryCode": "GH"}'},
            ],
        },
    },
    {
        "Name": "Notes",
        "Description": "a note taking service",
        "Function_Description": {"addNote": "Add a note.\nParameters: not json"},
        "Demonstration": [],
        "Query": {
            "Instruction": "Note 'milk'.",
            "Answer": [{"Action": "addNote", "Action_Input": '{"text": "milk"}'}],
        },
    },
]


@pytest.fixture(params=["json", "jsonl"])
def toolset_file(tmp_path: Path, request) -> str:
    path = tmp_path / f"toolset.{request.param}"
    if request.param == "json":
        path.write_text(json.dumps(RECORDS))
    else:
        path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    return str(path)


def test_loader_serves_records_and_scores_calls(toolset_file):
    env = ToolUseEnv(data=toolset_file)
    observation, info = env.reset(options={"task": 0, "split": "test"})
    assert observation.startswith("The Holiday Finder API is used for: public holidays of many countries")
    assert "holidaysOfYear: List the public holidays of a year." in observation
    assert "Which public holidays do Kenya and Ghana have in 2024?" in observation
    assert info["source"] == "ood-toolset" and len(info["demonstrations"]) == 3
    year = next(t for t in info["tools"] if t["function"]["name"] == "holidaysOfYear")["function"][
        "parameters"
    ]
    assert year["required"] == ["year", "countryCode"] and year["properties"]["year"]["type"] == "integer"
    _, _, _, _, step = env.step(
        '{"name": "holidaysOfYear", "arguments": {"year": "2024", "countryCode": "KE"}}'
    )
    assert step["invalid"] and "argument 'year' must be an integer" in step["error"]
    _, _, _, _, step = env.step('{"name": "nextHolidays", "arguments": {"scope": "local"}}')
    assert step["invalid"] and 'argument \'scope\' must be one of "national", "regional"' in step["error"]
    observation, reward, terminated, _, step = env.step("holidaysOfYear(year=2024, countryCode='ke')")
    assert json.loads(observation)["status"] == "recorded" and not terminated
    assert (step["exact_match"], step["partial_match"]) == (0.0, 0.5)
    observation, reward, terminated, _, step = env.step(env.expert_action())
    assert terminated and reward == 1.0 and step["success"] and step["exact_match"] == 1.0


def test_loader_final_answer_is_scored_by_calls_alone(toolset_file):
    env = ToolUseEnv(data=toolset_file)
    env.reset(options={"task": 0})
    env.step('{"name": "holidaysOfYear", "arguments": {"year": 2024, "countryCode": "GH"}}')
    _, reward, terminated, _, info = env.step("Final Answer: Jamhuri Day")
    assert terminated and reward == 0.0 and info["partial_match"] == 0.5 and not info["success"]


def test_loader_accepts_any_arguments_where_parameters_do_not_parse(toolset_file):
    env = ToolUseEnv(data=toolset_file)
    env.reset(options={"task": 1})
    episode = envs.run_expert(env, options={"task": 1})
    assert episode.success and episode.actions == ['{"name": "addNote", "arguments": {"text": "milk"}}']
    with pytest.raises(TaskOptionError):
        env.reset(options={"task": 0, "demos": "id"})


# ---- Self-Demos --------------------------------------------------------------------------------------
GOOD_DEMO = (
    "Query: Book the cheapest flight from Paris to Berlin on 2025-02-02 for Ada Weber.\nFunction calls:\n"
    '{"name": "search_flights", "arguments": {"origin": "Paris", "destination": "Berlin", "date": "2025-02-02"}}\n'
    '{"name": "book_flight", "arguments": {"flight_id": "AF100", "passenger_name": "Ada Weber"}}'
)
OTHER_GOOD_DEMO = (
    "Query: Find me flights from Rome to Madrid on 2025-07-09.\nFunction calls:\n"
    "[\"search_flights(origin='Rome', destination='Madrid', date='2025-07-09')\"]"
)
THIRD_GOOD_DEMO = (
    "Query: Which business flights go from Seoul to Tokyo on 2025-04-01?\nFunction calls:\n"
    '  {"name": "search_flights", "arguments": {"origin": "Seoul", "destination": "Tokyo", "date": "2025-04-01", '
    '"cabin": "business"}}'
)
BAD_ENUM_DEMO = (
    "Query: Flights from Atlantis to Paris tomorrow?\nFunction calls:\n"
    '{"name": "search_flights", "arguments": {"origin": "Atlantis", "destination": "Paris", "date": "tomorrow"}}'
)
UNSOLVABLE_DEMO = 'Query: Convert 5 USD to EUR.\nFunction calls:\n{"name": "convert_currency", "arguments": {"amount": 5, "from_currency": "USD", "to_currency": "EUR"}}'


class ScriptedAgent(Agent):
    """Answers the Self-Demos prompts from a script and every episode turn with the env's expert."""

    name = "scripted"

    def __init__(self, understanding: str, examples: list[str], selection: str = "Selection: <2>"):
        self.understanding, self.examples, self.selection = understanding, examples, selection
        self.prompts: list[str] = []
        self.turns: list[list[dict]] = []

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        replies = []
        for item in inputs:
            prompt = item.messages[-1]["content"]
            if "decide which function" in prompt:
                self.prompts.append("understanding")
                replies.append([self.understanding] * sampling.n)
            elif "write an example" in prompt:
                self.prompts.append(f"generation n={sampling.n} t={sampling.temperature}")
                replies.append((self.examples * sampling.n)[: sampling.n])
            elif "check them and keep" in prompt:
                self.prompts.append("selection")
                replies.append([self.selection] * sampling.n)
            else:
                self.turns.append(item.messages)
                replies.append([item.env.expert_action()] * sampling.n)
        return replies


def play(agent: Agent, env: ToolUseEnv, options: dict) -> tuple[dict, list[dict]]:
    """Run one episode; the last info and the conversation the agent was given at its first turn."""
    observation, info = env.reset(options=options)
    messages = [{"role": "system", "content": info["instruction"]}, {"role": "user", "content": observation}]
    first = list(messages)
    while True:
        output = agent.act([AgentInput(list(messages), info, env)])[0]
        observation, _, terminated, truncated, info = env.step(output.action)
        messages += [{"role": "assistant", "content": output.text}, {"role": "user", "content": observation}]
        if terminated or truncated:
            return info, first


def test_self_demos_runs_end_to_end_and_adds_checked_demonstrations():
    examples = [GOOD_DEMO, GOOD_DEMO, OTHER_GOOD_DEMO, THIRD_GOOD_DEMO, BAD_ENUM_DEMO, UNSOLVABLE_DEMO]
    base = ScriptedAgent("Function to call: search_flights, then book_flight", examples)
    agent = SelfDemosAgent(base, num_demos=6)
    env = envs.make("evol/ToolUse-v0")
    info, first = play(agent, env, {"task": 11, "split": "test"})
    assert info["success"]
    assert base.prompts == ["understanding", "generation n=6 t=0.8", "selection"]
    preparation = agent.preparation(first)
    assert preparation.fallback is None and preparation.functions == ["search_flights", "book_flight"]
    assert len(preparation.candidates) == 5  # the duplicate is dropped
    assert preparation.problems[:3] == [[], [], []]
    assert any("'origin' must be one of" in p for p in preparation.problems[3])
    assert any("must be a date as YYYY-MM-DD" in p for p in preparation.problems[3])
    assert preparation.problems[4] == ["unsolvable: no call to search_flights, book_flight"]
    assert [d["query"] for d in preparation.selected] == [
        "Find me flights from Rome to Madrid on 2025-07-09."
    ]
    first_user = base.turns[0][1]["content"]
    assert (
        "# More demonstrations (written for this query)\nExample 4\nQuery: Find me flights from Rome"
        in first_user
    )
    assert first_user.index("# More demonstrations") < first_user.index("# Query\n")
    # Every later turn sees the same augmented prompt (the preparation is kept per episode).
    assert len(base.turns) == 3 and all(turn[1]["content"] == first_user for turn in base.turns)


@pytest.mark.parametrize(
    "understanding, examples, reason",
    [
        ("I am not sure.", [GOOD_DEMO], "step 1: the reply names no declared function"),
        ("search_flights", [GOOD_DEMO, "no query here"], "step 2: 1 distinct demonstrations, fewer than 2"),
        ("search_flights", [BAD_ENUM_DEMO, UNSOLVABLE_DEMO], "step 3: no demonstration passed the checks"),
    ],
    ids=["step1", "step2", "step3"],
)
def test_self_demos_falls_back_to_plain_few_shot(understanding, examples, reason):
    base = ScriptedAgent(understanding, examples)
    agent = SelfDemosAgent(base)
    env = envs.make("evol/ToolUse-v0")
    info, first = play(agent, env, {"task": 11, "split": "test"})
    assert info["success"]
    assert agent.preparation(first).fallback == reason
    assert base.turns[0] == first  # the conversation went to the base agent unchanged


def test_self_demos_passes_through_episodes_without_tools():
    base = ScriptedAgent("search_flights", [GOOD_DEMO])
    agent = SelfDemosAgent(base)
    env = envs.make("evol/ToolUse-v0")
    env.reset(options={"task": 0})
    item = AgentInput([{"role": "system", "content": "s"}, {"role": "user", "content": "o"}], {}, env)
    agent.act([item])
    assert base.prompts == [] and base.turns[0] == item.messages


def test_self_demos_helpers():
    demo = parse_demonstration(OTHER_GOOD_DEMO)
    assert demo["calls"] == [
        {
            "name": "search_flights",
            "arguments": {"origin": "Rome", "destination": "Madrid", "date": "2025-07-09"},
        }
    ]
    schemas = {t["function"]["name"]: t["function"] for t in openai_tools()}
    wrong = {
        "query": "q",
        "calls": [
            {
                "name": "get_forecast",
                "arguments": {"city": "Paris", "start_date": "2025-01-01", "days": 9, "x": None},
            }
        ],
    }
    assert check_demonstration(wrong, schemas, ["get_forecast"]) == [
        "get_forecast: argument 'days' is out of range [1, 7]: 9",
        "get_forecast: undeclared parameter 'x'",
    ]
    assert (
        insert_before_query("intro\n\n# Query\nWhat?", "What?", "BLOCK") == "intro\n\nBLOCK\n\n# Query\nWhat?"
    )
    assert insert_before_query("no query", "What?", "BLOCK") == "no query\n\nBLOCK"


def test_self_demos_module_does_not_import_envs():
    tree = ast.parse(Path(__import__("agents.self_demos").self_demos.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not any(name.split(".")[0] in ("envs", "server", "evol") for name in imported)


def test_call_strings_write_numbers_as_the_shared_env_format():
    from fractions import Fraction

    from envs.numbers import format_number

    assert [format_number(v) for v in (3.0, 0.000741, 2.5, -1e-12, 10**20, 1 / 3)] == [
        "3", "0.000741", "2.5", "0", "100000000000000000000", "0.3333333333",
    ]  # fmt: skip
    assert [format_number(v, 2) for v in (15.10, 2.675, -0.001)] == ["15.1", "2.67", "0"]
    assert [format_number(Fraction(n, d)) for n, d in ((5, 2), (7, 3), (36, 1))] == ["2.5", "7/3", "36"]
    call = Call("f", {"a": 2.0, "b": True, "c": None, "d": 0.25})
    assert call_string(call) == "f(a=2, b=true, c=none, d=0.25)"


def test_self_demos_reads_keyword_calls_as_json_literals_only():
    from agents.self_demos import keyword_calls

    assert keyword_calls("get_weather(city='Paris', days=3, hours=[1, (2, 3)])") == [
        {"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "hours": [1, [2, 3]]}}
    ]
    for text in (
        "f(a={1, 2})",
        "f(a=b'x')",
        "f(a=1j)",
        "f(a=x)",
        "f(1)",
        "f(**m)",
        "f(a=1e999)",
        "f(a={[]: 1})",
        "f(a=0x10)",
        'f(a=f"x")',
        "f(a=1",
    ):
        assert keyword_calls(text) is None, text
    demo = parse_demonstration("Query: weather?\nFunction calls:\nget_weather(city='Paris')")
    assert demo["calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]


def test_self_demos_keys_its_preparations_by_the_conversation_opening():
    from agents.self_demos import opening_key

    opening = [{"role": "system", "content": "s"}, {"role": "user", "content": "task 1"}]
    later = opening + [{"role": "assistant", "content": "a"}, {"role": "user", "content": "o"}]
    assert opening_key(opening) == opening_key(later)  # every turn and sample of one task
    assert opening_key(opening) != opening_key([opening[0], {"role": "user", "content": "task 2"}])
