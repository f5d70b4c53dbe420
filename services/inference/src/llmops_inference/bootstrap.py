"""Composition root of the inference service."""

from __future__ import annotations

from llmops.inference.v1 import inference_pb2_grpc
from llmops_inference.adapters.canary import CanaryResolver
from llmops_inference.adapters.embedding import EmbeddingClient
from llmops_inference.adapters.registry import RegistryClient
from llmops_inference.adapters.retrieval import VectorStoreRetriever
from llmops_inference.adapters.safety import SafetyGuard
from llmops_inference.adapters.tgi import TgiGenerator
from llmops_inference.api import events as event_api
from llmops_inference.api import tenants as tenant_api
from llmops_inference.api.completion import BusCompletionSink
from llmops_inference.api.feedback import BusFeedbackPublisher
from llmops_inference.api.grpc import ROLES, SERVICE_FULL_NAME, InferenceServicer
from llmops_inference.domain.cache import AnswerCache
from llmops_inference.domain.context import ContextBudget
from llmops_inference.domain.extractive import Extractor
from llmops_inference.domain.feedback import FeedbackService
from llmops_inference.domain.model import GENERATIVE
from llmops_inference.domain.pipeline import AnswerService, Limits
from llmops_inference.domain.quality import QualityConfig, QualityScorer
from llmops_inference.domain.refusal import GroundingCheck
from llmops_inference.settings import Settings
from llmops_kit import events
from llmops_kit.app import ServiceApp, Stage
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus
from llmops_kit.key_resolver import build_resolver

TOPICS = (events.INFERENCE_COMPLETED.topic, events.FEEDBACK_SUBMITTED.topic,
          events.MODEL_ALIAS_CHANGED.topic, events.TENANT_DELETED.topic)


def build_sink(settings: Settings, bus: EventBus, guard: SafetyGuard,
               embedder: EmbeddingClient) -> BusCompletionSink:
    scorer = None
    if settings.quality_enabled:
        scorer = QualityScorer(embedder, QualityConfig(
            groundedness=settings.groundedness_enabled,
            threshold=settings.groundedness_threshold))
    return BusCompletionSink(bus, guard, scorer, quality_timeout=settings.quality_timeout_seconds,
                             max_in_flight=settings.events_max_in_flight)


async def build(settings: Settings) -> ServiceApp:
    timeout = settings.dependency_timeout_seconds
    bus = EventBus(settings.kafka, client_id=settings.service_name)
    registry = RegistryClient(settings.registry_address, timeout, settings.default_model_name)
    guard = SafetyGuard(settings.safety_address, timeout)
    retriever = VectorStoreRetriever(settings.embedding_address, settings.vector_store_address,
                                     timeout)
    gen = settings.generation
    admin_key = (gen.admin_key.get_secret_value() if gen.admin_key
                 else next(iter(settings.platform_admin_keys()), None))
    generator = TgiGenerator(gen.url, gen.timeout_seconds, gen.attempts, gen.backoff_seconds,
                             gen.token.get_secret_value() if gen.token else None, admin_key,
                             tuple(gen.stop))
    cache = AnswerCache(settings.cache_entries, settings.cache_ttl_seconds)
    embedder = EmbeddingClient(settings.embedding_address, timeout)
    sink = build_sink(settings, bus, guard, embedder)
    policies = settings.answer_policies.policies()
    # Answers are scored on the path only where a policy refuses unsupported ones.
    needs_grounding = any(p.min_groundedness is not None
                          for p in (policies.default, *policies.tenants.values()))
    # Requests for `production` go to the tenant's canary candidate by its share (rollout).
    models = CanaryResolver(registry, settings.default_model_alias)
    # The extractor is built where a policy answers extractively or hybrid.
    every = (policies.default, *policies.tenants.values())
    extractor = None
    if any(p.answer_mode != GENERATIVE for p in every):
        extractor = Extractor(embedder, GroundingCheck(embedder, settings.groundedness_threshold),
                              min_groundedness=settings.hybrid_min_groundedness,
                              max_passages=settings.extractive_passages)
    service = AnswerService(
        retriever, registry, models, guard, generator, sink, cache, Limits(),
        ContextBudget(settings.context_token_budget, settings.context_focus_tokens), policies,
        GroundingCheck(embedder, settings.groundedness_threshold) if needs_grounding else None,
        extractor)
    feedback = FeedbackService(guard, BusFeedbackPublisher(bus))
    event_api.register(bus, event_api.AliasHandlers(models), settings.alias_consumer_group())
    tenant_api.register(bus, cache, settings.consumer_group)
    server = GrpcServer(settings.grpc_host, settings.grpc_port, build_resolver(settings))
    server.add(inference_pb2_grpc.add_InferenceServiceServicer_to_server,
               InferenceServicer(service, settings, feedback), [SERVICE_FULL_NAME], ROLES)
    app = ServiceApp(settings, bus, server, TOPICS)
    for client in (registry, guard, retriever, generator, embedder):
        app.on(Stage.RESOURCE, stop=client.close)
    # Events of answers already sent are published before the bus stops.
    app.on(Stage.BUS_CLIENT, stop=sink.drain)
    return app


async def serve(settings: Settings) -> None:
    await (await build(settings)).serve()
