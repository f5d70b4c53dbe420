"""Continuous training's settings: LLMOPS_TRAINER_CONTINUOUS as JSON, a default policy and
per-tenant ones, off unless a tenant's policy turns it on, e.g.

    {"tenants": {"acme": {"enabled": true, "eval_dataset": "policies-eval",
                          "job": {"lora": true, "max_steps": 200},
                          "canary": {"share": 10, "step": 30, "interval_seconds": 300}}}}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmops_kit.ports import service_address

Kind = Literal["instruction", "chat", "text"]
TRAINABLE_KINDS: tuple[Kind, ...] = ("instruction", "chat", "text")


class JobOverrides(BaseModel):
    """What the loop's job sets (the rest takes the trainer's JobDefaults)."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = ""
    lora: bool = True
    lora_r: int = Field(default=0, ge=0)
    lora_alpha: int = Field(default=0, ge=0)
    zero_stage: int = Field(default=0, ge=0, le=3)
    epochs: int = Field(default=0, ge=0)
    learning_rate: float = Field(default=0.0, ge=0)
    micro_batch_size: int = Field(default=0, ge=0)
    gradient_accumulation: int = Field(default=0, ge=0)
    max_seq_len: int = Field(default=0, ge=0)
    max_steps: int = Field(default=0, ge=0)
    eval_interval_steps: int = Field(default=0, ge=0)
    checkpoint_interval_steps: int = Field(default=0, ge=0)
    world_size: int = Field(default=0, ge=0)
    seed: int = Field(default=0, ge=0)


class CanaryPolicy(BaseModel):
    """StartCanary's settings (0: the registry's defaults)."""

    model_config = ConfigDict(extra="forbid")

    share: int = Field(default=10, ge=1, le=100)
    step: int = Field(default=20, ge=1, le=100)
    max_share: int = Field(default=100, ge=1, le=100)
    interval_seconds: int = Field(default=300, ge=1)
    threshold: int = Field(default=2, ge=1)
    min_requests: int = Field(default=0, ge=0)
    max_error_rate_increase: float = Field(default=0.0, ge=0)
    max_latency_ratio: float = Field(default=0.0, ge=0)
    max_safety_block_increase: float = Field(default=0.0, ge=0)
    max_groundedness_drop: float = Field(default=0.0, ge=0)
    max_negative_feedback_increase: float = Field(default=0.0, ge=0)


class TenantPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    # Triggers: a new dataset version of one of these kinds (and, when `dataset_names` is set,
    # one of these names); a DriftDetected of the tenant (trains on its newest such version).
    on_dataset: bool = True
    dataset_kinds: list[Kind] = Field(
        default_factory=lambda: list(TRAINABLE_KINDS))
    dataset_names: list[str] = Field(default_factory=list)
    on_drift: bool = False
    # The model the candidate becomes a version of: the one inference serves and the canary
    # rolls out (its `production` alias is what the candidate is compared with).
    model_name: str = "smollm2-135m-instruct"
    job: JobOverrides = Field(default_factory=JobOverrides)
    # The evaluation set: a dataset version id (ds-...) of kind eval, or a name (its newest
    # version of kind eval at evaluation time). Empty: the loop cannot evaluate (it fails).
    eval_dataset: str = ""
    prompt: str = Field(default="rag-answer@production", pattern=r"^[^@]+(@[^@]+)?$")
    max_new_tokens: int = Field(default=64, ge=1, le=4096)
    # Only the first N questions (0: all).
    eval_limit: int = Field(default=0, ge=0)
    eval_timeout_seconds: float = Field(default=120.0, gt=0)
    canary: CanaryPolicy = Field(default_factory=CanaryPolicy)
    # No new loop within this long after the tenant's last one started (one loop in flight
    # per tenant at any time, whatever the cooldown).
    cooldown_seconds: float = Field(default=3600.0, ge=0)


class ContinuousSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: TenantPolicy = Field(default_factory=TenantPolicy)
    tenants: dict[str, TenantPolicy] = Field(default_factory=dict)
    # How often the loops in flight are moved on (job finished? canary ended?).
    poll_seconds: float = Field(default=5.0, gt=0)
    # A step that fails this often in a row (inference or the registry unreachable) ends the
    # loop `failed`.
    max_attempts: int = Field(default=5, ge=1)
    inference_address: str = Field(default_factory=lambda: service_address("inference"))
    consumer_group: str = "trainer-continuous"

    def policy(self, tenant: str) -> TenantPolicy:
        return self.tenants.get(tenant, self.default)

    @property
    def any_enabled(self) -> bool:
        return self.default.enabled or any(p.enabled for p in self.tenants.values())
