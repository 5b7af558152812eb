"""The vLLM backend on a real tiny checkpoint; runs where vLLM runs: a CUDA GPU with
`vllm`, or the CPU with `vllm-cpu` (see the README: it lives in its own environment)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache for the CPU build

pytest.importorskip("vllm")
torch = pytest.importorskip("torch")
from vllm.platforms import current_platform  # noqa: E402

if not (torch.cuda.is_available() or current_platform.is_cpu()):
    pytest.skip("this vLLM build needs a GPU", allow_module_level=True)

from agents import load_agent  # noqa: E402
from agents.base import AgentInput, SamplingParams, parse_action  # noqa: E402
from agents.tiny import build_tiny_model  # noqa: E402
from agents.vllm_backend import VLLMAgent  # noqa: E402
from evol.rollout import RolloutEngine, task_specs  # noqa: E402

SYSTEM = "You are an agent in a grid world. Answer with one action."


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    path = build_tiny_model(
        tmp_path_factory.mktemp("tiny"), [SYSTEM, "You see a red ball. Action: go to the red ball"]
    )
    agent = load_agent(
        f"vllm:{path}", gpu_memory_utilization=0.2, max_model_len=512, enforce_eager=True, seed=0
    )
    yield agent
    agent.close()


def test_vllm_agent_returns_n_replies_per_input(agent):
    assert isinstance(agent, VLLMAgent)
    inputs = [
        AgentInput(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "You see a red ball."}]
        ),
        AgentInput([{"role": "user", "content": "You see a blue box. " * 5}]),
    ]
    replies = agent.generate(inputs, SamplingParams(temperature=1.0, n=3, max_new_tokens=8))
    assert [len(samples) for samples in replies] == [3, 3]
    outputs = agent.act(inputs, SamplingParams(temperature=1.0, n=2, max_new_tokens=8))
    for output in outputs:
        assert len(output.samples) == 2 and output.action == parse_action(output.text)
        assert 0 < output.tokens <= 16


def test_vllm_agent_greedy_n_and_truncation(agent):
    long_chat = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "red ball " * 2000}]
    replies = agent.generate([AgentInput(long_chat)], SamplingParams(n=2, max_new_tokens=8))
    assert len(replies[0]) == 2 and replies[0][0] == replies[0][1]


def test_vllm_agent_gives_equal_prompts_their_own_samples(agent):
    inputs = [AgentInput([{"role": "user", "content": "You see a red ball."}])] * 4
    replies = agent.generate(inputs, SamplingParams(temperature=1.0, max_new_tokens=12))
    assert len({samples[0] for samples in replies}) > 1


def test_vllm_agent_runs_episodes_through_a_live_server(agent, start_server):
    server = start_server(["evol/BabyAI-v0"])
    engine = RolloutEngine(
        agent,
        concurrency=4,
        sampling=SamplingParams(temperature=1.0, max_new_tokens=8),
        urls=[server.url],
        max_turns=3,
        progress=False,
    )
    trajectories = engine.run(task_specs(["evol/BabyAI-v0"], 6, split="test"))
    engine.pool.close()
    assert len(trajectories) == 6
    for trajectory in trajectories:
        assert trajectory.error is None and 1 <= trajectory.turns <= 3
        assert trajectory.agent == agent.name and len(trajectory.actions) == trajectory.turns
