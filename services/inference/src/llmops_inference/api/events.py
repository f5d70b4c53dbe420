"""Registry alias changes in (model switching without restart); events out: api/completion.py
(InferenceCompleted) and api/feedback.py (FeedbackSubmitted)."""

from __future__ import annotations

from llmops.registry.v1 import registry_pb2
from llmops_inference.ports import ModelResolver
from llmops_kit import events
from llmops_kit.events import EventType
from llmops_kit.kafka import Batch, EventBus


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
