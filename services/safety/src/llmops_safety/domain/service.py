"""The safety use cases behind the gRPC API: validate, check off the event loop, announce."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from llmops_kit.errors import InvalidArgument
from llmops_pii import PII_CATEGORIES, Redaction, apply_redactions, redact_pii
from llmops_safety.domain.engine import SafetyEngine
from llmops_safety.domain.model import CheckResult, Direction
from llmops_safety.domain.policy import PolicyBook, TenantPolicy
from llmops_safety.ports import VerdictPublisher


@dataclass(frozen=True)
class Info:
    toxicity_backend: str
    toxicity_backend_detail: str
    tenant: str
    policy: TenantPolicy
    policy_source: str


class SafetyService:
    def __init__(self, engine: SafetyEngine, policies: PolicyBook, publisher: VerdictPublisher,
                 max_text_chars: int = 200_000, excerpt_chars: int = 200) -> None:
        self.engine = engine
        self.policies = policies
        self.publisher = publisher
        self.max_text_chars = max_text_chars
        self.excerpt_chars = excerpt_chars

    def _check_length(self, text: str) -> None:
        if len(text) > self.max_text_chars:
            raise InvalidArgument(
                "TEXT_TOO_LONG", f"text has {len(text)} characters, the limit is {self.max_text_chars}"
            )

    async def check_text(self, tenant: str, text: str, direction: Direction) -> CheckResult:
        self._check_length(text)
        policy, _ = self.policies.for_tenant(tenant)
        # Regexes and the model are CPU-bound: keep the event loop free for other calls.
        result = await asyncio.to_thread(self.engine.check, text, policy.for_direction(direction))
        excerpt = ""
        if self.excerpt_chars:
            # Every PII finding hidden, whatever the policy: events must never carry raw PII.
            excerpt = apply_redactions(text, result.analysis.pii)[: self.excerpt_chars]
        self.publisher.submit(result, direction, len(text), excerpt)
        return result

    async def redact(self, text: str, categories: Sequence[str]) -> Redaction:
        self._check_length(text)
        unknown = sorted(set(categories) - set(PII_CATEGORIES))
        if unknown:
            raise InvalidArgument(
                "UNKNOWN_CATEGORY", f"unknown categories {unknown}; known: {list(PII_CATEGORIES)}"
            )
        wanted = list(categories) or None
        return await asyncio.to_thread(redact_pii, text, wanted, self.engine.today)

    def info(self, tenant: str) -> Info:
        policy, source = self.policies.for_tenant(tenant)
        return Info(self.engine.backend, getattr(self.engine.toxicity, "detail", ""), tenant,
                    policy, source)
