"""InferenceCompleted events out; registry alias changes in (model switching without restart)."""

from __future__ import annotations

from llmops.inference.v1 import inference_pb2
from llmops.registry.v1 import registry_pb2
from llmops_inference.api.grpc import OUTCOME, to_guarded
from llmops_inference.domain.model import Answer, Question
from llmops_inference.ports import Guard, ModelResolver
from llmops_kit import events
from llmops_kit.events import EventType
from llmops_kit.kafka import Batch, EventBus

PRODUCER = "inference"


class BusCompletionSink:
    """Publishes InferenceCompleted; raw text is PII-redacted by the safety service first."""

    def __init__(self, bus: EventBus, guard: Guard) -> None:
        self.bus = bus
        self.guard = guard

    async def completed(self, question: Question, answer: Answer, streamed: bool) -> None:
        stages = {k: v for k, v in answer.stages_ms.items() if k != "total"}
        event = inference_pb2.InferenceCompleted(
            envelope=events.make_envelope(PRODUCER, tenant=question.tenant),
            model_version=answer.model_version,
            prompt_version=answer.prompt.label if answer.prompt else "",
            stages=[inference_pb2.StageLatency(stage=k, milliseconds=v) for k, v in stages.items()],
            time_to_first_token_ms=answer.time_to_first_token_ms,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            retrieved_chunk_ids=[p.chunk_id for p in answer.retrieved],
            redacted_question=await self.guard.redact(question.text),
            redacted_answer=await self.guard.redact(answer.text),
            input_safety=OUTCOME[answer.input_safety],
            output_safety=OUTCOME[answer.output_safety],
            cached=answer.cached,
            streamed=streamed,
            total_ms=answer.stages_ms.get("total", 0.0),
            guarded_passages=[to_guarded(g) for g in answer.guarded],
        )
        await self.bus.publish(events.INFERENCE_COMPLETED, event, question.tenant.encode())


class AliasHandlers:
    """Registry alias changes invalidate this replica's cached resolutions (see register)."""

    def __init__(self, models: ModelResolver) -> None:
        self.models = models

    async def on_alias_changed(self, batch: Batch[registry_pb2.ModelAliasChanged]) -> None:
        for item in batch.items:
            # A tenant's own alias moved: only its resolutions; a shared one: everyone's.
            self.models.invalidate(item.event.name, item.event.change.tenant_id or None)


def register(
    bus: EventBus,
    handlers: AliasHandlers,
    group: str,
    source: EventType[registry_pb2.ModelAliasChanged] = events.MODEL_ALIAS_CHANGED,
) -> None:
    """`group` is the replica's own (Settings.alias_consumer_group): a shared group would hand
    each change to one replica only. A new group starts at the latest offset: older changes
    are already in effect."""
    bus.subscribe_batch(source, group, handlers.on_alias_changed, start_at="latest")
