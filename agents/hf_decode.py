"""A decode loop for requests that need more than `model.generate` gives: the agent server's
constrained replies (an xgrammar grammar per row), each token's log-probability with the
most likely alternatives, OpenAI's presence/frequency penalties and logit bias, and each new
piece of text as it is generated (streaming).

Scores are the model's own: log-softmax of its logits before penalties, bias, grammar,
temperature or top-p. The token picked comes from the logits after all of those, in that
order (bias, penalties, grammar mask; then greedy at temperature 0, else temperature and
top-p sampling), so a grammar's tokens are never all filtered away by top-p.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from agents.base import SamplingParams, cut_at_stop
from agents.prefix_cache import top_p_filter
from agents.structured import Constraint, GrammarCache, held_back


@dataclass
class TokenScore:
    """One generated token: its log-probability and the `top` most likely tokens at its place."""

    token: int
    logprob: float
    top: list[tuple[int, float]] = field(default_factory=list)


TextSink = Callable[[int, str, list[TokenScore]], None]  # (sample, new text, its tokens' scores)


@dataclass
class DecodeRequest:
    """One prompt and what its replies need beyond sampling."""

    prompt: list[int]
    constraint: Constraint | None = None
    top_logprobs: int | None = None  # None: no scores; k: the chosen token's and the k most likely
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    hold: tuple[str, ...] = ()  # streamed text stops short of these (a tool call's start)
    on_text: TextSink | None = None
    cancelled: Callable[[], bool] | None = None


@dataclass
class DecodedSample:
    text: str  # up to EOS, a stop string or the grammar's end; special tokens left out
    tokens: int  # tokens generated
    finish: str  # "stop" or "length"
    scores: list[TokenScore] | None = None


@dataclass
class _Row:
    request: DecodeRequest
    index: int  # the request's place in the call
    sample: int
    matcher: Any = None
    ids: list[int] = field(default_factory=list)
    scores: list[TokenScore] = field(default_factory=list)
    text: str = ""
    shown: int = 0  # characters of `text` passed to `on_text`
    unsent: int = 0  # scores not yet passed to `on_text`
    done: bool = False
    finish: str = "length"


class ScoredDecoder:
    """`decode` for one model and tokenizer (a causal LM that takes `position_ids` and a cache)."""

    def __init__(self, model: Any, tokenizer: Any, eos_token_ids: set[int], pad_token_id: int):
        self.model = model
        self.tokenizer = tokenizer
        self.eos = set(eos_token_ids)
        self.pad = pad_token_id
        self._grammars: GrammarCache | None = None
        self._lock = threading.Lock()
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.keeps_logits = "logits_to_keep" in params

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    @property
    def grammars(self) -> GrammarCache:
        with self._lock:  # request threads check their constraints while the model's thread decodes
            if self._grammars is None:
                self._grammars = GrammarCache(self.tokenizer, self.vocab_size, sorted(self.eos))
            return self._grammars

    def token_bytes(self, token: int) -> bytes:
        return self.grammars.token_bytes(token)

    def decode(
        self, requests: list[DecodeRequest], sampling: SamplingParams, samples: int
    ) -> list[list[DecodedSample]]:
        """`samples` replies per request, generated together in one batch."""
        rows = [
            _Row(request, i, s, self.grammars.matcher(request.constraint) if request.constraint else None)
            for i, request in enumerate(requests)
            for s in range(samples)
        ]
        with torch.inference_mode():
            self._run(rows, sampling)
        out: list[list[DecodedSample]] = [[] for _ in requests]
        for row in rows:
            scores = row.scores if row.request.top_logprobs is not None else None
            out[row.index].append(DecodedSample(row.text, len(row.ids), row.finish, scores))
        return out

    # ---- the loop ---------------------------------------------------------------------
    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any):
        extra = {"logits_to_keep": 1} if self.keeps_logits else {}
        output = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{self.cache_arg: cache},
            **extra,
        )
        return output.logits[:, -1].float()

    def _run(self, rows: list[_Row], sampling: SamplingParams) -> None:
        from transformers import DynamicCache

        device = self.model.device
        prompts = [row.request.prompt for row in rows]
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[self.pad] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        logits = self._forward(input_ids, mask, positions, cache)
        vocab = logits.shape[-1]
        adjust = _Adjustments(rows, vocab, device)
        bitmask = None
        if any(row.matcher is not None for row in rows):
            import xgrammar

            bitmask = xgrammar.allocate_token_bitmask(len(rows), vocab)
        last = positions[:, -1:]
        for step in range(sampling.max_new_tokens):
            tokens = self._pick(rows, logits, adjust, bitmask, sampling)
            for r, (row, token) in enumerate(zip(rows, tokens)):
                if not row.done:
                    self._advance(row, r, token, logits, adjust, sampling, step)
            if all(row.done for row in rows):
                break
            feed = torch.tensor([[self.pad if row.done else row.ids[-1]] for row in rows], device=device)
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=mask.dtype, device=device)], dim=1)
            last = last + 1
            logits = self._forward(feed, mask, last, cache)
        for row in rows:
            if not row.done:
                self._finish(row, "length")

    def _pick(
        self,
        rows: list[_Row],
        logits: torch.Tensor,
        adjust: _Adjustments,
        bitmask: Any,
        sampling: SamplingParams,
    ) -> list[int]:
        scores = adjust.apply(logits)
        if bitmask is not None:
            import xgrammar

            xgrammar.reset_token_bitmask(bitmask)
            constrained = []
            for r, row in enumerate(rows):
                if row.matcher is not None and not row.done and not row.matcher.is_terminated():
                    row.matcher.fill_next_token_bitmask(bitmask, r)
                    constrained.append(r)
            if constrained:
                if scores is logits:
                    scores = logits.clone()
                xgrammar.apply_token_bitmask_inplace(scores, bitmask.to(scores.device), indices=constrained)
        if sampling.temperature <= 0:
            return scores.argmax(dim=-1).tolist()
        scores = top_p_filter(scores / sampling.temperature, sampling.top_p)
        return torch.multinomial(scores.softmax(dim=-1), 1).squeeze(-1).tolist()

    def _advance(
        self,
        row: _Row,
        r: int,
        token: int,
        logits: torch.Tensor,
        adjust: _Adjustments,
        sampling: SamplingParams,
        step: int,
    ) -> None:
        request = row.request
        if request.cancelled is not None and request.cancelled():
            self._finish(row, "stop")
            return
        row.ids.append(token)
        adjust.count(r, token)
        if request.top_logprobs is not None:
            row.scores.append(_score(logits[r], token, request.top_logprobs))
            row.unsent += 1
        ended = token in self.eos
        if ended and row.scores:
            row.scores.pop()  # the end-of-reply token is no part of the text
            row.unsent = max(0, row.unsent - 1)
        if row.matcher is not None and not row.matcher.is_terminated():
            row.matcher.accept_token(token)
            ended = ended or row.matcher.is_terminated()
        if ended or step == sampling.max_new_tokens - 1 or sampling.stop or request.on_text is not None:
            row.text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
        stop = [s for s in sampling.stop if s]
        if stop and any(s in row.text for s in stop):
            row.text = cut_at_stop(row.text, stop)
            ended = True
            # Scores of the tokens that only wrote the stop string go too.
            while len(row.scores) > 1 and len(
                self.tokenizer.decode(row.ids[: len(row.scores) - 1], skip_special_tokens=True)
            ) >= len(row.text):
                row.scores.pop()
                row.unsent = max(0, row.unsent - 1)
        if ended:
            self._finish(row, "stop")
        elif request.on_text is not None:
            self._show(row, held_back(row.text.rstrip("\ufffd"), [*stop, *request.hold]))

    def _show(self, row: _Row, upto: int) -> None:
        if upto > row.shown:
            scores = row.scores[len(row.scores) - row.unsent :]
            row.request.on_text(row.sample, row.text[row.shown : upto], scores)
            row.shown, row.unsent = upto, 0

    def _finish(self, row: _Row, finish: str) -> None:
        row.done = True
        row.finish = finish
        if row.request.on_text is not None:
            # What is left goes out with the reply's end, apart from a tool call's text,
            # which the caller reads from the whole reply.
            self._show(row, held_back(row.text, list(row.request.hold)))


def _score(logits: torch.Tensor, token: int, top: int) -> TokenScore:
    logprobs = logits.log_softmax(dim=-1)
    best: list[tuple[int, float]] = []
    if top > 0:
        values, indices = logprobs.topk(min(top, logprobs.shape[-1]))
        best = list(zip(indices.tolist(), values.tolist()))
    return TokenScore(token, float(logprobs[token]), best)


class _Adjustments:
    """Logit bias and presence/frequency penalties per row (OpenAI's definitions), where any is set."""

    def __init__(self, rows: list[_Row], vocab: int, device: Any):
        requests = [row.request for row in rows]
        self.bias = None
        if any(r.logit_bias for r in requests):
            self.bias = torch.zeros((len(rows), vocab), device=device)
            for i, request in enumerate(requests):
                for token, value in request.logit_bias.items():
                    if 0 <= token < vocab:
                        self.bias[i, token] = value
        self.counts = None
        if any(r.presence_penalty or r.frequency_penalty for r in requests):
            self.counts = torch.zeros((len(rows), vocab), device=device)
            self.presence = torch.tensor([r.presence_penalty for r in requests], device=device)[:, None]
            self.frequency = torch.tensor([r.frequency_penalty for r in requests], device=device)[:, None]

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if self.bias is None and self.counts is None:
            return logits
        scores = logits.clone()
        if self.bias is not None:
            scores += self.bias
        if self.counts is not None:
            scores -= self.presence * (self.counts > 0) + self.frequency * self.counts
        return scores

    def count(self, row: int, token: int) -> None:
        if self.counts is not None and token < self.counts.shape[1]:
            self.counts[row, token] += 1
