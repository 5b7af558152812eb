"""The transformers backend on a real tiny checkpoint built locally (no downloads)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents import load_agent  # noqa: E402
from agents.base import AgentInput, SamplingParams, parse_action  # noqa: E402
from agents.hf import HFAgent, chat_prompt_ids  # noqa: E402
from tests.chat_models import SYSTEM, chat, random_tiny_model  # noqa: E402

GREEDY = SamplingParams(max_new_tokens=12)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return random_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0)


@pytest.fixture(scope="module")
def agent(model_path):
    agent = HFAgent(model_path, device="cpu")
    yield agent
    agent.close()


def test_prompt_is_the_chat_template_with_generation_prompt(agent):
    messages = chat("You see a red ball.", turns=1)
    ids = chat_prompt_ids(agent.tokenizer, messages)
    text = agent.tokenizer.decode(ids)
    assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n")
    assert text.endswith("<|im_start|>user\nYou see a red ball.<|im_end|>\n<|im_start|>assistant\n")
    expected = agent.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert ids == agent.tokenizer(expected, add_special_tokens=False)["input_ids"]


def test_multimodal_content_is_flattened_to_its_text(agent):
    parts = [
        {"type": "text", "text": "You see a red ball."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    flat = chat_prompt_ids(agent.tokenizer, [{"role": "user", "content": "You see a red ball."}])
    assert chat_prompt_ids(agent.tokenizer, [{"role": "user", "content": parts}]) == flat


def test_batched_greedy_replies_match_replies_generated_alone(agent):
    inputs = [AgentInput(chat(f"You see a red ball {k} steps away. " * k, turns=k % 3)) for k in range(1, 6)]
    batched = agent.generate(inputs, GREEDY)
    alone = [agent.generate([item], GREEDY)[0] for item in inputs]
    assert batched == alone
    assert all(len(replies) == 1 for replies in batched)
    assert len({replies[0] for replies in batched}) > 1  # the replies depend on the prompt


def test_batch_size_splits_the_batch_without_changing_replies(model_path, agent):
    inputs = [AgentInput(chat("go " * k)) for k in range(1, 6)]
    small = HFAgent(model_path, device="cpu", batch_size=2)
    assert small.generate(inputs, GREEDY) == agent.generate(inputs, GREEDY)


def test_temperature_gives_n_different_samples_per_input(agent):
    inputs = [AgentInput(chat("You see a red ball.")), AgentInput(chat("You see a blue box.", turns=2))]
    replies = agent.generate(inputs, SamplingParams(temperature=1.0, n=3, max_new_tokens=12))
    assert [len(samples) for samples in replies] == [3, 3]
    assert all(len(set(samples)) > 1 for samples in replies)


def test_greedy_with_n_repeats_the_greedy_reply(agent):
    inputs = [AgentInput(chat("You see a red ball."))]
    replies = agent.generate(inputs, SamplingParams(n=2, max_new_tokens=12))
    assert replies == [[agent.generate(inputs, GREEDY)[0][0]] * 2]


def test_seed_makes_sampling_reproducible(model_path):
    inputs = [AgentInput(chat("You see a red ball."))]
    sampling = SamplingParams(temperature=1.0, n=2, max_new_tokens=12)
    first, second = HFAgent(model_path, device="cpu", seed=7), HFAgent(model_path, device="cpu", seed=7)
    assert first.generate(inputs, sampling) == second.generate(inputs, sampling)
    assert first.generate(inputs, sampling) == second.generate(inputs, sampling)


def test_stop_strings_cut_replies_before_the_first_stop(agent):
    inputs = [AgentInput(chat("You see a red ball."))]
    full = agent.act(inputs, SamplingParams(max_new_tokens=24))[0]
    # Two printable characters from the middle of the reply make a stop string.
    start = next(
        i
        for i in range(4, len(full.text) - 1)
        if full.text[i : i + 2].isascii() and full.text[i : i + 2].isprintable()
    )
    stop = full.text[start : start + 2]
    expected = full.text[: full.text.index(stop)]
    stopped = agent.act(inputs, SamplingParams(max_new_tokens=24, stop=["never appears", stop]))[0]
    assert stopped.text == expected
    assert stopped.tokens < full.tokens  # generation stopped early, not only the text


def test_every_backend_cuts_at_stop_strings_with_the_one_base_function():
    import agents.hf
    import agents.openai_compat
    from agents.base import cut_at_stop

    assert agents.hf.cut_at_stop is agents.openai_compat.cut_at_stop is cut_at_stop
    assert cut_at_stop("go north. then", ["", "then", "."]) == "go north"
    assert cut_at_stop("go north", ["stop"]) == "go north"


def test_act_parses_actions_and_counts_tokens(agent):
    inputs = [AgentInput(chat("You see a red ball.")), AgentInput(chat("You see a grey key.", turns=1))]
    outputs = agent.act(inputs, SamplingParams(temperature=1.0, n=2, max_new_tokens=8))
    assert len(outputs) == 2
    for output in outputs:
        assert output.text == output.samples[0] and len(output.samples) == 2
        assert output.action == parse_action(output.text)
        assert 0 < output.tokens <= 2 * 8
    greedy = agent.act(inputs, SamplingParams(max_new_tokens=8))
    assert all(0 < output.tokens <= 8 for output in greedy)
    assert agent.act([], GREEDY) == []


def test_load_agent_builds_an_hf_agent_from_a_spec(model_path):
    agent = load_agent("hf:" + model_path, device="cpu")
    assert isinstance(agent, HFAgent)
    assert agent.act([AgentInput(chat("You see a red ball."))], GREEDY)[0].tokens > 0
    agent.close()
    assert agent.model is None and agent.tokenizer is None


def test_long_conversation_is_truncated_keeping_the_system_message(model_path):
    agent = HFAgent(model_path, device="cpu", max_context_tokens=256)
    messages = chat("You see a red ball.", turns=40)
    ids = chat_prompt_ids(agent.tokenizer, messages, 256 - GREEDY.max_new_tokens)
    text = agent.tokenizer.decode(ids)
    assert len(ids) <= 256 - GREEDY.max_new_tokens
    assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nStep ")
    assert text.endswith("You see a red ball.<|im_end|>\n<|im_start|>assistant\n")
    assert "Step 0:" not in text
    assert len(agent.act([AgentInput(messages)], GREEDY)) == 1


def test_one_overlong_message_is_cut_from_the_left(agent):
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "red ball " * 3000 + "THE END"},
    ]
    ids = chat_prompt_ids(agent.tokenizer, messages, 200)
    text = agent.tokenizer.decode(ids)
    assert len(ids) == 200
    assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n")
    assert text.endswith("THE END<|im_end|>\n<|im_start|>assistant\n")
    # Past the model's 2048 positions: the default context limit truncates it too.
    assert agent.act([AgentInput(messages)], GREEDY)[0].tokens > 0


def test_prefix_cache_continues_conversations_with_the_same_replies(model_path, agent):
    cached = HFAgent(model_path, device="cpu", prefix_cache=8)
    conversations = [chat(f"room {i} has a red ball", turns=i) for i in range(4)]
    sampling = SamplingParams(max_new_tokens=6)
    for turn in range(3):
        plain = agent.act([AgentInput(messages=c) for c in conversations], sampling)
        fast = cached.act([AgentInput(messages=c) for c in conversations], sampling)
        assert [o.text for o in fast] == [o.text for o in plain]
        for conversation, output in zip(conversations, plain):
            conversation += [
                {"role": "assistant", "content": output.text},
                {"role": "user", "content": f"step {turn}"},
            ]
    # After the first call, most of every prompt came from the cache.
    assert cached.prefix_cache.hits > cached.prefix_cache.misses
    assert len(cached.prefix_cache.entries) == 4


def test_threads_sharing_an_agent_each_get_their_own_token_counts(agent):
    import threading

    batches = [[AgentInput(chat(f"You see {k} red balls."))] * (1 + k % 3) for k in range(6)]
    sampling = SamplingParams(max_new_tokens=8)
    expected = [[o.tokens for o in agent.act(batch, sampling)] for batch in batches]
    got: dict[int, list[int]] = {}

    def run(k: int) -> None:
        got[k] = [o.tokens for o in agent.act(batches[k], sampling)]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [got[k] for k in range(len(batches))] == expected


def test_truncation_in_steps_keeps_the_same_start_for_several_turns(agent):
    limit = 600  # a turn here is about 50 tokens; a step of 150 about three turns
    messages = chat("Step 0: you see a wall.")
    starts = {1: [], 150: []}
    for turn in range(1, 40):
        messages += [
            {"role": "assistant", "content": f"Action: turn left {turn}"},
            {"role": "user", "content": f"Step {turn}: you see a wall."},
        ]
        for step, seen in starts.items():
            ids = chat_prompt_ids(agent.tokenizer, messages, limit, truncation_step=step)
            text = agent.tokenizer.decode(ids)
            assert len(ids) <= limit and text.startswith(
                f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
            )
            assert text.endswith(f"Step {turn}: you see a wall.<|im_end|>\n<|im_start|>assistant\n")
            seen.append(text.split("<|im_start|>user\n")[1].split(":")[0])  # the first kept turn
    exact, stepped = (len(set(starts[step])) for step in (1, 150))
    assert exact > 20  # dropping just enough moves the start nearly every turn
    assert stepped < exact / 2
    # Stepped truncation keeps at least the budget minus one step (and one turn) of context.
    ids = chat_prompt_ids(agent.tokenizer, messages, limit, truncation_step=150)
    assert len(ids) > limit - 150 - 60


def test_stepped_truncation_lets_the_prefix_cache_serve_long_episodes(model_path):
    sampling = SamplingParams(max_new_tokens=4)
    shares = {}
    for step in (1, None):  # None: a quarter of the budget
        cached = HFAgent(
            model_path, device="cpu", max_context_tokens=300, prefix_cache=4, truncation_step=step
        )
        messages = chat("Step 0: you see a wall.")
        for turn in range(1, 30):
            reply = cached.act([AgentInput(messages)], sampling)[0].text
            messages += [
                {"role": "assistant", "content": reply},
                {"role": "user", "content": f"Step {turn}: a wall."},
            ]
        shares[step] = cached.prefix_cache.hits / (cached.prefix_cache.hits + cached.prefix_cache.misses)
        cached.close()
    assert shares[None] > shares[1] + 0.2
