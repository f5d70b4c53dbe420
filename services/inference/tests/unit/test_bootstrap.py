"""The composition root builds (the kit refuses a server whose role table misses an RPC) and
wires the background event publisher to drain before the bus stops."""

from __future__ import annotations

import pytest

from llmops_inference.bootstrap import TOPICS, build
from llmops_inference.settings import Settings
from llmops_kit import events
from llmops_kit.app import Stage

pytestmark = pytest.mark.unit


async def test_the_service_builds_with_every_rpc_and_topic() -> None:
    app = await build(Settings(grpc_port=0))
    assert {k.rsplit("/", 1)[-1] for k in app.grpc.roles if "InferenceService" in k} == {
        "Generate", "GenerateStream", "SubmitFeedback"}
    assert events.FEEDBACK_SUBMITTED.topic in TOPICS
    [drain] = [h.stop for h in app.hooks if h.stage is Stage.BUS_CLIENT]
    assert drain is not None and drain.__qualname__ == "BusCompletionSink.drain"
    for hook in app.hooks:
        if hook.stage is Stage.RESOURCE and hook.stop:
            await hook.stop()


def test_quality_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_INFERENCE_GROUNDEDNESS_THRESHOLD", "0.45")
    monkeypatch.setenv("LLMOPS_INFERENCE_QUALITY_ENABLED", "false")
    settings = Settings()
    assert settings.groundedness_threshold == 0.45 and not settings.quality_enabled
    monkeypatch.setenv("LLMOPS_INFERENCE_GROUNDEDNESS_THRESHOLD", "2")
    with pytest.raises(ValueError, match="groundedness_threshold"):
        Settings()


def test_quality_off_means_no_scorer_and_the_threshold_reaches_it() -> None:
    from llmops_inference.bootstrap import build_sink

    off = build_sink(Settings(quality_enabled=False), None, None, None)  # type: ignore[arg-type]
    on = build_sink(Settings(groundedness_threshold=0.4, groundedness_enabled=False),
                    None, None, None)  # type: ignore[arg-type]
    assert off.scorer is None
    assert on.scorer is not None and on.scorer.config.threshold == 0.4
    assert not on.scorer.config.groundedness
