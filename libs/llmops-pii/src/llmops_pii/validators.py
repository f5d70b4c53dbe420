"""Checksums and range rules that turn a pattern match into a finding (or reject it)."""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from datetime import date

# IBAN length per country (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """The card network whose IIN range and length fit `digits`, or None."""
    n = len(digits)
    two, three, four, six = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= two <= 55 or 2221 <= four <= 2720) and n == 16:
        return "mastercard"
    if two in (34, 37) and n == 15:
        return "amex"
    if (four == 6011 or two == 65 or 644 <= three <= 649 or 622126 <= six <= 622925) and 16 <= n <= 19:
        return "discover"
    if 3528 <= four <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= three <= 305 or two in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if two == 62 and 16 <= n <= 19:
        return "unionpay"
    return None


def iban_ok(compact: str) -> bool:
    """Country-specific length and the ISO 7064 mod-97 check."""
    country = compact[:2]
    if IBAN_LENGTHS.get(country) != len(compact) or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def us_ssn_ok(area: str, group: str, serial: str) -> bool:
    """SSA rules: no 000/666/9xx area, no 00 group, no 0000 serial."""
    return (area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000")


# Gender/century digit -> birth century: 1-4 citizens, 5-8 foreign residents (odd: male).
_RRN_CENTURY = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000,
                "8": 2000}
_RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)


def kr_rrn_ok(digits13: str, today: date | None = None) -> bool:
    """YYMMDD + gender digit 1-8 with a real, past birth date. The check digit is not required.

    Numbers issued since October 2020 (newborns, foreigners, and anyone re-issued a number,
    whatever their birth year) encode no region and carry no valid check digit, so the birth
    date alone cannot tell which rule applies: a failing checksum never clears a number.
    """
    century = _RRN_CENTURY.get(digits13[6])
    if century is None:
        return False
    try:
        born = date(century + int(digits13[:2]), int(digits13[2:4]), int(digits13[4:6]))
    except ValueError:
        return False
    return born <= (today or date.today())


def kr_rrn_checksum_ok(digits13: str) -> bool:
    """The pre-2020-10 check digit: (11 - sum % 11) % 10, or (13 - sum % 11) % 10 for the
    foreign-resident numbers (gender digits 5-8) that used it."""
    total = sum(int(d) * w for d, w in zip(digits13[:12], _RRN_WEIGHTS, strict=True))
    check = int(digits13[12])
    if check == (11 - total % 11) % 10:
        return True
    return digits13[6] in "5678" and check == (13 - total % 11) % 10


def ipv6_ok(candidate: str) -> bool:
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def shannon_entropy(value: str) -> float:
    """Bits per character; random keys score ~4-6, words and placeholders well below."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def char_classes(value: str) -> int:
    return sum((
        any(c.islower() for c in value),
        any(c.isupper() for c in value),
        any(c.isdigit() for c in value),
        any(not c.isalnum() for c in value),
    ))


def nanp_ok(digits10: str) -> bool:
    """North American numbering plan: NXX area (not N11, not N9X), NXX exchange (not N11)."""
    area, exchange = digits10[:3], digits10[3:6]
    return (area[0] in "23456789" and area[1] != "9" and area[1:] != "11"
            and exchange[0] in "23456789" and exchange[1:] != "11")


_KR_AREA = ("02", "031", "032", "033", "041", "042", "043", "044", "051", "052", "053", "054",
            "055", "061", "062", "063", "064", "070")
_KR_MOBILE = ("010", "011", "016", "017", "018", "019")


def kr_phone_ok(national: str) -> bool:
    """A Korean national number written with its leading 0 (e.g. 01012345678, 021234567)."""
    if national.startswith("010"):
        return len(national) == 11 and national[3] != "0"
    if national.startswith(_KR_MOBILE):  # older carriers' numbers: 3- or 4-digit exchange
        return len(national) in (10, 11) and national[3] != "0"
    for prefix in _KR_AREA:
        if national.startswith(prefix):
            return len(national) - len(prefix) in (7, 8) and national[len(prefix)] != "0"
    return False
