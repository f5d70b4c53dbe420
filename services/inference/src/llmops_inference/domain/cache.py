"""Answers to repeated identical requests, per tenant, model version and prompt version."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from llmops_inference.domain.model import Answer


@dataclass(frozen=True)
class CacheKey:
    tenant: str
    model: str
    prompt: str
    question: str
    rag: bool
    top_k: int
    max_new_tokens: int
    # Retrieved chunk ids: a re-indexed knowledge base must not serve a stale answer.
    chunks: tuple[str, ...]


class AnswerCache:
    def __init__(self, max_entries: int, ttl_seconds: float) -> None:
        self.max_entries = max_entries
        self.ttl = ttl_seconds
        self._items: OrderedDict[CacheKey, tuple[float, Answer]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: CacheKey) -> Answer | None:
        item = self._items.get(key)
        if item is None or time.monotonic() - item[0] > self.ttl:
            self._items.pop(key, None)
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key: CacheKey, answer: Answer) -> None:
        if self.max_entries <= 0:
            return
        self._items[key] = (time.monotonic(), answer)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def delete_tenant(self, tenant: str) -> int:
        """Drops every answer cached for `tenant`; returns how many."""
        keys = [key for key in self._items if key.tenant == tenant]
        for key in keys:
            del self._items[key]
        return len(keys)

    def __len__(self) -> int:
        return len(self._items)
