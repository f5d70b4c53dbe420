"""Extractive answers with the real embedding service (gRPC, the shipped model) over the
sample corpus: the sentence holding the answer is chosen, in the question's language."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmops_embedding.adapters.sentence_transformers import SentenceTransformerEmbedder
from llmops_embedding.bootstrap import build_grpc as build_embedding_grpc
from llmops_embedding.domain.embedding import EmbeddingService
from llmops_embedding.settings import EncoderSettings
from llmops_embedding.settings import Settings as EmbeddingSettings
from llmops_inference.adapters.embedding import EmbeddingClient
from llmops_inference.domain.extractive import Extractor
from llmops_inference.domain.model import Passage
from llmops_inference.domain.refusal import AnswerPolicy, GroundingCheck, weak_answer
from llmops_kit.context import api_key_var
from llmops_kit.settings import KafkaSettings

pytestmark = pytest.mark.integration

# The embedding service answers development keys in the test environment, as the others here.
KEY = "dev-member-acme"
CORPUS = Path(__file__).resolve().parents[4] / "samples" / "corpus"


@pytest.fixture(scope="module")
async def embedder(kafka: KafkaSettings) -> AsyncIterator[EmbeddingClient]:
    server = build_embedding_grpc(
        EmbeddingSettings(grpc_host="127.0.0.1", grpc_port=0, kafka=kafka),
        EmbeddingService(await SentenceTransformerEmbedder.load(EncoderSettings())))
    port = await server.start()
    client = EmbeddingClient(f"127.0.0.1:{port}", 30)
    try:
        yield client
    finally:
        await client.close()
        await server.stop(0)


def passages(*files: str) -> list[Passage]:
    return [Passage(n, f, f"{f}#0", f, (CORPUS / f).read_text(encoding="utf-8"), 1.0 / n)
            for n, f in enumerate(files, start=1)]


@pytest.mark.parametrize(("question", "files", "expected"), [
    ("When do carried-over vacation days expire?", ("vacation-policy.md", "office-guide.md"),
     "Carried-over days expire on March 31 if they are not taken."),
    ("How long is parental leave?", ("vacation-policy.md", "performance-reviews.md"),
     "Parental leave is 20 weeks at full pay for every parent."),
    ("In which file format are Orbit exports delivered?", ("product-faq.txt",),
     "Exports are delivered as Parquet files partitioned by day."),
    ("점심 식대는 한 달에 얼마까지 지원되나요?", ("benefits-ko.md", "travel-ko.md"),
     "점심 식대는 월 20만 원까지 법인 카드로 지원됩니다."),
])
async def test_the_answering_sentence_is_chosen_with_the_real_model(
        embedder: EmbeddingClient, question: str, files: tuple[str, ...], expected: str) -> None:
    api_key_var.set(KEY)
    found = await Extractor(embedder).extract(question, passages(*files))
    assert found is not None
    assert found.text == expected and found.passage.document_id == files[0]
    assert found.answer == f"{expected} [1]"


async def test_hybrid_support_uses_the_real_groundedness(embedder: EmbeddingClient) -> None:
    api_key_var.set(KEY)
    extractor = Extractor(embedder, GroundingCheck(embedder, 0.30), min_groundedness=0.5)
    context = passages("vacation-policy.md")
    question = "How long is parental leave?"
    assert await extractor.supported("Parental leave is 20 weeks at full pay [1].", question,
                                     context)
    assert not await extractor.supported("1", question, context)
    assert not await extractor.supported("Parental leave is 52 weeks [1].", question, context)


@pytest.mark.parametrize(("question", "files", "covered"), [
    # Near the documents' topics, not answered by them (written for this test, like the
    # held-out set's close-to-topic questions; none of them is in samples/eval).
    ("Does the company offer a pension scheme?",
     ("performance-reviews.md", "vacation-policy.md"), False),
    ("Can I bring my dog to the Berlin office?", ("office-guide.md", "code-of-conduct.md"),
     False),
    ("Is there a company gym?", ("office-guide.md",), False),
    ("What is the stock price of the company?",
     ("performance-reviews.md", "code-of-conduct.md"), False),
    # Answered by them.
    ("How long is parental leave?", ("vacation-policy.md", "performance-reviews.md"), True),
    ("How long must a password be?", ("security-handbook.md", "it-helpdesk-faq.md"), True),
    ("When do carried-over vacation days expire?", ("vacation-policy.md", "office-guide.md"),
     True),
    ("How many seats does the Orbit Starter plan include?", ("product-faq.txt",), True),
])
async def test_the_weak_answer_check_with_the_real_model(
        embedder: EmbeddingClient, question: str, files: tuple[str, ...], covered: bool) -> None:
    """The default min_sentence_similarity (0.38, chosen on samples/eval/questions.jsonl)
    refuses near-topic questions and answers covered ones, with the shipped model."""
    api_key_var.set(KEY)
    found = await Extractor(embedder).extract(question, passages(*files))
    assert found is not None and found.similarity is not None
    assert weak_answer(AnswerPolicy(), found.similarity) is not covered, found.similarity
