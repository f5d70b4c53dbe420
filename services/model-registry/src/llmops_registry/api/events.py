"""Publishes the registry's outbox entries as protobuf events on the bus.

Keys are the model or prompt name, so all changes of one model (or prompt) stay ordered in one
partition. The envelope carries the id, tenant (the actor), trace id and time fixed when the
change was committed, so a re-publish is recognisably the same event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from llmops.registry.v1 import evaluation_pb2
from llmops.registry.v1 import registry_pb2 as pb
from llmops_kit import events
from llmops_kit.events import EventType
from llmops_kit.kafka import EventBus
from llmops_registry.api import convert, evaluation_convert
from llmops_registry.domain.evaluation_model import EvaluationCompletedEvent
from llmops_registry.domain.model import (
    ModelAliasChangedEvent,
    ModelVersionCreatedEvent,
    OutboxEntry,
    PromptLabelChangedEvent,
    PromptVersionCreatedEvent,
)

PRODUCER = "model-registry"


@dataclass(frozen=True)
class RegistryTopics:
    """Where each event goes; tests pass their own unique topics."""

    model_version_created: EventType[Any] = events.MODEL_VERSION_CREATED
    model_alias_changed: EventType[Any] = events.MODEL_ALIAS_CHANGED
    prompt_version_created: EventType[Any] = events.PROMPT_VERSION_CREATED
    prompt_label_changed: EventType[Any] = events.PROMPT_LABEL_CHANGED
    evaluation_completed: EventType[Any] = events.EVALUATION_COMPLETED

    def all(self) -> list[str]:
        return [self.model_version_created.topic, self.model_alias_changed.topic,
                self.prompt_version_created.topic, self.prompt_label_changed.topic,
                self.evaluation_completed.topic]


def to_message(entry: OutboxEntry, topics: RegistryTopics) -> tuple[EventType[Any], Message, str]:
    """The event type, protobuf message and key (a name) of one outbox entry."""
    env = events.make_envelope(PRODUCER, tenant=entry.tenant, trace_id=entry.trace_id or None,
                               event_id=entry.event_id)
    env.occurred_at.FromDatetime(entry.occurred_at)
    ev = entry.event
    if isinstance(ev, ModelVersionCreatedEvent):
        return (topics.model_version_created,
                pb.ModelVersionCreated(envelope=env,
                                       model_version=convert.model_version_pb(ev.version)),
                ev.version.name)
    if isinstance(ev, ModelAliasChangedEvent):
        msg = pb.ModelAliasChanged(envelope=env, name=ev.name,
                                   change=convert.alias_change_pb(ev.change))
        if ev.target is not None:
            msg.model_version.CopyFrom(convert.model_version_pb(ev.target))
        return topics.model_alias_changed, msg, ev.name
    if isinstance(ev, PromptVersionCreatedEvent):
        return (topics.prompt_version_created,
                pb.PromptVersionCreated(envelope=env,
                                        prompt_version=convert.prompt_version_pb(ev.version)),
                ev.version.name)
    if isinstance(ev, PromptLabelChangedEvent):
        label_msg = pb.PromptLabelChanged(envelope=env, name=ev.name,
                                          change=convert.label_change_pb(ev.change))
        if ev.target is not None:
            label_msg.prompt_version.CopyFrom(convert.prompt_version_pb(ev.target))
        return topics.prompt_label_changed, label_msg, ev.name
    if isinstance(ev, EvaluationCompletedEvent):
        # Keyed by tenant: a tenant's runs stay in order.
        return (topics.evaluation_completed,
                evaluation_pb2.EvaluationCompleted(envelope=env,
                                                   run=evaluation_convert.run_pb(ev.run)),
                ev.run.tenant)
    raise TypeError(f"unknown registry event {type(ev).__name__}")


class BusEventPublisher:
    def __init__(self, bus: EventBus, topics: RegistryTopics | None = None) -> None:
        self.bus = bus
        self.topics = topics or RegistryTopics()

    async def publish(self, entry: OutboxEntry) -> None:
        event_type, message, key = to_message(entry, self.topics)
        await self.bus.publish(event_type, message, key.encode())
