"""Keep each conversation's KV cache across its turns, so a turn prefills only its new tokens.

An agent turn re-sends the whole conversation; its start is what the model already
encoded last turn. `PrefixCache` stores, per recent conversation, the token ids the
model has encoded and their keys/values; `lookup` finds the longest stored prefix of a
new prompt. `batch_cache` lines several rows' cached prefixes up (left-padded) into one
`DynamicCache` so a batch of conversations continues in one `generate` call.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch


@dataclass
class CacheEntry:
    ids: list[int]  # the tokens whose keys/values are held
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (heads, len, dim)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


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
            length = common_prefix(entry.ids, prompt)
            if length > best_len:
                best, best_len = key, length
        best_len = min(best_len, len(prompt) - 1)
        if best is None or best_len <= 0:
            return None, 0
        self.entries.move_to_end(best)
        return best, best_len

    def store(
        self, ids: list[int], layers: list[tuple[torch.Tensor, torch.Tensor]], replaces: int | None
    ) -> None:
        if replaces is not None:
            self.entries.pop(replaces, None)
        self.entries[self._next] = CacheEntry(ids, layers)
        self._next += 1
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


def batch_cache(rows: list[tuple[CacheEntry | None, int]], width: int, like: torch.Tensor, num_layers: int):
    """A `DynamicCache` of `width` positions: row i holds its entry's first `length` positions, left-padded."""
    from transformers import DynamicCache

    layers = []
    for layer in range(num_layers):
        keys, values = [], []
        for entry, length in rows:
            if entry is None or length == 0:
                keys.append(None)
                values.append(None)
            else:
                k, v = entry.layers[layer]
                keys.append(k[:, :length])
                values.append(v[:, :length])
        template = next(k for k in keys if k is not None)
        heads, _, dim = template.shape
        k_out = like.new_zeros((len(rows), heads, width, dim), dtype=template.dtype)
        v_out = like.new_zeros((len(rows), heads, width, dim), dtype=template.dtype)
        for i, (k, v) in enumerate(zip(keys, values)):
            if k is not None:
                k_out[i, :, width - k.shape[1] :] = k
                v_out[i, :, width - v.shape[1] :] = v
        layers.append((k_out, v_out))
    return DynamicCache(ddp_cache_data=layers)


def row_layers(cache, row: int, positions: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Row `row`'s keys/values at `positions` of a batched cache, as a cache entry holds them."""
    out = []
    for layer in cache.layers:
        out.append((layer.keys[row][:, positions].clone(), layer.values[row][:, positions].clone()))
    return out
