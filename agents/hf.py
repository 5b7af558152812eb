"""A Hugging Face transformers backend: any local causal-LM checkpoint, on CPU or GPU.

`HFAgent(path)` loads the model and tokenizer once; `generate` chat-templates each
conversation, left-truncates it to the context window, and samples a whole batch in one
`model.generate` call (left padding, KV cache). The prompt and stop-string helpers here
are shared with `agents.vllm_backend`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from agents.base import Agent, AgentInput, AgentOutput, Message, SamplingParams, cut_at_stop
from agents.hf_decode import DecodedSample, DecodeRequest, ScoredDecoder
from agents.prefix_cache import CachedDecoder, PrefixCache, top_p_filter
from agents.structured import PROBE_TOOL, ToolCallFormat, detect_tool_format


class TokenCountingAgent(Agent):
    """An agent whose `generate` records the tokens it generated for each input.

    Subclasses set `last_token_counts` (one count per input, all samples together) in
    `generate`; `act` copies them into `AgentOutput.tokens`. Parsing stays in `Agent.act`.
    One model serves one call at a time: concurrent `act` calls (threads sharing an agent)
    wait for each other, so each reads its own counts.
    """

    last_token_counts: list[int]

    def act(self, inputs: list[AgentInput], sampling: SamplingParams | None = None) -> list[AgentOutput]:
        lock = self.__dict__.setdefault("_act_lock", threading.Lock())
        with lock:
            self.last_token_counts = []
            outputs = super().act(inputs, sampling)
            for output, count in zip(outputs, self.last_token_counts):
                output.tokens = count
            return outputs


def text_only(message: Message) -> Message:
    """`message` with list content (OpenAI multimodal parts) flattened to its text parts, and
    the arguments of its tool calls (OpenAI sends JSON text) as the objects templates expect."""
    content = message.get("content")
    if isinstance(content, list):
        texts = [part if isinstance(part, str) else part.get("text", "") for part in content]
        content = "\n".join(text for text in texts if text)
    message = {**message, "content": content or ""}
    if message.get("tool_calls"):
        message["tool_calls"] = [template_tool_call(call) for call in message["tool_calls"]]
    return message


def template_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI tool call with its `arguments` decoded from JSON text where they are."""
    function = dict(call.get("function") or {})
    arguments = function.setdefault("arguments", {})
    if isinstance(arguments, str):
        try:
            function["arguments"] = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            pass  # not JSON: the template writes the text as it is
    return {**call, "function": function}


def render_chat(
    tokenizer: Any,
    messages: list[Message],
    chat_template: str | None = None,
    generation_prompt: bool = True,
    tools: list[dict[str, Any]] | None = None,
) -> str:
    """The chat-template text of `messages` (with `tools` where the template shows them)."""
    if chat_template is None and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "the tokenizer has no chat template: pass chat_template= (a Jinja string) to the agent"
        )
    options = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(
        messages,
        chat_template=chat_template,
        add_generation_prompt=generation_prompt,
        tokenize=False,
        **options,
    )


