"""`BoundedCache`: a per-process LRU cache bounded by the total weight of what it holds.

For things built from values a client chooses (a catalogue of `num_products` products,
its search index): `functools.lru_cache` bounds the number of entries, not their size,
so four huge catalogues stay in memory for good. Here the bound is a weight (products,
bytes) and the least recently used entries go first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedCache(Generic[V]):
    """At most `max_weight` in total of `weight(value)` over the values kept, least recently used out first.

    A value heavier than `max_weight` on its own is built and returned, never kept.
    Thread-safe; two threads asking for the same missing key may both build it.
    """

    def __init__(self, max_weight: int, weight: Callable[[V], int] = lambda value: 1):
        self.max_weight = max_weight
        self.weight = weight
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value of `key`, made by `make()` if it is not kept."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
        value = make()
        weight = self.weight(value)
        with self._lock:
            if key in self._entries or weight > self.max_weight:
                return value
            self._entries[key] = (value, weight)
            self._total += weight
            while self._total > self.max_weight:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._total -= dropped
        return value

    @property
    def total_weight(self) -> int:
        return self._total

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._total = 0

    def __len__(self) -> int:
        return len(self._entries)
