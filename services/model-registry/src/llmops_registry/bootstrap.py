"""Composition root: builds the store, relay and use cases from settings and wires gRPC."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from llmops.admin.v1 import admin_pb2_grpc
from llmops.registry.v1 import evaluation_pb2_grpc, registry_pb2_grpc, rollout_pb2_grpc
from llmops_kit import topics
from llmops_kit.admin import Admin
from llmops_kit.admin_grpc import ROLES as ADMIN_ROLES
from llmops_kit.admin_grpc import SERVICE_FULL_NAME as ADMIN_SERVICE
from llmops_kit.admin_grpc import AdminServicer, BusTenantDeletedPublisher
from llmops_kit.app import ServiceApp, Stage
from llmops_kit.audit import AuditLog
from llmops_kit.auth import Role
from llmops_kit.grpc_server import GrpcServer
from llmops_kit.kafka import EventBus
from llmops_kit.key_resolver import build_resolver
from llmops_kit.sql_auth import SqlAuditLog, SqlKeyStore, open_engine
from llmops_registry.adapters import promotion_gate
from llmops_registry.adapters.memory_audit import MemoryAuditLog
from llmops_registry.adapters.observability_metrics import ObservabilityMetrics
from llmops_registry.adapters.sql_evaluation import SqlEvaluationStore
from llmops_registry.adapters.sql_rollout import SqlRolloutStore
from llmops_registry.adapters.sql_schema import create_schema, make_engine
from llmops_registry.adapters.sql_store import SqlRegistryStore
from llmops_registry.adapters.sql_tenants import SqlTenantData
from llmops_registry.api import tenants as tenant_api
from llmops_registry.api.evaluation_grpc import SERVICE_NAME as EVALUATION_SERVICE
from llmops_registry.api.evaluation_grpc import EvaluationServicer
from llmops_registry.api.events import BusEventPublisher, RegistryTopics
from llmops_registry.api.grpc import SERVICE_NAME, RegistryServicer
from llmops_registry.api.rollout_grpc import ROLES as ROLLOUT_ROLES
from llmops_registry.api.rollout_grpc import SERVICE_NAME as ROLLOUT_SERVICE
from llmops_registry.api.rollout_grpc import RolloutServicer
from llmops_registry.domain.audit import Auditor
from llmops_registry.domain.canary import Thresholds
from llmops_registry.domain.canary_controller import CanaryController
from llmops_registry.domain.evaluation import Evaluations
from llmops_registry.domain.gate import GatePolicies, GatePolicy, GateRule
from llmops_registry.domain.model import Actor
from llmops_registry.domain.models import ModelRegistry, Policy
from llmops_registry.domain.outbox import OutboxRelay
from llmops_registry.domain.promotion import Promoter
from llmops_registry.domain.prompts import PromptRegistry
from llmops_registry.domain.rollout import Rollouts
from llmops_registry.domain.seed import SeedModel, seed
from llmops_registry.domain.validation import Limits
from llmops_registry.ports_rollout import PromotionGate
from llmops_registry.settings import GatePolicySettings, Settings

log = logging.getLogger(__name__)


@dataclass
class Registry:
    """Everything a running registry is made of (tests drive the parts directly)."""

    engine: Engine
    store: SqlRegistryStore
    relay: OutboxRelay
    models: ModelRegistry
    prompts: PromptRegistry
    audit_log: AuditLog
    # The evaluation runs' store (the port the promotion gate reads, interface 3) and their
    # use cases (record, read, list).
    evaluations: SqlEvaluationStore
    evaluation_runs: Evaluations
    promoter: Promoter
    rollouts: Rollouts | None = None


def policy(settings: Settings) -> Policy:
    return Policy(
        formats=tuple(settings.formats),
        limits=Limits(settings.default_page_size, settings.max_page_size,
                      settings.max_template_chars),
    )


def _gate_policy(p: GatePolicySettings) -> GatePolicy:
    return GatePolicy(tuple(GateRule(r.metric, r.min_delta, r.max_delta, r.max_ratio)
                            for r in p.rules), p.dataset)


def gate_policies(settings: Settings) -> GatePolicies:
    """The gate's policies; a bad rule fails at start-up naming the setting."""
    try:
        return GatePolicies(_gate_policy(settings.gate.default),
                            {t: _gate_policy(p) for t, p in settings.gate.tenants.items()})
    except ValueError as exc:
        raise ValueError(f"LLMOPS_REGISTRY_GATE: {exc}") from exc


def rollout_defaults(settings: Settings) -> Thresholds:
    r = settings.rollout
    return Thresholds(r.max_error_rate_increase, r.max_latency_ratio,
                      r.max_safety_block_increase, r.max_groundedness_drop,
                      r.max_negative_feedback_increase, r.min_requests)


