"""PII detection: candidates by pattern, then validated (checksums, ranges) before they count.

Boundaries are ASCII-only on purpose: Korean particles attach directly to a number or an
address ("010-1234-5678로", "a@b.com으로"), so `\\b`/`\\w` (which treat Hangul as a word
character) would miss them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from datetime import date

from llmops_pii import validators as v
from llmops_pii.model import Finding

# Not glued to a longer alphanumeric run, a dash-joined id (ORD-2024-...), or a dotted version.
_L = r"(?<![0-9A-Za-z\-.+_])"
_R = r"(?![0-9A-Za-z_]|[.\-]\d)"

EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)
# A run of digit groups; which groups form the number is decided by the validators below.
_CARD = re.compile(_L + r"\d{2,6}(?:[ \-]\d{1,7}){1,5}" + _R + r"|" + _L + r"\d{13,19}" + _R)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){3,8}(?![A-Za-z0-9])")
_SSN = re.compile(_L + r"(\d{3})-(\d{2})-(\d{4})" + _R)
_SSN_KEYWORD = re.compile(
    r"(?i)(?:\bssn|social security(?: number| no\.?)?)\s*(?:#|no\.?|number)?\s*[:=]?\s*"
    r"(\d{3})[ ]?(\d{2})[ ]?(\d{4})(?!\d)"
)
_RRN = re.compile(_L + r"(\d{6})(?:\s?-\s?|(?P<bare>))([1-8]\d{6})" + _R)
_RRN_KEYWORD = re.compile(r"(?i)(?:주민\s*등록\s*번호|주민\s*번호|\brrn)\s*[:=]?\s*$")
_INTL_PHONE = re.compile(r"(?<![0-9A-Za-z+_])\+\d[\d \-.()]{5,24}\d(?!\d)")
_US_PHONE = re.compile(
    _L + r"(?:1[ .\-])?(?:\((?P<a1>\d{3})\) ?|(?P<a2>\d{3})(?P<s1>[ .\-]))"
    r"(?P<x>\d{3})(?P<s2>[ .\-])(?P<n>\d{4})" + _R
)
_KR_PHONE = re.compile(
    _L + r"(?P<p>0(?:2|[3-6][1-5]|70|1[016789]))(?P<s1>[ .\-]?)(?P<x>\d{3,4})(?P<s2>[ .\-]?)"
    r"(?P<n>\d{4})" + _R
)
_IPV4 = re.compile(
    r"(?<![0-9A-Za-z.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
    r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![0-9A-Za-z_]|\.\d)"
)
_VERSION_BEFORE = re.compile(r"(?i)(?<![a-z])(?:version|ver\.?|release|build|firmware|버전)\s*[:=]?\s*$")
_IPV6 = re.compile(r"(?<![0-9A-Za-z_:.])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(?![0-9A-Za-z_])")
_DIGIT_GROUP = re.compile(r"\d+")


def _groups(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return [(m.start() + start, m.end() + start) for m in _DIGIT_GROUP.finditer(text[start:end])]


def _longest_valid_prefix(
    groups: list[tuple[int, int]], text: str, ok: Callable[[str], bool], min_groups: int = 1
) -> tuple[int, int] | None:
    """The longest run of leading digit groups that validates (a number followed by other
    numbers, e.g. a card then its expiry, is still found)."""
    for k in range(len(groups), min_groups - 1, -1):
        digits = "".join(text[s:e] for s, e in groups[:k])
        if ok(digits):
            return groups[0][0], groups[k - 1][1]
    return None


def _emails(text: str) -> Iterator[Finding]:
    for m in EMAIL.finditer(text):
        yield Finding(m.start(), m.end(), "pii.email", 1.0, "email")


def _cards(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        groups = _groups(text, m.start(), m.end())
        # One separator throughout ("1234 5678-9012..." is not one card): keep the leading
        # groups joined by the first separator; what follows (an expiry date) is not the card.
        seps = [text[a[1]:b[0]] for a, b in itertools.pairwise(groups)]
        same = next((i for i, s in enumerate(seps) if s != seps[0]), len(seps)) if seps else 0
        span = _longest_valid_prefix(
            groups[:same + 1], text,
            lambda d: 13 <= len(d) <= 19 and v.card_brand(d) is not None and v.luhn_ok(d),
        )
        if span:
            yield Finding(span[0], span[1], "pii.credit_card", 1.0, "card.luhn")


def _ibans(text: str) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        raw = m.group()
        # Try the longest prefix of 4-character blocks that validates (text may follow).
        parts = raw.split(" ") if " " in raw else [raw]
        for k in range(len(parts), 0, -1):
            compact = "".join(parts[:k])
            if v.iban_ok(compact):
                end = m.start() + len(" ".join(parts[:k]))
                yield Finding(m.start(), end, "pii.iban", 1.0, "iban.mod97")
                break


def _ssns(text: str) -> Iterator[Finding]:
    for m in _SSN.finditer(text):
        if v.us_ssn_ok(*m.groups()):
            yield Finding(m.start(), m.end(), "pii.us_ssn", 1.0, "ssn")
    for m in _SSN_KEYWORD.finditer(text):
        if v.us_ssn_ok(*m.groups()):
            yield Finding(m.start(1), m.end(3), "pii.us_ssn", 1.0, "ssn.keyword")


def _rrns(text: str, today: date | None) -> Iterator[Finding]:
    for m in _RRN.finditer(text):
        digits = m.group(1) + m.group(3)
        if not v.kr_rrn_ok(digits, today):
            continue
        if m.group("bare") is not None and not _rrn_bare_ok(text, m.start(), digits):
            continue
        yield Finding(m.start(), m.end(), "pii.kr_rrn", 1.0, "kr_rrn")


def _rrn_bare_ok(text: str, start: int, digits: str) -> bool:
    """13 bare digits are only an RRN with a keyword right before or a passing (pre-2020)
    check digit: without the dash, a valid date alone is too weak a signal (order numbers,
    timestamps). Written with its dash, the format and a valid date are enough."""
    if _RRN_KEYWORD.search(text[max(0, start - 20):start]):
        return True
    return v.kr_rrn_checksum_ok(digits)


def _intl_phone_ok(digits: str) -> bool:
    if not 8 <= len(digits) <= 15:
        return False
    if digits.startswith("1"):
        return len(digits) == 11 and v.nanp_ok(digits[1:])
    if digits.startswith("82"):
        national = digits[2:]
        return v.kr_phone_ok(national if national.startswith("0") else "0" + national)
    return digits[0] != "0"


def _phones(text: str) -> Iterator[Finding]:
    for m in _INTL_PHONE.finditer(text):
        raw = m.group()
        if re.search(r"[ .\-()]{3}|\.\.|--", raw):
            continue
        # "+44 (0)20 ..." : the trunk 0 in brackets is not dialled from abroad.
        groups = [g for g in _groups(text, m.start(), m.end()) if text[g[0] - 1:g[1] + 1] != "(0)"]
        span = _longest_valid_prefix(groups, text, _intl_phone_ok, 2)
        if span:
            yield Finding(m.start(), span[1], "pii.phone", 1.0, "phone.e164")
    for m in _US_PHONE.finditer(text):
        if m.group("a2") is not None and m.group("s1") != m.group("s2"):
            continue
        if v.nanp_ok((m.group("a1") or m.group("a2")) + m.group("x") + m.group("n")):
            yield Finding(m.start(), m.end(), "pii.phone", 1.0, "phone.us")
    for m in _KR_PHONE.finditer(text):
        prefix, s1, s2 = m.group("p"), m.group("s1"), m.group("s2")
        if s1 != s2 or (not s1 and not prefix.startswith("01")):
            continue  # landlines only with separators; bare digits only for mobiles
        if v.kr_phone_ok(prefix + m.group("x") + m.group("n")):
            yield Finding(m.start(), m.end(), "pii.phone", 1.0, "phone.kr")


def _ips(text: str) -> Iterator[Finding]:
    for m in _IPV4.finditer(text):
        if _VERSION_BEFORE.search(text[max(0, m.start() - 12):m.start()]):
            continue
        yield Finding(m.start(), m.end(), "pii.ip_address", 1.0, "ipv4")
    for m in _IPV6.finditer(text):
        cand = m.group().rstrip(".")
        if cand.endswith(":") and not cand.endswith("::"):
            cand = cand[:-1]
        # Fewer hex digits than that is slicing (a[1::2]) or a C++ scope, not an address.
        if sum(c in "0123456789abcdefABCDEF" for c in cand) >= 5 and v.ipv6_ok(cand):
            yield Finding(m.start(), m.start() + len(cand), "pii.ip_address", 1.0, "ipv6")


# Which detector wins when two claim overlapping text (higher first).
PRIORITY: dict[str, int] = {
    "pii.secret": 100, "pii.api_key": 90, "pii.email": 80, "pii.iban": 70,
    "pii.credit_card": 60, "pii.kr_rrn": 58, "pii.us_ssn": 56, "pii.phone": 50,
    "pii.ip_address": 40,
}


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keeps the most specific finding where spans overlap: higher priority, then longer."""
    kept: list[Finding] = []
    ranked = sorted(findings, key=lambda f: (-PRIORITY.get(f.category, 0), f.start - f.end, f.start))
    for f in ranked:
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept)


def detect_pii_only(text: str, today: date | None = None) -> list[Finding]:
    """Personal data (not secrets), overlaps not yet resolved."""
    return [
        *_emails(text), *_cards(text), *_ibans(text), *_ssns(text), *_rrns(text, today),
        *_phones(text), *_ips(text),
    ]
