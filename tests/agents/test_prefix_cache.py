"""The prefix-cache decoder of the transformers backend: same replies as `generate`, less work."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.base import AgentInput, SamplingParams  # noqa: E402
from agents.hf import HFAgent, PromptEncoder, encode, render_chat  # noqa: E402
from agents.prefix_cache import PrefixCache, common_prefix, group_rows, top_p_filter  # noqa: E402
from tests.chat_models import chat, random_tiny_model  # noqa: E402

# EVOL_TEST_DEVICE=cuda runs these on a GPU (float32 there too: replies are compared exactly).
ON = {"device": os.environ.get("EVOL_TEST_DEVICE", "cpu"), "dtype": "float32"}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return random_tiny_model(tmp_path_factory.mktemp("tiny"), seed=1)


@pytest.fixture(scope="module")
def plain(model_path):
    agent = HFAgent(model_path, **ON)
    yield agent
    agent.close()


def test_common_prefix_lengths():
    assert common_prefix([1, 2, 3], [1, 2, 3, 4]) == 3
    assert common_prefix([1, 2, 3, 4], [1, 2, 9, 4]) == 2
    assert common_prefix([5], [6]) == 0
    assert common_prefix(list(range(1000)), list(range(999)) + [0]) == 999


def test_lookup_finds_the_longest_prefix_and_leaves_the_last_token_to_prefill():
    cache = PrefixCache(capacity=2)
    cache.store([1, 2, 3], [], None)
    cache.store([1, 2, 3, 4, 5], [], None)
    assert cache.lookup([1, 2, 3, 4, 5, 6]) == (1, 5)
    assert cache.lookup([1, 2, 3, 4, 5]) == (1, 4)  # the whole prompt is cached: its last token is fed again
    assert cache.lookup([1, 2, 7]) == (0, 2)
    assert cache.lookup([9]) == (None, 0)
    cache.store([8, 8], [], replaces=0)  # replaces entry 0; capacity 2 keeps the two newest
    assert list(cache.entries) == [1, 2]


def test_group_rows_splits_where_padding_costs_more_than_a_forward():
    # Sorted rows: three short continuations and one long fresh prompt.
    runs = group_rows([10, 10, 12, 300], [500, 600, 700, 300], overhead=64)
    assert runs == [(0, 3), (3, 4)]
    assert group_rows([10, 10, 10], [100, 100, 100], overhead=64) == [(0, 3)]
    runs = group_rows([5, 50, 500, 5000], [5000] * 4, overhead=1)
    assert runs == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert group_rows([], []) == []


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.01)).tolist() == [[True, False, False, False]]
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_prompt_encoder_matches_full_encoding_over_a_growing_conversation(plain):
    encoder = PromptEncoder(plain.tokenizer, checks=0)
    messages = chat("You see a red ball.")
    for turn in range(6):
        text = render_chat(plain.tokenizer, messages)
        assert encoder(text) == encode(plain.tokenizer, text)
        messages += [
            {"role": "assistant", "content": f"Action: go to door {turn} <|im_end|> oops"},
            {"role": "user", "content": f"Step {turn}: a wall.\n\nAvailable: left, right"},
        ]
    assert encoder.enabled and len(encoder.entries) >= 5


class PerCallMarker:
    """A tokenizer whose ids are not the join of its pieces' ids: each call starts with a marker."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.added_tokens_decoder = tokenizer.added_tokens_decoder

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [0] + self.tokenizer(text, add_special_tokens=False)["input_ids"]}


def test_prompt_encoder_turns_itself_off_for_a_tokenizer_that_breaks_its_assumption(plain):
    tokenizer = PerCallMarker(plain.tokenizer)
    encoder = PromptEncoder(tokenizer)
    messages = chat("You see a red ball.")
    for _turn in range(3):
        text = render_chat(plain.tokenizer, messages)
        assert encoder(text) == encode(tokenizer, text)
        messages += [{"role": "assistant", "content": "Action: left"}, {"role": "user", "content": "ok"}]
    assert not encoder.enabled