def encode(tokenizer: Any, text: str) -> list[int]:
    # The template's text already holds its special tokens (BOS included where it uses one).
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class PromptEncoder:
    """`encode` that re-uses the token ids of text it has seen: a conversation's next prompt
    repeats the last one, so only the text after its last special token is tokenized anew.

    Tokenizers split special tokens (`<|im_end|>`, ...) out before anything else, so the ids
    of `A + special + B` are the ids of `A + special` followed by those of `B`. The first
    `checks` encodings are also done in full and compared; a tokenizer for which that does
    not hold gets full encoding from then on.
    """

    def __init__(self, tokenizer: Any, capacity: int = 256, checks: int = 32):
        self.tokenizer = tokenizer
        self.capacity = capacity
        self.checks = checks
        self.enabled = True
        self.entries: OrderedDict[str, list[int]] = OrderedDict()  # text ending in a special token -> ids
        specials = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        self.special = {
            i: t.content for i, t in specials.items() if getattr(t, "special", False) and t.content
        }

    def __call__(self, text: str) -> list[int]:
        if not self.enabled or not self.special:
            return encode(self.tokenizer, text)
        best = max((key for key in self.entries if text.startswith(key)), key=len, default="")
        ids = (self.entries[best] if best else []) + encode(self.tokenizer, text[len(best) :])
        if best:
            self.entries.move_to_end(best)
        if self.checks > 0:
            self.checks -= 1
            if ids != encode(self.tokenizer, text):
                self.enabled = False
                self.entries.clear()
                return encode(self.tokenizer, text)
        for position in range(len(ids) - 1, -1, -1):  # remember the text up to its last special token
            content = self.special.get(ids[position])
            if content is not None:
                cut = text.rfind(content) + len(content)
                if cut > len(best):
                    self.entries[text[:cut]] = ids[: position + 1]
                    while len(self.entries) > self.capacity:
                        self.entries.popitem(last=False)
                break
        return ids


