"""Exact duplicates (hash of the normalised text) and near duplicates (MinHash LSH on word
shingles, datasketch). The first occurrence of a group is kept, in upload order."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

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
    if near.threshold is not None:
        from datasketch import MinHashLSH

        lsh = MinHashLSH(threshold=near.threshold, num_perm=near.num_perm)
    for i, text in enumerate(texts):
        digest = text_hash(text)
        if digest in first:
            result.exact[i] = first[digest]
            continue
        first[digest] = i
        if lsh is not None:
            signature = _minhash(text, near)
            matches = lsh.query(signature)
            if matches:
                result.near[i] = min(int(m) for m in matches)
                continue
            lsh.insert(str(i), signature)
        result.kept.append(i)
    return result


def _minhash(text: str, near: NearDuplicates) -> object:
    from datasketch import MinHash

    signature = MinHash(num_perm=near.num_perm, seed=near.seed)
    signature.update_batch([s.encode() for s in sorted(shingles(text, near.shingle_words))])
    return signature