def test_a_mixed_batch_gets_the_replies_of_plain_generation(model_path, plain):
    """Cache hits, fresh prompts and two prompts continuing one cached conversation, in one call."""
    cached = HFAgent(model_path, **ON, prefix_cache=16)
    sampling = SamplingParams(max_new_tokens=8)
    first = [chat("You see a red ball.", turns=2), chat("You see a grey key.", turns=5)]
    cached.act([AgentInput(messages=c) for c in first], sampling)
    batch = [
        first[0] + [{"role": "assistant", "content": "Action: go"}, {"role": "user", "content": "A door."}],
        first[0] + [{"role": "assistant", "content": "Action: stop"}, {"role": "user", "content": "Dark."}],
        first[1] + [{"role": "assistant", "content": "Action: pick"}, {"role": "user", "content": "Done."}],
        chat("A brand new room with a purple box and a long description " * 6),
        [{"role": "user", "content": "No system message at all."}],
    ]
    expected = [o.text for o in plain.act([AgentInput(messages=c) for c in batch], sampling)]
    hits = cached.prefix_cache.hits
    assert [o.text for o in cached.act([AgentInput(messages=c) for c in batch], sampling)] == expected
    assert cached.prefix_cache.hits > hits
    # The conversations continue from what this call stored.
    more = [
        c + [{"role": "assistant", "content": e}, {"role": "user", "content": "Next."}]
        for c, e in zip(batch, expected)
    ]
    expected = [o.text for o in plain.act([AgentInput(messages=c) for c in more], sampling)]
    assert [o.text for o in cached.act([AgentInput(messages=c) for c in more], sampling)] == expected
    cached.close()


def test_cached_replies_stop_at_stop_strings_like_plain_generation(model_path, plain):
    cached = HFAgent(model_path, **ON, prefix_cache=4)
    inputs = [AgentInput(chat("You see a red ball.")), AgentInput(chat("You see a grey key.", turns=1))]
    full = plain.act(inputs, SamplingParams(max_new_tokens=24))
    stop = next(
        full[0].text[i : i + 2]
        for i in range(3, len(full[0].text) - 1)
        if full[0].text[i : i + 2].isascii() and full[0].text[i : i + 2].isprintable()
    )
    sampling = SamplingParams(max_new_tokens=24, stop=[stop])
    expected = plain.act(inputs, sampling)
    got = cached.act(inputs, sampling)
    assert [o.text for o in got] == [o.text for o in expected]
    assert got[0].text == full[0].text[: full[0].text.index(stop)]
    assert got[0].tokens < full[0].tokens
    cached.close()


def test_cached_sampling_is_reproducible_with_a_seed_and_varies_across_rows(model_path):
    inputs = [AgentInput(chat("You see a red ball."))] * 6
    sampling = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=10)
    first = HFAgent(model_path, **ON, seed=3, prefix_cache=8)
    second = HFAgent(model_path, **ON, seed=3, prefix_cache=8)
    replies = first.generate(inputs, sampling)
    assert replies == second.generate(inputs, sampling)
    assert len({r[0] for r in replies}) > 1  # equal prompts, their own samples
    # n > 1 samples per prompt go through `generate` (no cache) and still come back n each.
    many = first.generate(inputs[:2], SamplingParams(temperature=1.0, n=3, max_new_tokens=6))
    assert [len(r) for r in many] == [3, 3]
    first.close()
    second.close()


def test_kv_buffers_grow_for_longer_conversations_without_changing_replies(model_path, plain):
    cached = HFAgent(model_path, **ON, prefix_cache=4)
    sampling = SamplingParams(max_new_tokens=6)
    short = [AgentInput(chat("A red ball."))]
    assert [o.text for o in cached.act(short, sampling)] == [o.text for o in plain.act(short, sampling)]
    capacity = cached.decoder.kv.keys[0].shape[2]
    long = [AgentInput(chat("A red ball.", turns=40)), AgentInput(chat("A key.", turns=3))]
    assert [o.text for o in cached.act(long, sampling)] == [o.text for o in plain.act(long, sampling)]
    assert cached.decoder.kv.keys[0].shape[2] > capacity and cached.decoder.kv.keys[0].shape[0] >= 2
    cached.close()


