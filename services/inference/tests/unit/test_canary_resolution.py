"""Canary routing in inference: the per-request draw, the resolver's cache and invalidation,
the version and canary flag on the answer's event, and a candidate that fails to load."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llmops.registry.v1 import registry_pb2, rollout_pb2
from llmops_inference.adapters.canary import CanaryResolver
from llmops_inference.api.completion import completed_event
from llmops_inference.domain.cache import AnswerCache
from llmops_inference.domain.canary import CanaryRoute, route
from llmops_inference.domain.model import Answer, ModelRef, Quality, Question, Verdict
from llmops_inference.domain.pipeline import AnswerService, Limits
from llmops_kit.context import bound
from llmops_kit.errors import NotFound, Unavailable

pytestmark = pytest.mark.unit

PROD = ModelRef("m", 1)
CAND = ModelRef("m", 2, "m-v2", "file:///a")


def test_route_by_share() -> None:
    r = CanaryRoute(30, CAND)
    assert route(PROD, r, 0.0) == CAND.__class__("m", 2, "m-v2", "file:///a", canary=True)
    assert route(PROD, r, 0.2999) .canary is True
    assert route(PROD, r, 0.30) == PROD
    assert route(PROD, None, 0.0) == PROD
    assert route(PROD, CanaryRoute(0, CAND), 0.0) == PROD
    assert route(PROD, CanaryRoute(100, CAND), 0.9999).version == 2


class FakeRegistry:
    model_name = "m"
    timeout = 1.0
    channel = None

    def __init__(self) -> None:
        self.invalidated: list[tuple[str | None, str | None]] = []

    async def resolve(self, alias: str) -> ModelRef:
        return PROD if alias == "production" else ModelRef("m", 5)

    def invalidate(self, model_name: str | None = None, tenant: str | None = None) -> None:
        self.invalidated.append((model_name, tenant))


class FakeRollout:
    def __init__(self) -> None:
        self.calls = 0
        self.reply: rollout_pb2.Canary | Exception = rollout_pb2.Canary(
            name="m", state=rollout_pb2.CANARY_STATE_PROGRESSING, share=50,
            candidate=registry_pb2.ModelVersion(name="m", version=2, format="peft-lora",
                                                artifact_uri="file:///a"))

    async def GetCanary(self, request: rollout_pb2.GetCanaryRequest, **kw: object
                        ) -> rollout_pb2.Canary:
        self.calls += 1
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def resolver(draws: list[float]) -> tuple[CanaryResolver, FakeRegistry, FakeRollout]:
    reg, stub = FakeRegistry(), FakeRollout()
    it = iter(draws)
    res = CanaryResolver.__new__(CanaryResolver)
    res.registry, res.stub, res.production_alias, res.ttl = reg, stub, "production", 30.0  # type: ignore[assignment]
    res.draw, res._routes = (lambda: next(it)), {}
    return res, reg, stub


async def test_resolver_routes_production_requests_and_caches_the_canary() -> None:
    res, reg, stub = resolver([0.1, 0.9, 0.49])
    with bound("acme", "t-1"):
        got = [await res.resolve("production") for _ in range(3)]
        other = await res.resolve("staging")
    assert [(m.version, m.canary) for m in got] == [(2, True), (1, False), (2, True)]
    assert got[0].adapter_id == "m-v2" and got[0].artifact_uri == "file:///a"
    assert other.version == 5 and stub.calls == 1  # cached; other aliases never route
    # An alias event for the tenant drops its canary: the next request asks again.
    res.invalidate("m", "acme")
    assert reg.invalidated == [("m", "acme")]
    stub.reply = rollout_pb2.Canary(state=rollout_pb2.CANARY_STATE_ROLLED_BACK, share=0)
    with bound("acme", "t-1"):
        res.draw = lambda: 0.0
        assert (await res.resolve("production")).version == 1
    assert stub.calls == 2


async def test_no_canary_or_a_failed_lookup_serves_production() -> None:
    res, _, stub = resolver([0.0] * 5)
    stub.reply = NotFound("CANARY_NOT_FOUND", "none")
    with bound("acme", "t-1"):
        assert (await res.resolve("production")) == PROD
        assert (await res.resolve("production")) == PROD
    assert stub.calls == 1  # "no canary" is cached too
    res2, _, stub2 = resolver([0.0] * 5)
    stub2.reply = Unavailable("REGISTRY_UNAVAILABLE", "down")
    with bound("acme", "t-1"):
        assert (await res2.resolve("production")) == PROD
        assert (await res2.resolve("production")) == PROD
    assert stub2.calls == 2  # a failure is not cached


def test_event_records_the_canary_flag_and_version() -> None:
    q = Question("acme", "q", "production", "p", "production", False, 1, 8)
    answer = Answer("a", [], ModelRef("m", 2, canary=True), None, Verdict.ALLOW, Verdict.ALLOW,
                    blocked=False)
    ev = completed_event(q, answer, False, "q", "a", Quality())
    assert (ev.model_version, ev.canary) == ("m@2", True)
    answer.model = ModelRef("m", 1)
    assert completed_event(q, answer, False, "q", "a", Quality()).canary is False


class Stub:
    async def embed(self, question: str) -> list[float]:
        return [1.0]

    async def search(self, *a: object) -> list[object]:
        return []

    async def render(self, name: str, label: str, question: str, passages: object) -> object:
        from llmops_inference.domain.model import RenderedPrompt

        return RenderedPrompt(name, 1, "", question)

    async def resolve(self, alias: str) -> ModelRef:
        return ModelRef("m", 2, "broken", canary=True)

    def invalidate(self, *a: object) -> None: ...

    async def check(self, text: str, direction: str) -> object:
        from llmops_inference.domain.model import SafetyResult

        return SafetyResult(Verdict.ALLOW, text)

    async def redact(self, text: str) -> str:
        return text

    async def prepare(self, model: ModelRef) -> None:
        raise Unavailable("GENERATION_UNAVAILABLE", "adapter failed to load")

    def stream(self, *a: object) -> AsyncIterator[object]:
        raise AssertionError


class Sink:
    def __init__(self) -> None:
        self.answers: list[Answer] = []

    def submit(self, question: Question, answer: Answer, streamed: bool) -> None:
        self.answers.append(answer)


async def test_a_candidate_that_fails_to_load_is_blamed_in_the_event() -> None:
    s, sink = Stub(), Sink()
    svc = AnswerService(s, s, s, s, s, sink, AnswerCache(10, 60), Limits())  # type: ignore[arg-type]
    with pytest.raises(Unavailable):
        await svc.answer(Question("acme", "q?", "production", "p", "production", False, 1, 8))
    [failed] = sink.answers
    assert (failed.error, failed.model_version) == ("GENERATION_UNAVAILABLE", "m@2")
    assert failed.model is not None and failed.model.canary
