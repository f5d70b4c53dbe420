"""Plain values the detectors and the policy share (no protobuf, no I/O).

Findings, redactions and the PII categories are llmops_pii's, which this service redacts with.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from llmops_pii import PII_CATEGORIES, Finding

# Every category a finding can have. PII categories can be redacted; the other two only score.
TOXICITY = "toxicity"
PROMPT_INJECTION = "prompt_injection"
ALL_CATEGORIES: tuple[str, ...] = (*PII_CATEGORIES, TOXICITY, PROMPT_INJECTION)


class Direction(enum.Enum):
    INPUT = "input"
    OUTPUT = "output"
    # A retrieved passage about to enter a prompt (indirect prompt injection).
    CONTEXT = "context"


class InjectionAction(enum.Enum):
    """What a text whose prompt-injection score reaches the threshold gets."""

    DROP = "drop"  # verdict BLOCK: the caller leaves the text out
    NEUTRALISE = "neutralise"  # verdict REDACT: instruction-like spans replaced

NEUTRALISED_LABEL = "[INSTRUCTION REMOVED]"


class Verdict(enum.Enum):
    ALLOW = "allow"
    REDACT = "redact"
    BLOCK = "block"


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
    # Each PII finding hidden in redacted_text, with the label that replaced it.
    replacements: dict[Finding, str] = field(default_factory=dict)
    # Set when the prompt-injection score reached the threshold: what the policy did.
    injection_action: InjectionAction | None = None
