"""SubmitFeedback's rules with fakes: validation reasons, redaction, nothing published on failure."""

from __future__ import annotations

import uuid

import pytest

from llmops_inference.api.feedback import BusFeedbackPublisher
from llmops_inference.domain.errors import InvalidFeedback
from llmops_inference.domain.feedback import MAX_COMMENT_CHARS, FeedbackService, check
from llmops_inference.domain.model import Feedback, SafetyResult, Verdict
from llmops_kit import events
from llmops_kit.errors import Unavailable

pytestmark = pytest.mark.unit

REQUEST_ID = str(uuid.uuid4())


class FakeGuard:
    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.redacted: list[str] = []

    async def check(self, text: str, direction: str) -> SafetyResult:
        return SafetyResult(Verdict.ALLOW, text)

    async def redact(self, text: str) -> str:
        if self.down:
            raise Unavailable("SAFETY_UNAVAILABLE", "safety: UNAVAILABLE")
        self.redacted.append(text)
        return text.replace("jane@example.com", "[EMAIL]")


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[Feedback] = []

    async def publish(self, feedback: Feedback) -> str:
        self.published.append(feedback)
        return f"fb-{len(self.published)}"


@pytest.mark.parametrize(("request_id", "rating", "comment", "reason"), [
    ("", 1, "", "MISSING_REQUEST_ID"),
    ("   ", 1, "", "MISSING_REQUEST_ID"),
    ("42", 1, "", "BAD_REQUEST_ID"),
    (REQUEST_ID + "0", 1, "", "BAD_REQUEST_ID"),
    (REQUEST_ID.replace("-", ""), 1, "", "BAD_REQUEST_ID"),
    ("'; DROP TABLE answers; --", 1, "", "BAD_REQUEST_ID"),
    (REQUEST_ID, 0, "", "BAD_RATING"),
    (REQUEST_ID, 2, "", "BAD_RATING"),
    (REQUEST_ID, -5, "", "BAD_RATING"),
    (REQUEST_ID, 1, "x" * (MAX_COMMENT_CHARS + 1), "COMMENT_TOO_LONG"),
])
async def test_bad_feedback_is_refused_with_a_reason_before_anything_happens(
    request_id: str, rating: int, comment: str, reason: str
) -> None:
    guard, publisher = FakeGuard(), FakePublisher()
    with pytest.raises(InvalidFeedback) as err:
        await FeedbackService(guard, publisher).submit("acme", request_id, rating, comment)
    assert err.value.reason == reason
    assert guard.redacted == [] and publisher.published == []


def test_request_ids_are_taken_in_any_case_and_kept_canonical() -> None:
    assert check(REQUEST_ID.upper(), -1, "") == REQUEST_ID
    assert check(f" {REQUEST_ID} ", 1, "x" * MAX_COMMENT_CHARS) == REQUEST_ID


async def test_the_comment_is_redacted_before_it_is_published() -> None:
    guard, publisher = FakeGuard(), FakePublisher()
    receipt = await FeedbackService(guard, publisher).submit(
        "acme", REQUEST_ID.upper(), -1, "  Wrong answer, mail jane@example.com  ")
    assert publisher.published == [Feedback("acme", REQUEST_ID, -1, "Wrong answer, mail [EMAIL]")]
    assert receipt.feedback_id == "fb-1" and receipt.comment_redacted


async def test_a_clean_or_missing_comment_is_kept_as_is() -> None:
    guard, publisher = FakeGuard(), FakePublisher()
    service = FeedbackService(guard, publisher)
    clean = await service.submit("acme", REQUEST_ID, 1, "Great, thanks!")
    bare = await service.submit("acme", REQUEST_ID, 1, "")
    assert not clean.comment_redacted and not bare.comment_redacted
    assert [f.redacted_comment for f in publisher.published] == ["Great, thanks!", ""]
    assert guard.redacted == ["Great, thanks!"]  # no safety call for an empty comment


async def test_safety_down_refuses_and_publishes_nothing() -> None:
    publisher = FakePublisher()
    with pytest.raises(Unavailable) as err:
        await FeedbackService(FakeGuard(down=True), publisher).submit(
            "acme", REQUEST_ID, 1, "mail jane@example.com")
    assert err.value.reason == "SAFETY_UNAVAILABLE" and publisher.published == []


class FakeBus:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[tuple[object, object, bytes]] = []

    async def publish(self, event_type: object, event: object, key: bytes) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((event_type, event, key))


async def test_the_event_is_keyed_by_tenant_and_its_id_is_the_feedback_id() -> None:
    bus = FakeBus()
    feedback_id = await BusFeedbackPublisher(bus).publish(  # type: ignore[arg-type]
        Feedback("acme", REQUEST_ID, 1, "ok"))
    [(event_type, event, key)] = bus.sent
    assert event_type is events.FEEDBACK_SUBMITTED and key == b"acme"
    assert event.envelope.event_id == feedback_id  # type: ignore[attr-defined]
    assert (event.envelope.tenant_id, event.request_id, event.rating,  # type: ignore[attr-defined]
            event.redacted_comment) == ("acme", REQUEST_ID, 1, "ok")  # type: ignore[attr-defined]


async def test_kafka_down_is_unavailable() -> None:
    with pytest.raises(Unavailable) as err:
        await BusFeedbackPublisher(FakeBus(fail=True)).publish(  # type: ignore[arg-type]
            Feedback("acme", REQUEST_ID, 1, ""))
    assert err.value.reason == "BUS_UNAVAILABLE"


def test_every_rpc_of_the_service_declares_its_role() -> None:
    """The kit refuses to start a server whose role table misses a method."""
    from llmops.inference.v1 import inference_pb2
    from llmops_inference.api.grpc import ROLES
    from llmops_kit.auth import Role

    methods = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].methods
    assert set(ROLES) == {m.name for m in methods}
    assert ROLES["SubmitFeedback"] is Role.MEMBER
