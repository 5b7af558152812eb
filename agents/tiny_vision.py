"""A tiny vision-language checkpoint built from a config, with a character tokenizer: no download.

`build_tiny_vision_model(out_dir)` saves a randomly initialised LLaVA (a CLIP vision tower
and a Llama language model, a few thousand weights each) with its processor (a CLIP image
processor at 28x28 pixels, a character-level tokenizer, a minimal chat template), loadable
by `hf-vision:PATH` (`agents.hf_vision.HFVisionAgent`) and by transformers'
`AutoModelForImageTextToText`. An image becomes `image_tokens()` language-model tokens.
For tests and for trying multimodal tools on a CPU; it answers at random.
"""

from __future__ import annotations

from pathlib import Path

# One line per message, `<s>role:` then its parts; an image part is the `<image>` token.
TINY_VISION_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}:{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant:{% endif %}"
)
IMAGE_SIZE = 28
PATCH_SIZE = 14


def image_tokens() -> int:
    """Language-model tokens per image: one per patch (the CLS feature is dropped)."""
    return (IMAGE_SIZE // PATCH_SIZE) ** 2


def build_tiny_vision_model(
    out_dir: str | Path, text_layers: int = 1, heads: int = 2, hidden_size: int = 32, seed: int = 0
) -> Path:
    """Create a random tiny LLaVA and its processor in `out_dir`; returns the directory.

    `text_layers`, `heads`, `hidden_size`: the language model's depth, attention heads and
    width (the vision tower is one layer of the same width)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    if text_layers < 1 or heads < 1 or hidden_size % heads:
        raise ValueError("text_layers and heads must be >= 1 and hidden_size a multiple of heads")
    specials = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
    vocab = {token: i for i, token in enumerate(specials + [chr(c) for c in range(32, 127)] + ["\n"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()  # characters decode back to the text, not space-separated
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
        ),
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        chat_template=TINY_VISION_TEMPLATE,
        image_token="<image>",
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    text = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=text_layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=8192,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    vision = CLIPVisionConfig(
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=1,
        num_attention_heads=heads,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
    )
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=vocab["<image>"])
    torch.manual_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    LlavaForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out
