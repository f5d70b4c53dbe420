"""The values the detectors return: findings, redactions, the PII categories and their labels."""

from __future__ import annotations

from dataclasses import dataclass

# Every PII category a detector can report; all of them can be redacted.
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


@dataclass(frozen=True, order=True)
class Finding:
    """Something found in a text: `text[start:end]` (Python str indices, i.e. code points).

    Other detectors (the safety service's toxicity and prompt injection) report their findings
    with this type too, under categories outside `pii.`, which redaction leaves alone.
    """

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
