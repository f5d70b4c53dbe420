"""Safety settings: built once in main(), passed down; nothing here runs at import time.

Policies come from LLMOPS_SAFETY_POLICIES as JSON: a default plus per-tenant overrides. Each
level only names what it changes; the rest comes from the level below (built-in defaults ->
`default` -> `tenants.<name>`), per direction:

    {"default": {"output": {"toxicity_block": 0.7}},
     "tenants": {"acme": {"input": {"injection_block": 0.5, "block": ["pii.kr_rrn"]}}}}

Fields per direction: toxicity_block, injection_block (null = never block), redact, block
(lists of PII categories; "pii.*" means all of them), injection_action ("drop" or "neutralise":
what a text at or above injection_block gets; meant for `context`, the retrieved passages,
where it defaults to "drop"), injection_model (whether the learned detector scores beside the
rules: on for input, off for context; a direction with injection_block null never runs it).
Directions: input, output, context.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmops_kit import ports
from llmops_kit.settings import ServiceSettings, service_config
from llmops_pii import PII_CATEGORIES
from llmops_safety.domain.model import InjectionAction
from llmops_safety.domain.policy import DirectionPolicy, PolicyBook, TenantPolicy


def _expand(categories: list[str]) -> list[str]:
    out: list[str] = []
    for c in categories:
        out.extend(PII_CATEGORIES if c == "pii.*" else [c])
    unknown = sorted(set(out) - set(PII_CATEGORIES))
    if unknown:
        raise ValueError(f"unknown PII categories {unknown}; known: {list(PII_CATEGORIES)}")
    return out


class DirectionOverride(BaseModel):
    """Only the fields given override the level below."""

    model_config = ConfigDict(extra="forbid")

    toxicity_block: float | None = Field(default=None, ge=0.0, le=1.0)
    injection_block: float | None = Field(default=None, ge=0.0, le=1.0)
    redact: list[str] = Field(default_factory=list)
    block: list[str] = Field(default_factory=list)
    injection_action: Literal["drop", "neutralise"] = "drop"
    injection_model: bool = True

    @field_validator("redact", "block")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        return _expand(value)

    def apply(self, base: DirectionPolicy) -> DirectionPolicy:
        changes: dict[str, Any] = {k: getattr(self, k) for k in self.model_fields_set}
        for key in ("redact", "block"):
            if key in changes:
                changes[key] = frozenset(changes[key])
        if "injection_action" in changes:
            changes["injection_action"] = InjectionAction(changes["injection_action"])
        # A category moved to `block` leaves `redact` (and vice versa) unless both are given.
        if "block" in changes and "redact" not in changes:
            changes["redact"] = base.redact - changes["block"]
        if "redact" in changes and "block" not in changes:
            changes["block"] = base.block - changes["redact"]
        return replace(base, **changes)


class PolicyOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: DirectionOverride | None = None
    output: DirectionOverride | None = None
    context: DirectionOverride | None = None

    def apply(self, base: TenantPolicy) -> TenantPolicy:
        return TenantPolicy(
            input=self.input.apply(base.input) if self.input else base.input,
            output=self.output.apply(base.output) if self.output else base.output,
            context=self.context.apply(base.context) if self.context else base.context,
        )


class PoliciesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: PolicyOverride = Field(default_factory=PolicyOverride)
    tenants: dict[str, PolicyOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> PoliciesSettings:
        self.book()  # a category both redacted and blocked fails here, at start-up
        return self

    def book(self) -> PolicyBook:
        default = self.default.apply(TenantPolicy())
        return PolicyBook(default, {name: o.apply(default) for name, o in self.tenants.items()})


class DetoxifySettings(BaseModel):
    """Local Detoxify weights (env: LLMOPS_SAFETY_DETOXIFY__CHECKPOINT / __CONFIG_DIR).

    `checkpoint` is a Detoxify .ckpt (a dict with "config" and "state_dict"); `config_dir` holds
    the transformers config and tokenizer files of its model. Both or neither; without them the
    offline alt-profanity-check model is used.
    """

    checkpoint: Path | None = None
    config_dir: Path | None = None
    device: str = "cpu"
    batch_size: int = Field(default=32, ge=1)

    @model_validator(mode="after")
    def _both_or_neither(self) -> DetoxifySettings:
        if (self.checkpoint is None) != (self.config_dir is None):
            raise ValueError("detoxify.checkpoint and detoxify.config_dir must be set together")
        if self.checkpoint is not None and not self.checkpoint.is_file():
            raise ValueError(f"detoxify.checkpoint {self.checkpoint} is not a file")
        if self.config_dir is not None and not (self.config_dir / "config.json").is_file():
            raise ValueError(f"detoxify.config_dir {self.config_dir} has no config.json")
        return self

    @property
    def configured(self) -> bool:
        return self.checkpoint is not None


class InjectionModelSettings(BaseModel):
    """The learned prompt-injection detector beside the rules (env: LLMOPS_SAFETY_INJECTION_MODEL__*).

    `threshold`: the model probability at which a window counts as an injection (and scores
    the default injection_block, 0.7); unset = the threshold fitted with the weights. `head`:
    a head JSON fitted by `python -m llmops_safety.training`; unset = the one in the package.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    head: Path | None = None

    @field_validator("head")
    @classmethod
    def _head_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"injection_model.head {value} is not a file")
        return value


class Settings(ServiceSettings):
    model_config = service_config("LLMOPS_SAFETY_")

    service_name: str = "safety"
    grpc_port: int = Field(default_factory=lambda: ports.service_port("safety"))
    detoxify: DetoxifySettings = Field(default_factory=DetoxifySettings)
    policies: PoliciesSettings = Field(default_factory=PoliciesSettings)
    injection_model: InjectionModelSettings = Field(default_factory=InjectionModelSettings)
    max_text_chars: int = Field(default=200_000, ge=1)
    # Characters of fully redacted text carried by each SafetyVerdictIssued (0: none).
    event_excerpt_chars: int = Field(default=200, ge=0)
    # Verdict events being published at once; past this, new ones are dropped (and counted)
    # rather than queueing without bound while Kafka is down.
    events_max_in_flight: int = Field(default=1000, ge=1)
    events_publish_timeout_seconds: float = Field(default=10.0, gt=0)
