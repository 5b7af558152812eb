"""Keep each conversation's KV cache across its turns, so a turn prefills only its new tokens.

An agent turn re-sends the whole conversation; its start is what the model already
encoded last turn. `PrefixCache` stores, per recent conversation, the token ids the
model has encoded and their keys/values; `lookup` finds the longest stored prefix of a
new prompt.

`CachedDecoder` continues a batch of conversations from their cached prefixes with its
own decode loop over the model's forward (the model's attention, RoPE and weights; no
`generate`):
- every row is laid out from position 0 in one preallocated key/value buffer per layer
  (`RowCache`), so rows never carry left padding and a decode step writes in place;
- rows are prefilled in groups of similar new-token counts (few padded query tokens),
  then decoded together, one token per row per step, each row masked to its own length;
- at the end each row's keys/values (prompt and reply) go back into the `PrefixCache`.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class CacheEntry:
    ids: list[int]  # the tokens whose keys/values are held
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (heads, len, dim)
    prompt_len: int = 0  # how many of `ids` were the prompt (the rest: the reply)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class PrefixCache:
    """The KV caches of the `capacity` most recently used conversations."""

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self.entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self._next = 0
        self.hits = 0  # prompt tokens served from the cache
        self.misses = 0  # prompt tokens that had to be prefilled

    def lookup(self, prompt: list[int]) -> tuple[int | None, int]:
        """(entry key, reusable length) of the entry sharing the longest prefix with `prompt`.

        At least the prompt's last token is left to prefill (it produces the next logits)."""
        best, best_len = None, 0
        for key, entry in self.entries.items():
            ids = entry.ids
            # Only an entry that agrees with the prompt past `best_len` can do better.
            if min(len(ids), len(prompt)) <= best_len or ids[: best_len + 1] != prompt[: best_len + 1]:
                continue
            length = common_prefix(ids, prompt)
            if length > best_len:
                best, best_len = key, length
        best_len = min(best_len, len(prompt) - 1)
        if best is None or best_len <= 0:
            return None, 0
        self.entries.move_to_end(best)
        return best, best_len

    def continues(self, key: int | None, reused: int) -> bool:
        """Whether a prompt that reuses `reused` tokens of entry `key` is that conversation going on
        (it repeats the entry's whole prompt), rather than another one sharing its start."""
        entry = self.entries.get(key) if key is not None else None
        return entry is not None and reused >= entry.prompt_len

    def store(
        self,
        ids: list[int],
        layers: list[tuple[torch.Tensor, torch.Tensor]],
        replaces: int | None,
        prompt_len: int | None = None,
    ) -> None:
        """Keep `layers` for `ids`; `replaces` (an entry key, or None) is dropped."""
        if replaces is not None:
            self.entries.pop(replaces, None)
        self.entries[self._next] = CacheEntry(ids, layers, len(ids) if prompt_len is None else prompt_len)
        self._next += 1
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