def chat_prompt_ids(
    tokenizer: Any,
    messages: list[Message],
    max_tokens: int | None = None,
    chat_template: str | None = None,
    encoder: PromptEncoder | None = None,
    truncation_step: int = 1,
    tools: list[dict[str, Any]] | None = None,
) -> list[int]:
    """Token ids of `messages` chat-templated with the generation prompt, at most `max_tokens` long.

    A conversation that is too long loses its oldest turns first (the system message
    stays, and what is kept starts at a user turn). They go in steps of `truncation_step`
    tokens: the turns dropped add up to the smallest multiple of the step that makes the
    rest fit, so as a conversation grows its kept part keeps the same start for several
    turns (and a prefix cache keeps serving it) instead of moving every turn; a step of 1
    drops just enough. If the last turn alone is still too long, tokens are cut from the
    left, keeping the system message where it takes at most half the budget. `tools` (an
    OpenAI tools list) go to the template with every rendering.
    """
    messages = [text_only(message) for message in messages]
    text = render_chat(tokenizer, messages, chat_template, tools=tools)
    ids = encoder(text) if encoder is not None else encode(tokenizer, text)
    if max_tokens is None or len(ids) <= max_tokens:
        return ids
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    turns = messages[len(head) :]
    # Where the kept part may start: a user turn, else the last message.
    starts = sorted({j for j in range(1, len(turns)) if turns[j]["role"] == "user"} | {len(turns) - 1})
    starts = [j for j in starts if j >= 1]
    lengths: dict[int, list[int]] = {}

    def kept(j: int) -> list[int]:
        if j not in lengths:
            lengths[j] = encode(
                tokenizer, render_chat(tokenizer, head + turns[j:], chat_template, tools=tools)
            )
        return lengths[j]

    def first_start(dropped_at_least: int) -> int | None:
        """The first start (binary search: the kept part shrinks as the start moves) dropping enough."""
        lo, hi = 0, len(starts)
        while lo < hi:
            mid = (lo + hi) // 2
            if len(ids) - len(kept(starts[mid])) >= dropped_at_least:
                hi = mid
            else:
                lo = mid + 1
        return starts[lo] if lo < len(starts) else None

    excess = len(ids) - max_tokens
    step = max(1, truncation_step)
    start = first_start(-(-excess // step) * step)
    if start is None:
        start = first_start(excess)
    if start is not None:
        return kept(start)
    turns = turns[-1:]
    ids = encode(tokenizer, render_chat(tokenizer, head + turns, chat_template, tools=tools))
    head_ids: list[int] = []
    if head:
        text = render_chat(tokenizer, head + turns, chat_template, tools=tools)
        head_text = render_chat(tokenizer, head, chat_template, generation_prompt=False, tools=tools)
        if text.startswith(head_text):
            head_ids = encode(tokenizer, head_text)
            if len(head_ids) <= max_tokens // 2:
                ids = encode(tokenizer, text[len(head_text) :])
            else:
                head_ids = []
    return head_ids + ids[max(0, len(ids) - (max_tokens - len(head_ids))) :]


def prompt_limit(max_context_tokens: int | None, max_new_tokens: int) -> int | None:
    """The most prompt tokens that leave room for `max_new_tokens` (None: no limit)."""
    if max_context_tokens is None:
        return None
    if max_new_tokens >= max_context_tokens:
        raise ValueError(
            f"max_new_tokens ({max_new_tokens}) leaves no room in a context of {max_context_tokens} tokens"
        )
    return max_context_tokens - max_new_tokens


def agent_truncation_step(agent: Any, limit: int | None) -> int:
    """The agent's `truncation_step`, by default a quarter of the prompt budget."""
    if agent.truncation_step is not None:
        return agent.truncation_step
    return max(1, (limit or 0) // 4)


def sampling_options(sampling: SamplingParams) -> dict[str, Any]:
    """`GenerationConfig` options for `sampling`: greedy at temperature 0; otherwise
    top-k off (top_k=0), as in vLLM and the OpenAI API."""
    if sampling.temperature <= 0:
        return {"do_sample": False}
    return {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}


def pad_left(tokenizer: Any) -> Any:
    """`tokenizer` set to pad on the left (batched generation), with a pad token (its EOS if it has none)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """The ids that end a reply: the model's generation config's, else the tokenizer's EOS."""
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    return {token for token in (eos if isinstance(eos, list) else [eos]) if token is not None}


def resolve_dtype(dtype: str | torch.dtype, device: str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16")
    return resolved


class HFAgent(TokenCountingAgent):
    """A local Hugging Face causal LM as an agent.

    - `path`: a checkpoint directory (config, weights, tokenizer with a chat template).
    - `device`: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
    - `dtype`: "auto" (bfloat16/float16 on GPU, float32 on CPU), a name, or a `torch.dtype`.
    - `batch_size`: most sequences (conversations x samples) in one `generate` call
      (at least one conversation).
    - `max_context_tokens`: prompt + new tokens; longer prompts are left-truncated
      (see `chat_prompt_ids`). Default: the model's `max_position_embeddings`.
    - `seed`: makes sampling reproducible (call k uses `seed + k`; torch's global RNG is untouched).
    - `chat_template`: overrides the tokenizer's template (for base models without one).
    - `prefix_cache`: how many conversations keep their KV cache between calls (0: none).
    - `truncation_step`: a conversation past the context loses its oldest turns in steps
      of this many tokens (default: a quarter of the prompt budget; see `chat_prompt_ids`).
      A conversation's next turn then prefills only its new tokens (greedy or n=1 calls).

    `model` and `tokenizer` are the loaded objects; `close()` frees them.
    """

    accepts_images = False  # prompts are text: image parts would be dropped

    def __init__(
        self,
        path: str,
        device: str = "auto",
        dtype: str | torch.dtype = "auto",
        batch_size: int = 64,
        max_context_tokens: int | None = None,
        seed: int | None = None,
        chat_template: str | None = None,
        prefix_cache: int = 0,
        truncation_step: int | None = None,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.name = f"hf:{path}"
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.batch_size = batch_size
        self.seed = seed
        self.chat_template = chat_template
        self.calls = 0
        self.last_token_counts = []
        self.prefix_cache = PrefixCache(prefix_cache) if prefix_cache > 0 else None
        self.truncation_step = truncation_step
        self.tokenizer = pad_left(AutoTokenizer.from_pretrained(path))
        self.encoder = PromptEncoder(self.tokenizer)
        self.pad_token_id = self.tokenizer.pad_token_id or 0  # masked out of every prompt: any id will do
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype, self.device))
        self.model.to(self.device).eval()
        self.max_context_tokens = max_context_tokens or getattr(
            self.model.config, "max_position_embeddings", None
        )
        self.eos_token_ids = eos_token_ids(self.model, self.tokenizer)
        self.decoder = CachedDecoder(self.model, self.prefix_cache) if self.prefix_cache is not None else None
        self._scored_decoder: ScoredDecoder | None = None

    def generate(self, inputs: list[AgentInput], sampling: SamplingParams) -> list[list[str]]:
        """`sampling.n` replies per input; `last_token_counts` gets the tokens generated per input."""
        if self.model is None:
            raise RuntimeError("the agent is closed")
        limit = prompt_limit(self.max_context_tokens, sampling.max_new_tokens)
        prompts = [
            chat_prompt_ids(
                self.tokenizer,
                item.messages,
                limit,
                self.chat_template,
                self.encoder,
                agent_truncation_step(self, limit),
            )
            for item in inputs
        ]
        greedy = sampling.temperature == 0
        samples = 1 if greedy else sampling.n  # greedy samples are all the same: generate one
        per_call = max(1, self.batch_size // samples)
        # Similar lengths share a call, so less of each forward is padding.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        replies: list[list[str]] = [[] for _ in prompts]
        counts = [0] * len(prompts)
        with self.seeded_rng():
            for start in range(0, len(order), per_call):
                chunk = order[start : start + per_call]
                texts, lengths = self.generate_ids([prompts[i] for i in chunk], sampling, samples)
                for j, i in enumerate(chunk):
                    mine = texts[j * samples : (j + 1) * samples]
                    replies[i] = mine * sampling.n if greedy else mine
                    counts[i] = sum(lengths[j * samples : (j + 1) * samples])
        self.calls += 1
        self.last_token_counts = counts
        return replies

    # ---- the agent server's richer requests ---------------------------------------------
    @property
    def scored_decoder(self) -> ScoredDecoder:
        """The decode loop for constrained, scored or streamed replies (`agents.hf_decode`)."""
        if self.model is None:
            raise RuntimeError("the agent is closed")
        if self._scored_decoder is None:
            self._scored_decoder = ScoredDecoder(
                self.model, self.tokenizer, self.eos_token_ids, self.pad_token_id
            )
        return self._scored_decoder

    @property
    def tool_call_format(self) -> ToolCallFormat | None:
        """How the chat template has the model write tool calls; None where it shows no tools
        or writes calls in a format `agents.structured` does not read."""
        if not hasattr(self, "_tool_call_format"):
            probe = [{"role": "user", "content": "hi"}]
            try:
                plain = render_chat(self.tokenizer, probe, self.chat_template)
                shown = render_chat(self.tokenizer, probe, self.chat_template, tools=[PROBE_TOOL])
                self._tool_call_format = detect_tool_format(plain, shown)
            except Exception:  # a template that fails on tools has no usable tool support
                self._tool_call_format = None
        return self._tool_call_format

    def prompt_ids(
        self, messages: list[Message], max_new_tokens: int, tools: list[dict[str, Any]] | None = None
    ) -> list[int]:
        """The prompt `generate` would give `messages` (with `tools` shown by the template)."""
        limit = prompt_limit(self.max_context_tokens, max_new_tokens)
        step = agent_truncation_step(self, limit)
        return chat_prompt_ids(
            self.tokenizer, messages, limit, self.chat_template, self.encoder, step, tools=tools
        )

    def decode(self, requests: list[DecodeRequest], sampling: SamplingParams) -> list[list[DecodedSample]]:
        """`sampling.n` replies per request from `ScoredDecoder` (greedy: one, repeated);
        `last_token_counts` as in `generate`."""
        greedy = sampling.temperature == 0
        samples = 1 if greedy else sampling.n
        if greedy and sampling.n > 1:
            requests = [fan_out(request, sampling.n) for request in requests]
        per_call = max(1, self.batch_size // samples)
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt))
        replies: list[list[DecodedSample]] = [[] for _ in requests]
        with self.seeded_rng():
            for start in range(0, len(order), per_call):
                chunk = order[start : start + per_call]
                decoded = self.scored_decoder.decode([requests[i] for i in chunk], sampling, samples)
                for i, mine in zip(chunk, decoded):
                    replies[i] = mine * sampling.n if greedy else mine
        self.calls += 1
        self.last_token_counts = [sum(sample.tokens for sample in mine[:samples]) for mine in replies]
        return replies

    @contextlib.contextmanager
    def seeded_rng(self) -> Iterator[None]:
        """Torch's RNG seeded with `seed + calls` inside, restored after; untouched without a seed."""
        if self.seed is None:
            yield
            return
        device = torch.device(self.device)
        devices = [device.index or torch.cuda.current_device()] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed + self.calls)
            yield

    def generate_ids(
        self, prompts: list[list[int]], sampling: SamplingParams, samples: int
    ) -> tuple[list[str], list[int]]:
        """`samples` replies per prompt and their token counts: from the prefix cache's own
        decode loop (one sample), else one `model.generate` call on left-padded `prompts`."""
        if self.prefix_cache is not None and samples == 1:
            return self.generate_cached(prompts, sampling)
        pad = self.pad_token_id
        width = max(len(ids) for ids in prompts)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts], device=self.device)
        attention_mask = torch.tensor(
            [[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=self.device
        )
        config = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            num_return_sequences=samples,
            stop_strings=[s for s in sampling.stop if s] or None,
            eos_token_id=sorted(self.eos_token_ids) or None,
            pad_token_id=pad,
            bos_token_id=self.model.generation_config.bos_token_id,
            use_cache=True,
            **sampling_options(sampling),
        )
        with torch.inference_mode():
            sequences = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                tokenizer=self.tokenizer,
            )
        texts, lengths = [], []
        for row in sequences[:, width:].tolist():
            length = self.generated_length(row)
            text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
            texts.append(cut_at_stop(text, sampling.stop))
            lengths.append(length)
        return texts, lengths

    def generate_cached(
        self, prompts: list[list[int]], sampling: SamplingParams
    ) -> tuple[list[str], list[int]]:
        """One reply per prompt, continuing each from its longest cached prefix (`CachedDecoder`)."""
        stop = [s for s in sampling.stop if s]

        def pick(logits: torch.Tensor) -> torch.Tensor:
            if sampling.temperature <= 0:
                return logits.argmax(dim=-1)
            logits = top_p_filter(logits / sampling.temperature, sampling.top_p)
            return torch.multinomial(logits.softmax(dim=-1), 1).squeeze(-1)

        def finished(index: int, generated: list[int]) -> bool:
            if generated[-1] in self.eos_token_ids:
                return True
            return bool(stop) and any(s in self.tokenizer.decode(generated) for s in stop)

        with torch.inference_mode():
            rows = self.decoder.run(prompts, sampling.max_new_tokens, pick, finished, self.pad_token_id)
        texts, lengths = [], []
        for row in rows:
            text = self.tokenizer.decode(row, skip_special_tokens=True)
            texts.append(cut_at_stop(text, sampling.stop))
            lengths.append(len(row))
        return texts, lengths

    def generated_length(self, row: list[int]) -> int:
        """Tokens generated in `row`: up to its first EOS (included), else without the padding after a stop."""
        for index, token in enumerate(row):
            if token in self.eos_token_ids:
                return index + 1
        length = len(row)
        while length and row[length - 1] == self.pad_token_id:
            length -= 1
        return length

    def close(self) -> None:
        """Drop the model and tokenizer and give their memory back."""
        if self.prefix_cache is not None:
            self.prefix_cache.clear()
        self.model = None
        self.tokenizer = None
        self._scored_decoder = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def fan_out(request: DecodeRequest, n: int) -> DecodeRequest:
    """`request` with its streamed text sent to all `n` samples (greedy: one reply stands for all)."""
    sink = request.on_text
    if sink is None:
        return request

    def to_all(sample: int, text: str, scores: list) -> None:
        for index in range(n):
            sink(index, text, scores)

    return dataclasses.replace(request, on_text=to_all)
