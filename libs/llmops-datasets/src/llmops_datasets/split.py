"""Deterministic train/validation split and token length statistics."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

from llmops_datasets.records import canonical


def split_score(record: dict[str, Any], seed: int) -> float:
    """A number in [0, 1) fixed by the record's content and the seed alone (not its position)."""
    digest = hashlib.sha256(f"{seed}\x00{canonical(record)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(records: Sequence[dict[str, Any]], fraction: float, seed: int
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, validation): a record goes to validation when its score is below `fraction`.

    The same record lands on the same side whatever else the upload holds or in which order.
    With a fraction above 0 and at least two records, validation is never empty: the record
    with the lowest score goes there.
    """
    scores = [split_score(r, seed) for r in records]
    validation = {i for i, s in enumerate(scores) if s < fraction}
    if fraction > 0 and not validation and len(records) >= 2:
        validation.add(min(range(len(records)), key=scores.__getitem__))
    train = [r for i, r in enumerate(records) if i not in validation]
    return train, [r for i, r in enumerate(records) if i in validation]


def percentile(sorted_values: Sequence[int], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def token_stats(lengths: Sequence[int], max_seq_len: int, over_length: int = 0) -> dict[str, Any]:
    """min/mean/p50/p95/max of the kept records' token counts; `over_length` counts the input
    records that were longer than max_seq_len (skipped or cut into windows)."""
    values = sorted(lengths)
    return {
        "count": len(values),
        "total": sum(values),
        "min": values[0] if values else 0,
        "mean": round(sum(values) / len(values), 2) if values else 0.0,
        "p50": round(percentile(values, 0.5), 2),
        "p95": round(percentile(values, 0.95), 2),
        "max": values[-1] if values else 0,
        "max_seq_len": max_seq_len,
        "over_length": over_length,
    }