def test_a_conversation_that_skips_a_call_continues_from_its_own_cache(model_path, plain):
    """Calls write the two buffer sets in turn: an entry left in the set being rewritten keeps its keys."""
    cached = HFAgent(model_path, **ON, prefix_cache=8)
    sampling = SamplingParams(max_new_tokens=6)
    a, d = chat("Room A: a red ball.", turns=6), chat("Room D: a grey key.", turns=1)

    def step(conversations):
        inputs = [AgentInput(messages=c) for c in conversations]
        expected = [o.text for o in plain.act(inputs, sampling)]
        assert [o.text for o in cached.act(inputs, sampling)] == expected
        for conversation, reply in zip(conversations, expected):
            conversation += [{"role": "assistant", "content": reply}, {"role": "user", "content": "Go on."}]

    step([a, chat("A long room.", turns=30)])  # a in row 0 of the first set, sized for a long row
    step([d])  # d in row 0 of the second set
    hits = cached.prefix_cache.hits
    # The first set again: d (shorter) goes to row 0 — where a's cached keys were — before a is read.
    step([a, d])
    assert cached.prefix_cache.hits - hits > 100  # both came from the cache
    assert_entries_hold_the_models_keys(cached)
    step([a, d, chat("Room C: a purple box.")])
    assert_entries_hold_the_models_keys(cached)
    cached.close()


def assert_entries_hold_the_models_keys(agent):
    """Every cache entry's keys/values are what the model computes for its tokens from scratch."""
    for entry in agent.prefix_cache.entries.values():
        ids = torch.tensor([entry.ids], device=agent.model.device)
        with torch.inference_mode():
            cache = agent.model(input_ids=ids, use_cache=True).past_key_values
        for layer, (keys, values) in enumerate(entry.layers):
            assert torch.allclose(keys, cache.layers[layer].keys[0], atol=1e-4)
            assert torch.allclose(values, cache.layers[layer].values[0], atol=1e-4)


def test_a_new_conversation_sharing_a_start_leaves_the_running_ones_cached(model_path):
    cached = HFAgent(model_path, **ON, prefix_cache=8)
    sampling = SamplingParams(max_new_tokens=4)
    running = chat("Room A: a red ball.", turns=4)
    reply = cached.act([AgentInput(messages=running)], sampling)[0].text
    (first,) = cached.prefix_cache.entries.values()
    cached.act([AgentInput(messages=chat("Room B: a grey key."))], sampling)  # shares the system message
    assert any(e is first for e in cached.prefix_cache.entries.values())
    assert len(cached.prefix_cache.entries) == 2
    running += [{"role": "assistant", "content": reply}, {"role": "user", "content": "Go on."}]
    misses = cached.prefix_cache.misses
    cached.act([AgentInput(messages=running)], sampling)
    assert cached.prefix_cache.misses - misses < 40  # only the new turn (and the re-read reply) was prefilled
    assert not any(e is first for e in cached.prefix_cache.entries.values())  # the longer one replaced it
    cached.close()


LLAMA_LIKE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 1024,
}
ARCHITECTURES = {
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", {"n_embd": 64, "n_layer": 2, "n_head": 2, "n_positions": 1024}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {**LLAMA_LIKE, "num_key_value_heads": 2}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {**LLAMA_LIKE, "num_key_value_heads": 2}),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {**LLAMA_LIKE, "num_key_value_heads": 1, "head_dim": 16}),
    "phi": ("PhiConfig", "PhiForCausalLM", LLAMA_LIKE),
}


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_other_architectures_continue_from_the_cache_with_the_same_replies(
    architecture, model_path, tmp_path
):
    """The decoder drives other transformers models (absolute positions, grouped-query attention) too."""
    import transformers
    from transformers import AutoTokenizer

    config_name, model_name, sizes = ARCHITECTURES[architecture]
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    config = getattr(transformers, config_name)(vocab_size=len(tokenizer), **sizes)
    torch.manual_seed(0)
    getattr(transformers, model_name)(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    plain, cached = HFAgent(str(tmp_path), **ON), HFAgent(str(tmp_path), **ON, prefix_cache=4)
    sampling = SamplingParams(max_new_tokens=6)
    conversation = chat("You see a red ball.")
    for _ in range(3):
        expected = plain.act([AgentInput(conversation)], sampling)[0].text
        assert cached.act([AgentInput(conversation)], sampling)[0].text == expected
        conversation += [{"role": "assistant", "content": expected}, {"role": "user", "content": "More."}]
    assert cached.prefix_cache.hits > 0
    plain.close()
    cached.close()
