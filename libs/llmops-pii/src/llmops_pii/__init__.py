"""Find and redact PII and secrets in text, in process: no service, no model, stdlib only.

    from llmops_pii import detect_pii, redact_pii
    result = redact_pii("mail me at kim@example.com")
    result.text      # "mail me at [EMAIL]"
    result.findings  # (Finding(start=11, end=26, category="pii.email", ...),)

Spans are Python str indices into the original text (code points).
"""

from llmops_pii.model import LABELS, PII_CATEGORIES, Finding, Redaction
from llmops_pii.redaction import apply_redactions, detect_pii, redact_pii

__all__ = [
    "LABELS",
    "PII_CATEGORIES",
    "Finding",
    "Redaction",
    "apply_redactions",
    "detect_pii",
    "redact_pii",
]