class RowCache:
    """Per-layer key/value buffers of shape (rows, heads, capacity, dim), each row from position 0.

    The model's attention calls `update(keys, values, layer)`; the new keys/values go to
    `positions` (one per query token) of the rows `rows`, and the attention gets those
    rows' buffers up to `width`. The caller sets `rows`, `positions` and `width` before
    each forward. Buffers are kept between calls and grown when a call needs more; what
    a row holds past its own length is never attended to (the mask), and stale values
    are finite.
    """

    def __init__(self, num_layers: int):
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.num_layers = num_layers
        self.batch = 0  # rows and positions this call needs
        self.capacity = 0
        self.rows = slice(None)
        self.positions: torch.Tensor | None = None  # (rows, queries)
        self.width = 0

    def reserve(self, batch: int, capacity: int, like: torch.Tensor | None) -> None:
        """Make room for `batch` rows of `capacity` positions; `like` (1, heads, _, dim) gives
        the shape and dtype when no buffer exists yet (None: allocate at the first update)."""
        current = self.keys[0]
        if current is not None and current.shape[0] >= batch and current.shape[2] >= capacity:
            return
        if current is not None:  # grow by half at least, so a run of growing calls reallocates rarely
            batch = max(batch, current.shape[0])
            capacity = max(capacity, current.shape[2] * 3 // 2)
        self.batch, self.capacity = batch, capacity
        like = current if current is not None else like
        self.keys = [None] * self.num_layers
        self.values = [None] * self.num_layers
        if like is not None:
            for layer in range(self.num_layers):
                self.allocate(layer, like)

    def allocate(self, layer: int, like: torch.Tensor) -> None:
        shape = (self.batch, like.shape[1], self.capacity, like.shape[3])
        self.keys[layer] = like.new_zeros(shape)
        self.values[layer] = like.new_zeros(shape)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        if self.keys[layer_idx] is None:
            self.allocate(layer_idx, key_states)
        keys, values = self.keys[layer_idx][self.rows], self.values[layer_idx][self.rows]
        index = self.positions[:, None, :, None].expand(-1, key_states.shape[1], -1, key_states.shape[3])
        keys.scatter_(2, index, key_states.to(keys.dtype))
        values.scatter_(2, index, value_states.to(values.dtype))
        return keys[:, :, : self.width], values[:, :, : self.width]


def group_rows(
    new: list[int], total: list[int], overhead: int = 64, key_cost: float = 1 / 800
) -> list[tuple[int, int]]:
    """Split rows, in the order given, into runs [a, b) that are prefilled together.

    A run pads every row to its most new tokens and attends over its longest row, so it
    costs `overhead` (a forward's fixed cost, in token-equivalents) plus rows x most new
    tokens x (1 + `key_cost` x longest total). Returns the cheapest split (dynamic programming).
    """
    n = len(new)
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for b in range(1, n + 1):
        most_new, longest = 0, 0
        for a in range(b - 1, -1, -1):
            most_new, longest = max(most_new, new[a]), max(longest, total[a])
            cost = best[a] + overhead + (b - a) * most_new * (1 + key_cost * longest)
            if cost < best[b]:
                best[b], cut[b] = cost, a
    runs, b = [], n
    while b > 0:
        runs.append((cut[b], b))
        b = cut[b]
    return runs[::-1]


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Logits outside the smallest set of tokens whose probability reaches `top_p` set to -inf."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[..., -1] = False  # the most likely token always stays
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


class CachedDecoder:
    """Continue conversations from their cached prefixes: grouped prefill, then a shared decode loop.

    `model` is a transformers causal LM whose forward takes `position_ids`, a ready 4D
    attention mask and a cache object with `update(keys, values, layer)` (tested: Llama,
    GPT-2, Qwen2, Mistral, Gemma, Phi).
    """

    def __init__(self, model: Any, cache: PrefixCache, prefill_overhead: int = 64):
        self.model = model
        self.cache = cache
        self.prefill_overhead = prefill_overhead
        self.num_layers = model.config.num_hidden_layers
        # Two sets of buffers, used in turn: a call reads cached prefixes from the entries
        # (views into the buffers the last call wrote) while it writes into the other set.
        self.buffers = [RowCache(self.num_layers), RowCache(self.num_layers)]
        self.turn = 0
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    @property
    def kv(self) -> RowCache:
        """The buffers the last call wrote."""
        return self.buffers[self.turn]

    def release(self, kv: RowCache) -> None:
        """Give the entries that still live in `kv`'s buffers copies of their own (it is about to be rewritten)."""
        if kv.keys[0] is None:
            return
        storage = kv.keys[0].untyped_storage().data_ptr()
        for entry in self.cache.entries.values():
            if entry.layers and entry.layers[0][0].untyped_storage().data_ptr() == storage:
                entry.layers = [(k.clone(), v.clone()) for k, v in entry.layers]

    def forward(
        self, kv: RowCache, input_ids: torch.Tensor, positions: torch.Tensor, keep: torch.Tensor | int
    ):
        """Logits of `input_ids` (rows, queries) at `positions`; `keep`: the query columns to return."""
        kv.positions = positions
        kv.width = int(positions.max()) + 1
        columns = torch.arange(kv.width, device=positions.device)
        allowed = columns[None, None, :] <= positions[:, :, None]  # causal, per row
        dtype = self.model.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=positions.device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        output = self.model(
            input_ids=input_ids,
            position_ids=positions,
            attention_mask=mask[:, None],
            use_cache=True,
            logits_to_keep=keep,
            **{self.cache_arg: kv},
        )
        return output.logits

    def run(
        self,
        prompts: list[list[int]],
        max_new_tokens: int,
        pick: Callable[[torch.Tensor], torch.Tensor],
        finished: Callable[[int, list[int]], bool],
        pad_token_id: int,
    ) -> list[list[int]]:
        """Generated token ids per prompt. `pick` maps (rows, vocab) logits to next tokens;
        `finished(row, generated)` says whether a row is done (EOS, stop string)."""
        found = [self.cache.lookup(ids) for ids in prompts]
        continued = [self.cache.continues(key, length) for key, length in found]
        reuse = [length for _, length in found]
        new = [len(ids) - r for ids, r in zip(prompts, reuse)]
        self.cache.hits += sum(reuse)
        self.cache.misses += sum(new)
        # Batch row -> prompt index, by prompt length then new tokens: similar rows share a prefill.
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), new[i]))
        batch = len(order)
        self.turn ^= 1
        kv = self.buffers[self.turn]
        self.release(kv)
        template = next((self.cache.entries[key] for key, _ in found if key is not None), None)
        like = template.layers[0][0][None] if template is not None else None
        kv.reserve(batch, max(reuse) + max(new) + max_new_tokens, like)
        # Cached prefixes into the buffers.
        if template is not None:
            for row, i in enumerate(order):
                key, r = found[i]
                if key is None:
                    continue
                for layer, (k, v) in enumerate(self.cache.entries[key].layers):
                    kv.keys[layer][row, :, :r] = k[:, :r]
                    kv.values[layer][row, :, :r] = v[:, :r]
        logits = self._prefill(kv, prompts, order, reuse, new, pad_token_id)
        generated = self._decode(kv, logits, prompts, order, max_new_tokens, pick, finished, pad_token_id)
        # Each row's keys/values (prompt and every generated token but the last) back into the
        # cache, as views of this call's buffers (`release` copies them before those are rewritten).
        out: list[list[int]] = [[] for _ in prompts]
        for row, i in enumerate(order):
            out[i] = generated[row]
            fed = len(prompts[i]) + len(generated[row]) - 1
            layers = [
                (kv.keys[layer][row, :, :fed], kv.values[layer][row, :, :fed])
                for layer in range(self.num_layers)
            ]
            # A conversation going on replaces its entry; one that only shared its start leaves it.
            replaces = found[i][0] if continued[i] else None
            self.cache.store(prompts[i] + generated[row][:-1], layers, replaces, len(prompts[i]))
        return out

    def _prefill(
        self,
        kv: RowCache,
        prompts: list[list[int]],
        order: list[int],
        reuse: list[int],
        new: list[int],
        pad_token_id: int,
    ) -> torch.Tensor:
        """Grouped prefill of the new tokens (batch row `row` holds prompt `order[row]`, whose
        first `reuse` tokens are cached); the logits at each row's last prompt token."""
        device = self.model.device
        next_logits: list[torch.Tensor | None] = [None] * len(order)
        runs = group_rows([new[i] for i in order], [len(prompts[i]) for i in order], self.prefill_overhead)
        for a, b in runs:
            width = max(new[i] for i in order[a:b])
            rows = order[a:b]
            ids = torch.full((b - a, width), pad_token_id, dtype=torch.long)
            for j, i in enumerate(rows):
                ids[j, : new[i]] = torch.tensor(prompts[i][reuse[i] :])
            starts = torch.tensor([reuse[i] for i in rows])
            positions = starts[:, None] + torch.arange(width)[None, :]
            last = sorted({new[i] - 1 for i in rows})
            kv.rows = slice(a, b)
            logits = self.forward(kv, ids.to(device), positions.to(device), torch.tensor(last, device=device))
            column = {position: c for c, position in enumerate(last)}
            for j, i in enumerate(rows):
                next_logits[a + j] = logits[j, column[new[i] - 1]]
        return torch.stack(next_logits)

    def _decode(
        self,
        kv: RowCache,
        logits: torch.Tensor,
        prompts: list[list[int]],
        order: list[int],
        max_new_tokens: int,
        pick: Callable[[torch.Tensor], torch.Tensor],
        finished: Callable[[int, list[int]], bool],
        pad_token_id: int,
    ) -> list[list[int]]:
        """The shared decode loop from the prefill's `logits`: the tokens generated per batch row."""
        device = self.model.device
        batch = len(order)
        kv.rows = slice(0, batch)
        lengths = torch.tensor([len(prompts[i]) for i in order], device=device)
        generated: list[list[int]] = [[] for _ in range(batch)]
        done = [False] * batch
        for step in range(max_new_tokens):
            tokens = pick(logits.float())
            for row, token in enumerate(tokens.tolist()):
                if not done[row]:
                    generated[row].append(token)
                    done[row] = finished(order[row], generated[row])
            if all(done) or step == max_new_tokens - 1:
                break
            feed = torch.tensor(
                [pad_token_id if done[row] else generated[row][-1] for row in range(batch)], device=device
            )
            logits = self.forward(kv, feed[:, None], (lengths + step)[:, None], 1)[:, -1]
        return generated
