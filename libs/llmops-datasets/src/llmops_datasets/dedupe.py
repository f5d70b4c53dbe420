"""Exact duplicates (hash of the normalised text) and near duplicates (MinHash LSH on word
shingles, datasketch). The first occurrence of a group is kept, in upload order."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_WORD = re.compile(r"\w+", re.UNICODE)


def normalise(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: what 'the same text' means here."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_hash(text: str) -> str:
    return hashlib.sha256(normalise(text).encode()).hexdigest()


def shingles(text: str, size: int) -> set[str]:
    """Word n-grams of the normalised text; a text shorter than `size` words is one shingle."""
    words = _WORD.findall(normalise(text))
    if len(words) <= size:
        return {" ".join(words)}
    return {" ".join(words[i:i + size]) for i in range(len(words) - size + 1)}


@dataclass(frozen=True)
class NearDuplicates:
    """MinHash LSH settings: Jaccard `threshold` over word shingles of `shingle_words` words,
    signatures of `num_perm` permutations (more: slower, more precise). threshold None: off."""

    threshold: float | None = 0.85
    num_perm: int = 128
    shingle_words: int = 3
    seed: int = 1


@dataclass
class DedupeResult:
    kept: list[int]
    # Index of the dropped item -> index of the kept item it duplicates.
    exact: dict[int, int] = field(default_factory=dict)
    near: dict[int, int] = field(default_factory=dict)


def dedupe(texts: Sequence[str], near: NearDuplicates) -> DedupeResult:
    """Indices of `texts` to keep, and which were dropped as exact or near duplicates."""
    result = DedupeResult(kept=[])
    first: dict[str, int] = {}
    lsh = None
    signatures: list[Any] = []
    if near.threshold is not None:
        from datasketch import MinHash, MinHashLSH

        lsh = MinHashLSH(threshold=near.threshold, num_perm=near.num_perm)
        # One set of permutations for all (MinHash() draws them anew each time: 20x slower).
        signatures = MinHash.bulk([[s.encode() for s in sorted(shingles(t, near.shingle_words))]
                                   for t in texts], num_perm=near.num_perm, seed=near.seed)
    for i, text in enumerate(texts):
        digest = text_hash(text)
        if digest in first:
            result.exact[i] = first[digest]
            continue
        first[digest] = i
        if lsh is not None:
            signature = signatures[i]
            matches = lsh.query(signature)
            if matches:
                result.near[i] = min(int(m) for m in matches)
                continue
            lsh.insert(str(i), signature)
        result.kept.append(i)
    return result

