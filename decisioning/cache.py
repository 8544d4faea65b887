"""A small bounded cache, the most recently used kept, safe to share between threads.

Built things that are costly and immutable are kept per process: models built from their
stored rows (:func:`decision_log.store.model_from_row`), SHAP's tree explainers
(:mod:`explain.api`), an explainer's checked explanations of a read-only log.  Each is keyed
by everything that determines the value, so a hit is the very value a rebuild would give.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedCache(Generic[V]):
    """Up to ``maxsize`` values; the least recently used goes first.

    ``get_or_build(key, build)`` builds outside the lock (two threads may build the same
    value at once; the first stored is kept and returned to both)."""

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, not {maxsize!r}")
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value: V) -> V:
        """Keep ``value`` under ``key`` unless one is kept already; returns the one kept."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            self._items[key] = value
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
            return value

    def get_or_build(self, key: Hashable, build: Callable[[], V]) -> V:
        hit = self.get(key)
        return hit if hit is not None else self.put(key, build())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
