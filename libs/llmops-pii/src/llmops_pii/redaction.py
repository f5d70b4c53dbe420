"""Detection and redaction over all detectors: PII and secrets, overlaps resolved."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date

from llmops_pii.detectors import detect_pii_only, resolve_overlaps
from llmops_pii.model import LABELS, PII_CATEGORIES, Finding, Redaction
from llmops_pii.secrets import detect_secrets


def detect_pii(text: str, today: date | None = None) -> list[Finding]:
    """Every validated PII and secret finding in `text`, non-overlapping, in text order.

    `today` bounds Korean RRN birth dates (a date in the future is not a birth date).
    """
    return resolve_overlaps([*detect_secrets(text), *detect_pii_only(text, today)])


def apply_redactions(text: str, findings: Iterable[Finding]) -> str:
    """Replaces each PII finding's span with its label; findings must not overlap."""
    out: list[str] = []
    pos = 0
    for f in sorted(x for x in findings if x.is_pii):
        out.append(text[pos:f.start])
        out.append(LABELS[f.category])
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def redact_pii(
    text: str, categories: Collection[str] | None = None, today: date | None = None
) -> Redaction:
    """Finds PII and replaces the given categories (default: all) with labels like [EMAIL].

    Returns the redacted text and the findings that were redacted (spans in the original text).
    """
    wanted = set(PII_CATEGORIES if categories is None else categories)
    unknown = wanted - set(PII_CATEGORIES)
    if unknown:
        raise ValueError(f"unknown PII categories: {sorted(unknown)}")
    findings = tuple(f for f in detect_pii(text, today) if f.category in wanted)
    return Redaction(apply_redactions(text, findings), findings)
