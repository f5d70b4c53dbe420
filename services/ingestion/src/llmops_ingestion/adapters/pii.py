"""PII redaction before indexing, with the safety service's own detectors (in process)."""

from __future__ import annotations

from llmops_safety.domain.redaction import redact_pii


class SafetyPiiRedactor:
    """E-mail, phones, cards, IBAN, SSN, Korean RRN, IPs, API keys and secrets -> [LABEL]."""

    def redact(self, text: str) -> tuple[str, int]:
        result = redact_pii(text)
        return result.text, len(result.findings)
