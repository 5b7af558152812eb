"""The Self-Demos comparison: each strategy's prompt content, the harness's scores on a scripted
run whose outcomes are known, and bad specs refused."""

from __future__ import annotations

import json

import pytest

import envs
from agents import load_agent
from agents.base import Agent, AgentInput, SamplingParams
from agents.demo_baselines import FewShotAgent, SelfICLAgent, ZeroShotAgent
from agents.self_demos import SelfDemosAgent
from benchmarks.self_demos_comparison import ScriptedBase, compare, markdown, parse_args, write


class Recorder(Agent):
    """Records every prompt; answers Self-Demos' and Self-ICL's steps, then the expert's actions."""

    name = "recorder"
    needs_env = True

    def __init__(self):
        self.prompts: list[str] = []
        self.turns: list[list[dict]] = []

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        replies = []
        for item in inputs:
            if item.env is not None:
                self.turns.append(item.messages)
                replies.append([item.env.expert_action()] * sampling.n)
                continue
            prompt = item.messages[-1]["content"]
            self.prompts.append(prompt)
            call = json.dumps({"name": "get_weather", "arguments": {"city": "Paris", "date": "2025-05-03"}})
            if "decide which function" in prompt:
                replies.append(["get_weather"] * sampling.n)
            elif "write a new query" in prompt:
                replies.append([f"Query: weather somewhere {i}" for i in range(sampling.n)])
            elif "answer this query" in prompt:
                replies.append([call] * sampling.n)
            else:
                replies.append(
                    [f"Query: weather in Paris {i}\nFunction calls:\n{call}" for i in range(sampling.n)]
                )
        return replies


def first_turn(agent: Agent, base: Recorder, options: dict) -> tuple[str, dict]:
    env = envs.make("evol/ToolUse-v0")
    observation, info = env.reset(options=options)
    messages = [{"role": "system", "content": info["instruction"]}, {"role": "user", "content": observation}]
    agent.act([AgentInput(messages, info, env)])
    return base.turns[0][1]["content"], info


def test_each_strategy_puts_what_it_should_in_the_prompt():
    options = {"task": 0, "split": "test", "demos": "ood"}  # a get_weather query
    base = Recorder()
    zero, info = first_turn(ZeroShotAgent(base), base, options)
    query = info["query"]
    assert "# Demonstrations" not in zero and "Example 1" not in zero
    assert "# Tools" in zero and zero.rstrip().endswith(query)
    assert base.prompts == []

    base = Recorder()
    few, _ = first_turn(FewShotAgent(base), base, options)
    for demo in info["demonstrations"]:
        assert f"Query: {demo['query']}" in few
    assert "Example 3" in few and "Example 4" not in few and "# More demonstrations" not in few

    base = Recorder()
    agent = SelfICLAgent(base, num_demos=3)
    icl, _ = first_turn(agent, base, options)
    assert base.prompts and all(query not in p for p in base.prompts)  # never query-aware
    assert "# More demonstrations (written by the model)" in icl
    assert "Query: weather somewhere 0" in icl and "Example 6" in icl  # 3 seeds + 3 pseudo
    assert icl.index("# More demonstrations") < icl.index("# Query\n")

    base = Recorder()
    agent = SelfDemosAgent(base, num_demos=3)
    demos, _ = first_turn(agent, base, options)
    generation = [p for p in base.prompts if "write an example" in p]
    assert generation and all(f"Query: {query}" in p for p in generation)  # query-aware
    assert "# More demonstrations (written for this query)" in demos and "Query: weather in Paris" in demos


def test_the_harness_scores_a_scripted_run_as_known(tmp_path):
    args = parse_args(["--episodes", "5", "--math-episodes", "3", "--quiet", "--work", str(tmp_path / "w")])
    data = compare(args)
    table = data["table"]
    # The scripted base answers right only with a demonstration of what the query needs.
    for strategy in ("zero-shot", "few-shot", "self-icl", "self-demos"):
        ood, id_ = table[strategy]["OOD"], table[strategy]["ID"]
        assert ood["episodes"] == id_["episodes"] == 5 and ood["errors"] == 0
        expected_ood = 1.0 if strategy == "self-demos" else 0.0
        expected_id = 0.0 if strategy == "zero-shot" else 1.0
        assert (ood["exact"], ood["partial"]) == (expected_ood, expected_ood), strategy
        assert (id_["exact"], id_["partial"]) == (expected_id, expected_id), strategy
        assert table[strategy]["math"]["accuracy"] == (1.0 if strategy == "self-demos" else 0.0), strategy
    paths = write(data, tmp_path / "out")
    assert all(path.stat().st_size > 0 for path in paths.values())
    assert "| self-demos | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |" in markdown(data)


def test_partial_match_when_the_demonstrations_show_only_the_first_call():
    # Test task 11 books the cheapest flight: search_flights, then book_flight.
    base = ScriptedBase(12, 0)
    env = envs.make("evol/ToolUse-v0")
    observation, info = env.reset(options={"task": 11, "split": "test", "demos": "ood"})
    demo = json.dumps({"name": "search_flights", "arguments": {}})
    observation = observation.replace("# Query\n", f"# More demonstrations\nQuery: x\n{demo}\n\n# Query\n")
    messages = [{"role": "user", "content": observation}]
    while True:
        action = base.act([AgentInput(messages, info, env)])[0].action
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    assert info["outcome"]["exact_match"] == 0.0 and info["outcome"]["partial_match"] == 0.5


@pytest.mark.parametrize(
    "spec, words",
    [
        ("zero-shot:", "wraps a model agent spec"),
        ("self-icl:self-demos:random", "not another strategy"),
        ("selfdemos:random", "unknown agent spec"),
    ],
)
def test_bad_specs_are_refused(spec, words):
    with pytest.raises(ValueError, match=words):
        load_agent(spec)


@pytest.mark.parametrize(
    "argv",
    [
        ["--agent-base", "self-demos:hf:x"],
        ["--agent-base", "nope"],
        ["--strategies", "one-shot"],
        ["--math-demos", "0"],
    ],
)
def test_bad_benchmark_arguments_are_refused_before_any_work(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert "--" in capsys.readouterr().err


def test_math_demonstrations_are_of_other_topics():
    env = envs.make("evol/MathCritique-v0", demos=3)
    for task in range(4):
        _, info = env.reset(options={"task": task, "split": "test"})
        topics = [d["topic"] for d in info["demonstrations"]]
        assert len(topics) == 3 and len(set(topics)) == 3 and env.problem.topic not in topics
    with pytest.raises(Exception, match="demos"):
        envs.make("evol/MathCritique-v0", demos=2, data={"train": "x.jsonl"})
