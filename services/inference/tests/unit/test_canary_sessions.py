"""Sticky canary routing per session: one session stays on one version while the share is
unchanged, sessions split by the share, requests without a session keep the per-request draw,
and the gRPC edge hands the request's session to the resolution (or refuses a bad one)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from llmops.inference.v1 import inference_pb2
from llmops.registry.v1 import registry_pb2, rollout_pb2
from llmops_inference.adapters.canary import CanaryResolver, canary_id
from llmops_inference.api.grpc import InferenceServicer, session_of
from llmops_inference.domain.canary import bound_session, current_session, session_draw
from llmops_inference.domain.model import Answer, ModelRef, Question, Verdict
from llmops_inference.settings import Settings
from llmops_kit.context import bound
from llmops_kit.errors import InvalidArgument

pytestmark = pytest.mark.unit

PROD = ModelRef("m", 1)


class FakeRegistry:
    model_name = "m"
    timeout = 1.0
    channel = None

    async def resolve(self, alias: str) -> ModelRef:
        return PROD

    def invalidate(self, model_name: str | None = None, tenant: str | None = None) -> None: ...


class FakeRollout:
    def __init__(self, share: int, started: int = 1_700_000_000) -> None:
        self.reply = rollout_pb2.Canary(
            name="m", candidate_version=2, state=rollout_pb2.CANARY_STATE_PROGRESSING,
            share=share, started_at=Timestamp(seconds=started),
            candidate=registry_pb2.ModelVersion(name="m", version=2, format="peft-lora",
                                                artifact_uri="file:///a"))

    async def GetCanary(self, request: Any, **kw: Any) -> rollout_pb2.Canary:
        return self.reply


def no_draw() -> float:
    raise AssertionError("a request with a session must not draw")


def resolver(stub: FakeRollout, draw: Any = no_draw) -> CanaryResolver:
    res = CanaryResolver.__new__(CanaryResolver)
    res.registry, res.stub, res.production_alias, res.ttl = (  # type: ignore[assignment]
        FakeRegistry(), stub, "production", 30.0)
    res.draw, res._routes = draw, {}
    return res


async def versions(res: CanaryResolver, tenant: str, sessions: list[str]) -> list[int]:
    out = []
    with bound(tenant, "t-1"):
        for session in sessions:
            with bound_session(session):
                out.append((await res.resolve("production")).version)
    return out


def test_session_draw_is_stable_uniform_input_and_depends_on_every_part() -> None:
    d = session_draw("acme", "s-1", "m@2/1.0")
    assert d == session_draw("acme", "s-1", "m@2/1.0") and 0 <= d < 1
    assert len({d, session_draw("globex", "s-1", "m@2/1.0"), session_draw("acme", "s-2", "m@2/1.0"),
                session_draw("acme", "s-1", "m@3/1.0")}) == 4


async def test_a_session_stays_on_one_version_while_the_share_is_unchanged() -> None:
    res = resolver(FakeRollout(share=50))
    sessions = [f"chat-{i}" for i in range(40)]
    first = await versions(res, "acme", sessions)
    assert set(first) == {1, 2}  # the share splits the sessions ...
    for _ in range(5):  # ... and each one keeps its version, request after request
        assert await versions(res, "acme", sessions) == first
    # Without a session, each request draws on its own (the draws decide).
    draws = iter([0.1, 0.9, 0.2, 0.7])
    res.draw = lambda: next(draws)
    assert await versions(res, "acme", ["", "", "", ""]) == [2, 1, 2, 1]


@pytest.mark.parametrize("share", [10, 30, 50, 90])
async def test_the_share_holds_over_many_sessions(share: int) -> None:
    got = await versions(resolver(FakeRollout(share)), "acme", [f"s{i}" for i in range(4000)])
    # 4000 sessions: the binomial standard deviation is at most 0.8 points; 3 of them allowed.
    assert abs(100 * got.count(2) / len(got) - share) < 2.4


async def test_a_rising_share_keeps_the_candidates_sessions_and_a_new_canary_reshuffles() -> None:
    sessions = [f"s{i}" for i in range(2000)]
    at20 = await versions(resolver(FakeRollout(20)), "acme", sessions)
    at50 = await versions(resolver(FakeRollout(50)), "acme", sessions)
    assert all(b == 2 for a, b in zip(at20, at50, strict=True) if a == 2)
    again = await versions(resolver(FakeRollout(20, started=1_800_000_000)), "acme", sessions)
    assert again != at20 and abs(again.count(2) - at20.count(2)) < 120
    assert canary_id(FakeRollout(20).reply) == "m@2/1700000000.000000000"


def test_bad_session_ids_are_refused() -> None:
    assert session_of(inference_pb2.GenerateRequest(session_id="chat-42")) == "chat-42"
    assert session_of(inference_pb2.GenerateRequest()) == ""
    for bad in ("x" * 129, "a\nb"):
        with pytest.raises(InvalidArgument) as caught:
            session_of(inference_pb2.GenerateRequest(session_id=bad))
        assert caught.value.reason == "BAD_SESSION_ID"


class SeenSession:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def _answer(self) -> Answer:
        self.seen.append(current_session())
        return Answer("a", [], ModelRef("m", 2, canary=True), None, Verdict.ALLOW,
                      Verdict.ALLOW, blocked=False)

    async def answer(self, q: Question) -> Answer:
        return self._answer()

    async def stream(self, q: Question) -> AsyncIterator[object]:
        yield "tok"
        yield self._answer()


async def test_the_grpc_edge_resolves_inside_the_requests_session() -> None:
    service = SeenSession()
    servicer = InferenceServicer(service, Settings(), None)  # type: ignore[arg-type]
    with bound("acme", "t-1"):
        await servicer.Generate(inference_pb2.GenerateRequest(question="q", session_id="s-9"),
                                None)  # type: ignore[arg-type]
        items = [i async for i in servicer.GenerateStream(
            inference_pb2.GenerateRequest(question="q", session_id="s-7"), None)]  # type: ignore[arg-type]
        await servicer.Generate(inference_pb2.GenerateRequest(question="q"), None)  # type: ignore[arg-type]
    assert service.seen == ["s-9", "s-7", ""]
    assert items[-1].final.model_version and current_session() == ""
