"""`OpenAIAgent` against real `serve-agent` processes serving a tiny model built here."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future

import pytest
import requests

from agents import AgentInput, SamplingParams, load_agent
from agents.openai_compat import AgentRequestError, OpenAIAgent, api_base, tool_call_text
from server.agent_batcher import GenerationBatcher, GenerationJob, Overloaded
from tests.conftest import AgentServerProcess

os.environ["HF_HUB_OFFLINE"] = "1"
TOKEN = "agent-secret"
NAME = "tiny"


def chat(text: str) -> AgentInput:
    return AgentInput([{"role": "system", "content": "You are an agent."}, {"role": "user", "content": text}])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agents.tiny import SPECIAL_TOKENS, build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("tiny"), ["go to the red ball", "open the door"] * 20)
    model = AutoModelForCausalLM.from_pretrained(path)
    special = AutoTokenizer.from_pretrained(path).convert_tokens_to_ids(SPECIAL_TOKENS)
    with torch.no_grad():  # tied embeddings: special tokens get logit 0, never the greedy pick
        model.get_input_embeddings().weight[special] = 0
    model.save_pretrained(path)  # so greedy replies run to max_tokens and slow ones are predictable
    return str(path)


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


@pytest.fixture
def server(servers) -> AgentServerProcess:
    return servers[0]


@pytest.fixture
def agent(server):
    agent = OpenAIAgent(server.url, model=NAME, api_key=TOKEN)
    yield agent
    agent.close()


def post(
    server: AgentServerProcess, body, token: str | None = TOKEN, headers: dict | None = None, **kwargs
) -> requests.Response:
    headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    return requests.post(
        server.url + "/v1/chat/completions", json=body, headers=headers, timeout=30, **kwargs
    )


# ---- against the main server ------------------------------------------------------------
def test_model_is_discovered_from_v1_models(server):
    agent = OpenAIAgent(server.url + "/v1/", api_key=TOKEN)
    assert agent.model == NAME and agent.name == f"openai:{NAME}"
    [[reply]] = agent.generate([chat("go")], SamplingParams(max_new_tokens=3))
    assert reply
    agent.close()


def test_batch_of_conversations_gets_one_reply_each(agent):
    inputs = [chat(f"open door {i}") for i in range(6)]
    replies = agent.generate(inputs, SamplingParams(max_new_tokens=5))
    assert len(replies) == 6 and all(len(r) == 1 and isinstance(r[0], str) and r[0] for r in replies)
    outputs = agent.act(inputs[:2], SamplingParams(max_new_tokens=5))
    assert len(outputs) == 2 and all(o.text and o.samples == [o.text] for o in outputs)


def test_n_samples_come_from_one_request_each(agent):
    replies = agent.generate([chat("a"), chat("b")], SamplingParams(temperature=1.0, max_new_tokens=6, n=3))
    assert [len(r) for r in replies] == [3, 3]
    assert agent.stats["requests"] == 2 and agent.stats["retries"] == 0


def test_completion_has_openai_shape_and_usage(server):
    body = {"model": NAME, "messages": chat("go").messages, "temperature": 0, "max_tokens": 7, "n": 2}
    answer = post(server, body).json()
    assert answer["object"] == "chat.completion" and answer["model"] == NAME
    assert [c["index"] for c in answer["choices"]] == [0, 1]
    choice = answer["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "length"
    usage = answer["usage"]
    assert (
        usage["prompt_tokens"] > 0
        and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    )


def test_stop_strings_end_the_reply_before_them(server):
    agent = OpenAIAgent(server.url, model=NAME, api_key=TOKEN, extra_body={"seed": 11})
    sampling = {"temperature": 1.0, "max_new_tokens": 40}
    [[full]] = agent.generate([chat("go")], SamplingParams(**sampling))
    # A short printable piece from the middle of the reply the same seed gives again.
    start = next(
        i
        for i in range(len(full) // 3, len(full) - 2)
        if full[i : i + 2].isascii() and full[i : i + 2].strip()
    )
    stop = full[start : start + 2]
    [[cut]] = agent.generate([chat("go")], SamplingParams(**sampling, stop=[stop, "never-seen"]))
    assert cut == full[: full.index(stop)] and stop not in cut
    agent.close()


def test_a_served_model_is_an_env_counterpart_through_complete(agent):
    from agents import LazyAgent
    from envs.counterparts import Completer

    assert isinstance(agent, Completer) and isinstance(LazyAgent("random"), Completer)
    [replies] = agent.complete([chat("go").messages], max_new_tokens=3, n=2, temperature=1.0)
    assert len(replies) == 2 and all(isinstance(reply, str) for reply in replies)
    assert agent.complete([]) == []
    expert = LazyAgent("expert")
    assert expert.needs_env and expert._agent is None  # told without building the agent


def test_closing_a_lazy_agent_never_builds_it(tmp_path):
    from agents import LazyAgent

    unbuilt = LazyAgent(f"hf:{tmp_path / 'no-model-here'}")  # building it would fail
    unbuilt.close()
    assert unbuilt._agent is None
    built = LazyAgent("random:0")
    built.load()
    built.close()


def test_load_agent_spec_with_key_from_environment(server, monkeypatch):
    monkeypatch.setenv("EVOL_AGENT_API_KEY", TOKEN)
    agent = load_agent(f"openai:{server.url}/v1#{NAME}", max_retries=0)
    assert agent.model == NAME
    [output] = agent.act([chat("go")], SamplingParams(max_new_tokens=4))
    assert output.text and output.action == output.text.strip()
    agent.close()


def test_wrong_token_raises_401_without_retries(server):
    agent = OpenAIAgent(server.url, model=NAME, api_key="wrong", max_retries=5)
    started = time.monotonic()
    with pytest.raises(AgentRequestError, match="Bearer") as error:
        agent.generate([chat("go")], SamplingParams(max_new_tokens=2))
    assert error.value.status == 401 and agent.stats["retries"] == 0 and time.monotonic() - started < 2
    with pytest.raises(AgentRequestError) as error:
        OpenAIAgent(server.url, api_key="wrong")  # discovery needs the token too
    assert error.value.status == 401
    agent.close()


@pytest.mark.parametrize(
    "body, param",
    [
        ("{not json", None),
        ([1, 2], None),
        ({"model": NAME}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, "temperature"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 0}, "n"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10_000}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "hi"}], "stop": 5}, "stop"),
        ({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream"),
    ],
)
def test_malformed_request_answers_400_json(server, body, param):
    if isinstance(body, str):
        response = post(server, None, data=body, headers={"Content-Type": "application/json"})
    else:
        response = post(server, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"] and error["param"] == param


def test_non_json_deeply_nested_and_foreign_host_requests_are_refused(server):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = server.url + "/v1/chat/completions"
    body = '{"messages": [{"role": "user", "content": "hi"}]}'
    answer = requests.post(url, data=body, headers={**auth, "Content-Type": "text/plain"}, timeout=30)
    assert answer.status_code == 415 and answer.json()["error"]["code"] == "unsupported_media_type"
    deep = '{"messages": ' + "[" * 1000 + "]" * 1000 + "}"
    answer = requests.post(url, data=deep, headers={**auth, "Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "malformed_body"
    answer = requests.get(server.url + "/v1/models", headers={**auth, "Host": "rebound.example"}, timeout=30)
    assert answer.status_code == 403
    answer = requests.get(server.url + "/v1/models", headers={"Authorization": f"bearer {TOKEN}"}, timeout=30)
    assert answer.status_code == 200
    answer = requests.get(url, headers=auth, timeout=30)
    assert answer.status_code == 405 and "POST" in answer.headers["Allow"]


def test_serve_agent_refuses_an_agent_that_needs_an_env():

    done = subprocess.run(
        [sys.executable, "-m", "evol.cli", "serve-agent", "--agent", "expert", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "cannot answer plain chat requests" in done.stderr


def test_unknown_model_answers_404_and_no_token_401(server):
    body = {"model": "gpt-9", "messages": chat("go").messages}
    assert post(server, body).json()["error"]["code"] == "model_not_found"
    response = post(server, {"messages": chat("go").messages}, token=None)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


# ---- against the server without a queue -------------------------------------------------
def test_overload_answers_503_and_client_retries_succeed(servers):
    small = servers[1]
    slow_body = {"messages": chat("slow").messages, "temperature": 0, "max_tokens": 400}
    slow = threading.Thread(target=lambda: slow_result.append(post(small, slow_body, token=None)))
    slow_result: list[requests.Response] = []
    slow.start()
    deadline = time.monotonic() + 10
    while small.health()["running"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    refused = post(small, {"messages": chat("now").messages, "max_tokens": 2}, token=None)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "overloaded"

    agent = OpenAIAgent(small.url, max_retries=30, backoff=0.05)
    replies = agent.generate([chat(f"go {i}") for i in range(3)], SamplingParams(max_new_tokens=2))
    assert len(replies) == 3 and agent.stats["retries"] > 0
    slow.join(30)
    assert slow_result[0].status_code == 200
    agent.close()


def test_timeout_shorter_than_generation_raises_clear_error(servers):
    agent = OpenAIAgent(servers[1].url, model=NAME, timeout=0.3, max_retries=3)
    started = time.monotonic()
    with pytest.raises(AgentRequestError, match="timed out after 0.3s") as error:
        agent.generate([chat("go")], SamplingParams(max_new_tokens=1500))
    assert error.value.status is None and time.monotonic() - started < 3  # a timeout is not retried
    agent.close()


# ---- the client and the batcher on their own --------------------------------------------
def test_api_base_and_tool_call_text():
    assert api_base("http://h:1") == api_base("http://h:1/") == api_base("http://h:1/v1") == "http://h:1/v1"
    assert api_base("https://h/openai/v1") == "https://h/openai/v1"
    call = {"function": {"name": "search", "arguments": '{"q": "red ball"}'}}
    assert tool_call_text(call) == '{"name": "search", "arguments": {"q": "red ball"}}'


def test_any_agent_can_be_served_in_process():
    from agents.scripted import RandomAgent
    from evol.agent_server import create_agent_app

    client = create_agent_app(RandomAgent(seed=0, fallback=("look",)), "random").test_client()
    answer = client.post("/v1/chat/completions", json={"messages": chat("go").messages, "n": 2}).get_json()
    assert [c["message"]["content"] for c in answer["choices"]] == ["look", "look"]
    assert answer["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"


class GatedAgent:
    """Blocks its first call until `gate` is set; records every batch; fails on 'boom'."""

    def __init__(self):
        self.gate = threading.Event()
        self.batches: list[list[str]] = []

    def generate(self, conversations, sampling, seed):
        self.gate.wait(10)
        texts = [messages[-1]["content"] for messages in conversations]
        self.batches.append(texts)
        if "boom" in texts:
            raise RuntimeError("boom")
        return [[text.upper()] * sampling["n"] for text in texts]


def job(text: str, seed: int | None = None, **sampling) -> GenerationJob:
    return GenerationJob(chat(text).messages, {"n": 1, **sampling}, seed)


def test_batcher_groups_alike_requests_and_bounds_its_queue():
    agent = GatedAgent()
    batcher = GenerationBatcher(agent, max_queue=5, max_batch=3)
    first = batcher.submit(job("first"))
    while batcher.running == 0:
        time.sleep(0.001)
    jobs = [job("a"), job("b", seed=1), job("c"), job("d", temperature=1.0), job("e")]
    futures: list[Future] = [batcher.submit(j) for j in jobs]
    with pytest.raises(Overloaded):
        batcher.submit(job("too many"))
    agent.gate.set()
    assert [f.result(5).replies for f in [first, *futures]] == [["FIRST"], ["A"], ["B"], ["C"], ["D"], ["E"]]
    assert agent.batches == [["first"], ["a", "c", "e"], ["b"], ["d"]]
    batcher.close()


def test_batcher_reruns_a_failed_batch_one_by_one():
    agent = GatedAgent()
    agent.gate.set()
    batcher = GenerationBatcher(agent, max_queue=5, max_batch=4, wait_s=0.05)
    futures = [batcher.submit(job(text)) for text in ["ok", "boom", "fine"]]
    assert futures[0].result(5).replies == ["OK"] and futures[2].result(5).replies == ["FINE"]
    with pytest.raises(RuntimeError, match="boom"):
        futures[1].result(5)
    batcher.close()
