"""What an answer's event adds after the answer is sent: groundedness, retrieval strength and
the question's vector.

One call to the embedding service per answer embeds the answer's sentences, the retrieved
passages and, when retrieval's own query vector cannot be reused, the redacted question.
Retrieval's vector is reused when the text it searched is exactly the redacted question (the
usual case: a question without PII, or one whose PII the input check redacted the same way).

- groundedness: the share of the answer's sentences whose best cosine to a passage the answer
  rests on (its citations; without citations, everything retrieved) reaches the threshold;
- best retrieval score: the best cosine between the question and a retrieved passage. The
  search's own scores cannot serve: hybrid search fuses BM25 and vector scores relative to
  each result set, so its best hit scores 0.5 to 1 however far off the question is.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmops_inference.domain.groundedness import best_similarities, groundedness, split_sentences
from llmops_inference.domain.model import Answer, Quality
from llmops_inference.ports import Embedder


@dataclass(frozen=True)
class QualityConfig:
    # Score the answer's sentences (off: only the question's vector and retrieval strength).
    groundedness: bool = True
    # A sentence is supported when its best cosine to a passage reaches this (see the
    # service README for how the default was measured).
    threshold: float = 0.30
    # Bounds on one scoring call (the embedding service takes at most 256 texts; its model
    # reads the first 256 tokens of a text, so longer passages are clipped before sending).
    max_sentences: int = 64
    max_passage_chars: int = 2_000


class QualityScorer:
    def __init__(self, embedder: Embedder, config: QualityConfig) -> None:
        self.embedder = embedder
        self.config = config

    async def assess(self, answer: Answer, redacted_question: str,
                     redacted_answer: str) -> Quality:
        """Scores the answer as published (redacted) and embeds the redacted question.

        Raises what the embedding service raises; the caller publishes without quality then.
        """
        cfg = self.config
        want_vector = bool(redacted_question.strip())
        reuse = (want_vector and bool(answer.query_vector)
                 and answer.searched_text == redacted_question)
        retrieved = [(p.chunk_id, p.text[:cfg.max_passage_chars]) for p in answer.retrieved
                     if p.text.strip()]
        cited = {p.chunk_id for p in answer.passages}
        # The passages the sentences are checked against: indexes into `retrieved`.
        support = [i for i, (chunk, _) in enumerate(retrieved) if chunk in cited] or list(
            range(len(retrieved)))
        sentences: list[str] = []
        if cfg.groundedness and not answer.error and retrieved:
            sentences = split_sentences(redacted_answer)[:cfg.max_sentences]
        texts = (sentences + [t for _, t in retrieved]
                 + ([redacted_question] if want_vector and not reuse else []))
        if not want_vector and not sentences:
            return Quality()
        vectors: list[list[float]] = []
        model = ""
        if texts:
            embedded = await self.embedder.embed_texts(texts)
            if len(embedded.vectors) != len(texts):
                raise ValueError(f"embedding returned {len(embedded.vectors)} vectors for "
                                 f"{len(texts)} texts")
            vectors, model = embedded.vectors, embedded.model
        n = len(sentences)
        passage_vectors = vectors[n:n + len(retrieved)]
        question = (list(answer.query_vector) if reuse else vectors[-1]) if want_vector else []
        best_retrieval = (max(best_similarities([question], passage_vectors))
                          if question and passage_vectors else 0.0)
        g = (groundedness(vectors[:n], [passage_vectors[i] for i in support], cfg.threshold)
             if sentences else None)
        return Quality(
            question_embedding=question,
            embedding_model=(model or await self.embedder.model_name()) if question else "",
            groundedness=g.score if g else None,
            answer_sentences=g.sentences if g else 0,
            supported_sentences=g.supported if g else 0,
            best_retrieval_score=best_retrieval,
        )
