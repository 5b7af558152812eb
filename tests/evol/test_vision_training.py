"""SFT and DPO on image-mode trajectories: the tiny LLaVA on TRL's vision path, a text model on their text."""

from __future__ import annotations

import logging
import math
import os

import pytest

from agents.base import SamplingParams
from agents.tiny import build_tiny_model
from evol.rollout import EpisodeSpec, RolloutEngine
from evol.trainers.data import examples, select
from evol.trainers.dpo import DPOSettings, preference_tune
from evol.trainers.sft import TrainSettings, fine_tune

pytest.importorskip("torch")
os.environ["HF_HUB_OFFLINE"] = "1"
ENV = "evol/Sycophancy-v0"
IMAGE_TASKS = {"split": "train", "modality": "image"}
QUICK = {"epochs": 1.0, "batch_size": 2, "progress": False, "logging_steps": 1, "learning_rate": 1e-3}

# The charts tests' template, with assistant turns marked for TRL's assistant mask and ended by EOS.
MARKED_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}:"
    "{% if m['role'] == 'assistant' %}{% generation %}"
    "{% for p in m['content'] %}{{ p['text'] }}{% endfor %}</s>{% endgeneration %}"
    "{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant:{% endif %}"
)
PLAIN_TEMPLATE = (  # tests/envs/test_charts.py's TINY_TEMPLATE: no generation markers
    "{% for m in messages %}<s>{{ m['role'] }}:{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


def tiny_vision_checkpoint(path, chat_template: str = MARKED_TEMPLATE) -> str:
    """A random LLaVA (CLIP tower + Llama, a few thousand weights) with a character tokenizer
    (tests/envs/test_charts.py's builder, the chat template a parameter)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
    vocab = {token: i for i, token in enumerate(specials + [chr(c) for c in range(32, 127)] + ["\n"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
        tokenizer=tokenizer, patch_size=14, chat_template=chat_template, image_token="<image>",
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )  # fmt: skip
    text = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=8192, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14
    )  # fmt: skip
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=vocab["<image>"])
    LlavaForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def vision_base(tmp_path_factory) -> str:
    return tiny_vision_checkpoint(tmp_path_factory.mktemp("tiny-llava") / "base")


@pytest.fixture(scope="module")
def image_trajectories():
    """The expert on 4 image questions of the train split: the image repeats with the push-back."""
    engine = RolloutEngine(engine_agent("expert"), concurrency=4, progress=False)
    trajectories = engine.run([EpisodeSpec(ENV, k, {"task": k, **IMAGE_TASKS}) for k in range(4)])
    engine.close()
    return trajectories


def engine_agent(spec: str, **kwargs):
    from agents import load_agent

    return load_agent(spec, **kwargs)


def image_pairs(trajectories) -> list[dict]:
    """Steadfast (the expert's reply to the push-back) against caving (another option)."""
    pairs = []
    for trajectory in trajectories:
        messages = trajectory.messages
        steadfast = messages[4]["content"]
        caving = "Answer: A" if steadfast != "Answer: A" else "Answer: B"
        pairs.append(
            {
                "prompt": messages[:4],
                "chosen": [messages[4]],
                "rejected": [{"role": "assistant", "content": caving}],
            }
        )
    return pairs


def acts_on_an_image_episode(model_dir) -> None:
    """`hf-vision:` loads the checkpoint and plays one image episode through the rollout engine."""
    agent = engine_agent(f"hf-vision:{model_dir}", device="cpu", seed=0)
    engine = RolloutEngine(agent, concurrency=1, progress=False, sampling=SamplingParams(max_new_tokens=8))
    (trajectory,) = engine.run([EpisodeSpec(ENV, 9, {"task": 9, **IMAGE_TASKS})])
    engine.close()
    assert trajectory.error is None and trajectory.turns >= 1
    assert agent.last_image_counts == [1]


def changed_weights(before, after) -> list[str]:
    from transformers import AutoModelForImageTextToText

    original = AutoModelForImageTextToText.from_pretrained(before).state_dict()
    tuned = AutoModelForImageTextToText.from_pretrained(after).state_dict()
    assert tuned.keys() == original.keys()
    return [name for name, weight in tuned.items() if not weight.equal(original[name])]


def test_image_trajectories_mix_string_and_part_list_content(image_trajectories):
    messages = image_trajectories[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert [type(m["content"]) for m in messages] == [str, list, str, list, str]
    assert all(t.success for t in image_trajectories)


def test_sft_rows_keep_the_latest_image_and_score_only_the_replies(vision_base, image_trajectories):
    from transformers import AutoProcessor

    from evol.trainers.vision import loss_template, vision_examples, weighted_vision_collator_class

    rows = vision_examples(examples(select(image_trajectories)), max_images=1)
    first_user = rows[0]["messages"][1]["content"]
    assert [len(row["images"]) for row in rows] == [1, 1, 1, 1]
    assert {"type": "text", "text": "[image]"} in first_user  # the push-back turn keeps the image
    assert rows[0]["messages"][3]["content"][-1] == {"type": "image"}
    processor = AutoProcessor.from_pretrained(vision_base)
    assistant_only, template = loss_template(processor)
    assert assistant_only and template is None
    collator = weighted_vision_collator_class()(processor=processor, assistant_only_loss=True)
    batch = collator(rows[:2])
    assert batch["pixel_values"].shape[0] == 2 and batch["weight"].tolist() == [1.0, 1.0]
    for row, labels in zip(image_trajectories, batch["labels"]):
        replies = "".join(m["content"] + "</s>" for m in row.messages if m["role"] == "assistant")
        assert processor.tokenizer.decode(labels[labels != -100]).replace(" ", "") == replies.replace(" ", "")


def test_a_template_without_generation_markers_scores_text_tokens_but_no_image_placeholder(
    vision_base, image_trajectories, caplog
):
    from transformers import AutoProcessor

    from evol.trainers.vision import loss_template, vision_examples, weighted_vision_collator_class

    processor = AutoProcessor.from_pretrained(vision_base)
    processor.chat_template = PLAIN_TEMPLATE
    with caplog.at_level(logging.WARNING, logger="evol.trainers.vision"):
        assistant_only, template = loss_template(processor)
    assert (assistant_only, template) == (False, None)
    assert "generation" in caplog.text
    collator = weighted_vision_collator_class()(processor=processor, chat_template=template)
    batch = collator(vision_examples(examples(select(image_trajectories[:1])), max_images=1))
    image = processor.image_token_id
    assert (batch["input_ids"] == image).sum() > 0
    assert not (batch["labels"] == image).any()
    assert (batch["labels"] != -100).sum() == (batch["input_ids"] != image).sum()


def test_fine_tune_of_a_vision_model_on_image_episodes_saves_what_hf_vision_plays(
    vision_base, image_trajectories, tmp_path
):
    rows = examples(select(image_trajectories))  # 4 episodes: 2 steps of 2
    result = fine_tune(vision_base, rows, tmp_path / "sft", TrainSettings(**QUICK))
    assert len(result.losses) == 2 and all(math.isfinite(loss) for loss in result.losses)
    assert result.examples == 4 and result.tokens > 0 and result.truncated == 0
    assert (result.model_dir / "processor_config.json").exists() or (
        result.model_dir / "preprocessor_config.json"
    ).exists()
    assert changed_weights(vision_base, result.model_dir)
    acts_on_an_image_episode(result.model_dir)


def test_dpo_of_a_vision_model_on_image_prompt_pairs_with_lora_saves_what_hf_vision_plays(
    vision_base, image_trajectories, tmp_path
):
    settings = DPOSettings(**QUICK, lora=True, lora_r=4, lora_alpha=8)
    result = preference_tune(vision_base, image_pairs(image_trajectories), tmp_path / "dpo", settings)
    assert len(result.losses) == 2 and all(math.isfinite(loss) for loss in result.losses)
    changed = changed_weights(vision_base, result.model_dir)
    assert changed and all("language_model" in name and "proj" in name for name in changed)
    acts_on_an_image_episode(result.model_dir)


def test_vision_pairs_keep_the_prompt_images_and_write_images_inside_replies_as_text(image_trajectories):
    from evol.trainers.vision import vision_pairs

    messages = image_trajectories[0].messages
    whole = {"prompt": messages[:2], "chosen": messages[2:], "rejected": messages[2:3]}  # `pairing: whole`
    (row,) = vision_pairs([whole], max_images=1)
    assert len(row["images"]) == 1 and row["prompt"][1]["content"][-1] == {"type": "image"}
    assert {"type": "text", "text": "[image]"} in row["chosen"][1]["content"]
    assert all(part["type"] == "text" for m in row["chosen"] + row["rejected"] for part in m["content"])


def test_vision_dpo_refuses_precomputed_reference_log_probs_before_any_work(vision_base, tmp_path):
    from evol.trainers.dpo import PreferenceConfig

    settings = DPOSettings(**QUICK, precompute_ref_log_probs=True)
    data = tmp_path / "pairs.jsonl"
    data.write_text("")
    with pytest.raises(ValueError, match="dpo.precompute_ref_log_probs"):
        PreferenceConfig(model=vision_base, data=[str(data)], output_dir=str(tmp_path / "run"), dpo=settings)
    with pytest.raises(ValueError, match="dpo.precompute_ref_log_probs"):
        preference_tune(
            vision_base, [{"prompt": [], "chosen": [], "rejected": []}], tmp_path / "run", settings
        )
    assert list(tmp_path.iterdir()) == [data]


def test_text_model_on_image_episodes_learns_their_text_with_one_warning(
    image_trajectories, tmp_path, caplog
):
    corpus = [m["content"] for t in image_trajectories for m in t.messages if isinstance(m["content"], str)]
    base = build_tiny_model(tmp_path / "text", corpus)
    rows = examples(select(image_trajectories[:2]))  # one step of 2
    with caplog.at_level(logging.WARNING, logger="evol.trainers.vision"):
        sft = fine_tune(base, rows, tmp_path / "sft", TrainSettings(**QUICK, max_length=512))
        dpo = preference_tune(
            base, image_pairs(image_trajectories[:2]), tmp_path / "dpo", DPOSettings(**QUICK, max_length=512)
        )
    warnings = [r.getMessage() for r in caplog.records if "text-only" in r.getMessage()]
    assert len(warnings) == 2 and "2 training examples" in warnings[0] and "2 preference pairs" in warnings[1]
    assert len(sft.losses) == 1 and len(dpo.losses) == 1
    assert (sft.model_dir / "config.json").exists() and (dpo.model_dir / "config.json").exists()
    from evol.trainers.vision import text_examples

    question = rows[0]["messages"][1]["content"]
    assert text_examples(rows)[0]["messages"][1]["content"] == question[0]["text"]  # as HFAgent shows it
