"""Token windows with overlap, deterministic chunk ids, exact-duplicate removal."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from llmops_ingestion.domain.model import Chunk
from llmops_ingestion.ports import Tokenizer

# Fixed namespace: chunk ids must be identical across replicas, restarts and replays.
CHUNK_NAMESPACE = uuid.UUID("6f1c2b0e-3d8a-4b57-9a51-1f6f0a7e2c43")


@dataclass(frozen=True)
class ChunkingPolicy:
    max_tokens: int = 200
    overlap_tokens: int = 40

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ValueError("max_tokens must be at least 8")
        if not 0 <= self.overlap_tokens < self.max_tokens:
            raise ValueError("overlap_tokens must be >= 0 and < max_tokens")


def content_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).casefold().encode()).hexdigest()


def chunk_id(tenant: str, document_id: str, version: int, index: int) -> str:
    return str(uuid.uuid5(CHUNK_NAMESPACE, f"{tenant}/{document_id}/{version}/{index}"))


def split(text: str, tokenizer: Tokenizer, policy: ChunkingPolicy) -> list[tuple[int, int, int]]:
    """(char_start, char_end, token_count) windows covering the text."""
    spans = tokenizer.offsets(text)
    if not spans:
        return [(0, len(text), 0)] if text.strip() else []
    windows = []
    step = policy.max_tokens - policy.overlap_tokens
    start = 0
    while True:
        end = min(start + policy.max_tokens, len(spans))
        # Windows end on a token boundary; extend to the end of the text for the last one
        # so trailing punctuation the tokenizer dropped is kept.
        char_end = spans[end - 1][1] if end < len(spans) else len(text)
        char_start = 0 if start == 0 else spans[start][0]
        windows.append((char_start, char_end, end - start))
        if end >= len(spans):
            return windows
        start += step


def chunk_document(
    tenant: str,
    document_id: str,
    version: int,
    text: str,
    tokenizer: Tokenizer,
    policy: ChunkingPolicy,
) -> tuple[list[Chunk], int]:
    """Chunks of one document version, and how many exact duplicates were dropped."""
    chunks: list[Chunk] = []
    seen: set[str] = set()
    dropped = 0
    for char_start, char_end, tokens in split(text, tokenizer, policy):
        piece = text[char_start:char_end].strip()
        if not piece:
            continue
        digest = content_hash(piece)
        if digest in seen:
            dropped += 1
            continue
        seen.add(digest)
        index = len(chunks)
        chunks.append(Chunk(
            chunk_id=chunk_id(tenant, document_id, version, index),
            index=index,
            text=piece,
            content_hash=digest,
            token_count=tokens,
            char_start=char_start,
            char_end=char_end,
        ))
    return chunks, dropped