async def build_registry(settings: Settings, bus: EventBus,
                         event_topics: RegistryTopics | None = None,
                         audit_log: AuditLog | None = None,
                         gate: PromotionGate | None = None) -> Registry:
    """Opens the database (schema created if missing) and seeds what a fresh registry ships.

    `audit_log` receives every privileged action; without one, entries are kept in memory
    (lost on restart) until the platform's SQL audit log is passed here. `gate` decides which
    candidates may start a canary (the evaluation gate with LLMOPS_REGISTRY_GATE's policies when None).
    """
    engine = make_engine(settings.database_url)
    create_schema(engine)
    store = SqlRegistryStore(engine)
    relay = OutboxRelay(store, BusEventPublisher(bus, event_topics),
                        flush_timeout=settings.publish_timeout_seconds,
                        interval=settings.outbox_interval_seconds)
    rules = policy(settings)
    if audit_log is None:
        log.warning("audit log: in memory only (entries are lost on restart)")
        audit_log = MemoryAuditLog()
    auditor = Auditor(audit_log)
    models = ModelRegistry(store, relay, rules, auditor)
    runs = SqlEvaluationStore(engine)
    registry = Registry(engine, store, relay, models, PromptRegistry(store, relay, rules, auditor),
                        audit_log, runs, Evaluations(runs, store, relay, rules.limits, auditor),
                        Promoter(models, runs, gate_policies(settings)))
    registry.rollouts = Rollouts(
        SqlRolloutStore(engine), store, relay, auditor,
        gate or promotion_gate.EvaluationGate(runs, gate_policies(settings)),
        rollout_defaults(settings), rules.limits)
    sm = settings.seed_model
    await seed(registry.models, registry.prompts, Actor(settings.system_actor),
               SeedModel(sm.name, sm.artifact_uri, sm.base_model, sm.format, sm.alias)
               if sm.enabled else None,
               settings.seed_rag_prompt)
    return registry


# At the edge every registry RPC needs a key of the tenant (member); the registry's use cases
# check the finer roles themselves (llmops_kit.auth.require: maintainer, admin).
ROLES = {name: Role.MEMBER for name in (
    "RegisterModelVersion", "GetModelVersion", "ListModelVersions", "ListModels", "SetAlias",
    "DeleteAlias", "GetAliasHistory", "CreatePromptVersion", "GetPromptVersion",
    "ListPromptVersions", "ListPrompts", "SetPromptLabel", "GetPromptLabelHistory",
    "RenderPrompt")}
EVALUATION_ROLES = {name: Role.MEMBER for name in (
    "RecordEvaluationRun", "GetEvaluationRun", "ListEvaluationRuns", "Promote")}


def build_grpc(settings: Settings, registry: Registry, bus: EventBus | None = None,
               platform: Engine | None = None) -> GrpcServer:
    """The registry's gRPC server; with a bus it also hosts AdminService (tenants, keys,
    audit log) on the platform database, which publishes TenantDeleted on that bus."""
    engine = platform or open_engine(settings.auth_database_url)
    store = SqlKeyStore(engine)
    resolver = build_resolver(settings, store)
    server = GrpcServer(settings.grpc_host, settings.grpc_port, resolver)
    server.add(registry_pb2_grpc.add_ModelRegistryServiceServicer_to_server,
               RegistryServicer(registry.models, registry.prompts), [SERVICE_NAME], ROLES)
    if registry.rollouts is not None:
        server.add(rollout_pb2_grpc.add_RolloutServiceServicer_to_server,
                   RolloutServicer(registry.rollouts, registry.models), [ROLLOUT_SERVICE],
                   ROLLOUT_ROLES)
    server.add(evaluation_pb2_grpc.add_EvaluationServiceServicer_to_server,
               EvaluationServicer(registry.evaluation_runs, registry.promoter), [EVALUATION_SERVICE],
               EVALUATION_ROLES)
    if bus is not None:
        admin = Admin(store, SqlAuditLog(engine),
                      BusTenantDeletedPublisher(bus, settings.service_name), settings.service_name,
                      on_change=resolver.refresh)
        server.add(admin_pb2_grpc.add_AdminServiceServicer_to_server, AdminServicer(admin),
                   [ADMIN_SERVICE], ADMIN_ROLES)
    return server


async def build(settings: Settings) -> ServiceApp:
    """Must run inside the event loop: grpc.aio binds its server to the running loop."""
    bus = EventBus(settings.kafka, client_id=settings.service_name)
    # The platform database holds keys and the audit log every service shares.
    platform = open_engine(settings.auth_database_url)
    registry = await build_registry(settings, bus, audit_log=SqlAuditLog(platform))
    tenant_api.register(bus, SqlTenantData(registry.engine))
    app = ServiceApp(settings, bus, build_grpc(settings, registry, bus, platform), topics.ALL)

    async def start_relay() -> None:
        registry.relay.start()

    async def dispose() -> None:
        registry.engine.dispose()
        platform.dispose()

    # The outbox relay publishes: it needs the bus up and stops before it; the engine outlives both.
    app.on(Stage.RESOURCE, stop=dispose)
    app.on(Stage.BUS_CLIENT, start=start_relay, stop=registry.relay.stop)
    controller = build_controller(settings, registry)
    if controller is not None:
        async def start_controller() -> None:
            controller.start()

        app.on(Stage.BUS_CLIENT, start=start_controller, stop=controller.stop)
        app.on(Stage.RESOURCE, stop=controller.metrics_close)
    return app


@dataclass
class Controller:
    controller: CanaryController
    metrics: ObservabilityMetrics

    def start(self) -> None:
        self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()

    async def metrics_close(self) -> None:
        await self.metrics.close()


def build_controller(settings: Settings, registry: Registry) -> Controller | None:
    """The canary controller (every replica runs one; the lease lets one of them act)."""
    r = settings.rollout
    if registry.rollouts is None or not r.controller_enabled:
        return None
    metrics = ObservabilityMetrics(r.observability_address,
                                   next(iter(settings.platform_admin_keys()), None),
                                   r.observability_timeout_seconds)
    return Controller(CanaryController(registry.rollouts, metrics,
                                       SqlRolloutStore(registry.engine),
                                       tick_seconds=r.tick_seconds,
                                       lease_seconds=r.lease_seconds), metrics)


async def serve(settings: Settings) -> None:
    await (await build(settings)).serve()
