from __future__ import annotations

from llmops_kit.errors import DeadlineExceeded, InvalidArgument


class InvalidQuestion(InvalidArgument):
    pass


class InvalidFeedback(InvalidArgument):
    pass


# A failed request's InferenceCompleted.error, by the reason of the error that ended it.
_FAILURES = {
    "GENERATION_UNAVAILABLE": "GENERATION_UNAVAILABLE",
    "RETRIEVAL_UNAVAILABLE": "RETRIEVAL_UNAVAILABLE",
    # Embedding the question is the first half of retrieval.
    "EMBEDDING_UNAVAILABLE": "RETRIEVAL_UNAVAILABLE",
    "DEADLINE_EXCEEDED": "DEADLINE_EXCEEDED",
}


def failure_code(exc: BaseException) -> str:
    """The code InferenceCompleted.error carries for a request that `exc` ended."""
    if isinstance(exc, DeadlineExceeded):
        return "DEADLINE_EXCEEDED"
    return _FAILURES.get(getattr(exc, "reason", ""), "INTERNAL")
