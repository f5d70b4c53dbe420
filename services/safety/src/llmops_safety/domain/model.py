"""Plain values the detectors and the policy share (no protobuf, no I/O)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# Every category a finding can have. PII categories can be redacted; the other two only score.
PII_CATEGORIES: tuple[str, ...] = (
    "pii.email",
    "pii.phone",
    "pii.credit_card",
    "pii.iban",
    "pii.us_ssn",
    "pii.kr_rrn",
    "pii.ip_address",
    "pii.api_key",
    "pii.secret",
)
TOXICITY = "toxicity"
PROMPT_INJECTION = "prompt_injection"
ALL_CATEGORIES: tuple[str, ...] = (*PII_CATEGORIES, TOXICITY, PROMPT_INJECTION)

# What a redacted span becomes.
LABELS: dict[str, str] = {
    "pii.email": "[EMAIL]",
    "pii.phone": "[PHONE]",
    "pii.credit_card": "[CREDIT_CARD]",
    "pii.iban": "[IBAN]",
    "pii.us_ssn": "[US_SSN]",
    "pii.kr_rrn": "[KR_RRN]",
    "pii.ip_address": "[IP_ADDRESS]",
    "pii.api_key": "[API_KEY]",
    "pii.secret": "[SECRET]",
}


class Direction(enum.Enum):
    INPUT = "input"
    OUTPUT = "output"


class Verdict(enum.Enum):
    ALLOW = "allow"
    REDACT = "redact"
    BLOCK = "block"


@dataclass(frozen=True, order=True)
class Finding:
    """Something found in a text: `text[start:end]` (Python str indices, i.e. code points)."""

    start: int
    end: int
    category: str
    score: float = 1.0
    # The rule that fired, for debugging and dashboards; never the matched text itself.
    rule: str = ""

    @property
    def is_pii(self) -> bool:
        return self.category.startswith("pii.")


@dataclass(frozen=True)
class Redaction:
    text: str
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Analysis:
    """Everything the detectors found, before any policy is applied."""

    findings: tuple[Finding, ...]
    scores: dict[str, float]
    toxicity_backend: str

    @property
    def pii(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_pii)


@dataclass(frozen=True)
class CheckResult:
    verdict: Verdict
    analysis: Analysis
    redacted_text: str
    reasons: tuple[str, ...] = field(default_factory=tuple)
