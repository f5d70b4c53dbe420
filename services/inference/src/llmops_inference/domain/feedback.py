"""Feedback on an answer: checked, its comment PII-redacted, then published.

Inference keeps no answers, so a request id is checked for its form only (the form event ids
have: a UUID in its canonical text); the observability service joins the rating to the answer
by tenant and request id, so a rating sent for another tenant's answer joins nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmops_inference.domain.errors import InvalidFeedback
from llmops_inference.domain.model import Feedback
from llmops_inference.ports import FeedbackPublisher, Guard

MAX_COMMENT_CHARS = 2_000
_REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class FeedbackReceipt:
    feedback_id: str
    # The kept comment differs from the one sent: PII was redacted.
    comment_redacted: bool


def checked_request_id(request_id: str) -> str:
    """The request id in its canonical (lower-case) form; InvalidFeedback otherwise."""
    if not request_id.strip():
        raise InvalidFeedback("MISSING_REQUEST_ID", "request_id is required")
    canonical = request_id.strip().lower()
    if not _REQUEST_ID.fullmatch(canonical):
        raise InvalidFeedback("BAD_REQUEST_ID",
                              "request_id must be a GenerateResponse.request_id (a UUID)")
    return canonical


def check(request_id: str, rating: int, comment: str) -> str:
    """Validates a rating; returns the canonical request id."""
    canonical = checked_request_id(request_id)
    if rating not in (1, -1):
        raise InvalidFeedback("BAD_RATING", "rating must be 1 (good) or -1 (bad)")
    if len(comment) > MAX_COMMENT_CHARS:
        raise InvalidFeedback("COMMENT_TOO_LONG",
                              f"comment exceeds {MAX_COMMENT_CHARS} characters")
    return canonical


class FeedbackService:
    def __init__(self, guard: Guard, publisher: FeedbackPublisher) -> None:
        self.guard = guard
        self.publisher = publisher

    async def submit(self, tenant: str, request_id: str, rating: int,
                     comment: str) -> FeedbackReceipt:
        canonical = check(request_id, rating, comment)
        comment = comment.strip()
        # Redaction fails closed (safety down: UNAVAILABLE), so nothing unredacted is published.
        redacted = await self.guard.redact(comment) if comment else ""
        feedback_id = await self.publisher.publish(
            Feedback(tenant, canonical, rating, redacted))
        return FeedbackReceipt(feedback_id, redacted != comment)
