"""PII redaction before indexing, in process, with llmops_pii (the detectors the safety
service uses too, without its models)."""

from __future__ import annotations

from llmops_pii import detect_pii, redact_pii


class PiiRedactor:
    """E-mail, phones, cards, IBAN, SSN, Korean RRN, IPs, API keys and secrets -> [LABEL]."""

    def redact(self, text: str) -> tuple[str, int]:
        result = redact_pii(text)
        return result.text, len(result.findings)

    def categories(self, text: str) -> tuple[str, ...]:
        return tuple(sorted({f.category for f in detect_pii(text)}))
