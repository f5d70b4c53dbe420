"""API keys, tokens and secrets: provider formats first, then `name = value` assignments.

Provider-issued identifiers (AWS key ids, GitHub/Slack/Google/Stripe/OpenAI keys, JWTs) are
`pii.api_key`; material that grants access on its own (AWS secret keys, private keys,
passwords, generic secrets) is `pii.secret`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator

from llmops_pii.model import Finding
from llmops_pii.validators import char_classes, shannon_entropy

_TOKEN_END = r"(?![A-Za-z0-9_\-])"

# (rule, category, pattern). Each pattern's whole match is the secret.
PROVIDER_PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("aws_access_key_id", "pii.api_key", re.compile(
        r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA)[A-Z0-9]{16}"
        r"(?![A-Z0-9])")),
    ("github_token", "pii.api_key", re.compile(
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"
        + _TOKEN_END)),
    ("slack_token", "pii.api_key", re.compile(
        r"(?<![A-Za-z0-9])(?:xox[abeoprs]|xapp)-[0-9A-Za-z][0-9A-Za-z\-]{8,}" + _TOKEN_END)),
    ("google_api_key", "pii.api_key", re.compile(
        r"(?<![A-Za-z0-9_])AIza[0-9A-Za-z_\-]{35}" + _TOKEN_END)),
    ("stripe_secret_key", "pii.api_key", re.compile(
        r"(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,247}" + _TOKEN_END)),
    ("jwt", "pii.api_key", re.compile(
        r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{10,}"
        + _TOKEN_END)),
)
# OpenAI-style keys need a randomness check: "sk-" also starts ordinary hyphenated words.
_OPENAI = re.compile(r"(?<![A-Za-z0-9_\-])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}" + _TOKEN_END)
_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s:,\-]*)"
)
_AWS_SECRET = re.compile(
    r"(?i)(?:aws)?_?(?:secret)_?(?:access)?_?key(?:_id)?[\"']?\s*[:=]\s*[\"']?"
    r"(?P<v>(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
# `name = value`, `name: value`, `"name": "value"`; the value is the secret, not the name.
_ASSIGNMENT = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?P<k>api[_\-]?key|apikey|x-api-key|access[_\-]?token|auth[_\-]?token"
    r"|bearer[_\-]?token|refresh[_\-]?token|client[_\-]?secret|secret[_\-]?key|secret"
    r"|private[_\-]?key|password|passwd|pwd|token|비밀번호|패스워드|암호)"
    r"[\"']?\s*(?:[:=]|=>|\s는|\s은)\s*[\"']?"
    r"(?P<v>[A-Za-z0-9_\-+/=.~!@#%^&*]{8,256})(?=[\s\"',;)}\]]|$)"
)
_PLACEHOLDER = re.compile(
    r"(?i)^(?:x+|\*+|\.+|<.*>|\$.*|%.*|your[_\-].*|changeme|example.*|dummy.*|test.*|"
    r"placeholder|redacted|null|none|true|false|undefined|os\.environ.*|process\.env.*)$"
)
_API_KEY_NAMES = ("api", "token")
_BASE64URL = re.compile(r"^[A-Za-z0-9_\-]+$")


def _jwt_header_ok(token: str) -> bool:
    head = token.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def _random_enough(value: str, min_entropy: float) -> bool:
    return shannon_entropy(value) >= min_entropy and char_classes(value) >= 2


def detect_secrets(text: str) -> list[Finding]:
    """Every key, token and secret in `text` (overlaps not yet resolved)."""
    return list(_iter_secrets(text))


def _iter_secrets(text: str) -> Iterator[Finding]:
    for rule, category, pattern in PROVIDER_PATTERNS:
        for m in pattern.finditer(text):
            if rule == "jwt" and not _jwt_header_ok(m.group()):
                continue
            yield Finding(m.start(), m.end(), category, 1.0, rule)
    for m in _OPENAI.finditer(text):
        body = m.group()[3:]
        if _random_enough(body, 3.5) and any(c.isdigit() for c in body):
            yield Finding(m.start(), m.end(), "pii.api_key", 0.9, "openai_api_key")
    for m in _PEM.finditer(text):
        yield Finding(m.start(), len(m.group().rstrip()) + m.start(), "pii.secret", 1.0, "private_key")
    for m in _AWS_SECRET.finditer(text):
        if _random_enough(m.group("v"), 3.5):
            yield Finding(m.start("v"), m.end("v"), "pii.secret", 1.0, "aws_secret_access_key")
    for m in _ASSIGNMENT.finditer(text):
        value, name = m.group("v"), m.group("k").lower()
        if _PLACEHOLDER.match(value):
            continue
        # Long values must look random; short ones (passwords) need only mixed character classes.
        if not _random_enough(value, 3.0 if len(value) < 16 else 3.5):
            continue
        category = "pii.api_key" if any(n in name for n in _API_KEY_NAMES) else "pii.secret"
        score = 0.9 if len(value) >= 16 else 0.8
        yield Finding(m.start("v"), m.end("v"), category, score, "assignment")
