"""Input rules shared by the model and prompt use cases; each failure has a stable reason."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass

from llmops_registry.domain.errors import BadRequest
from llmops_registry.domain.model import LATEST, Lineage

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
POINTER_RE = re.compile(r"[a-z][a-z0-9-]{0,62}")
URI_RE = re.compile(r"[a-z][a-z0-9+.-]*://\S+")
MAX_URI = 2048
MAX_TEXT = 256          # base model, metadata keys, training job id
MAX_VALUE = 4096        # metadata values
MAX_METADATA = 64
MAX_REASON = 1000
# Versions and row ids are SQL INTEGER columns: 32-bit signed on Postgres.
MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class Limits:
    default_page_size: int = 50
    max_page_size: int = 500
    max_template_chars: int = 64 * 1024


def check_name(name: str, kind: str) -> str:
    """Model and prompt names: lower-case, [a-z0-9][a-z0-9._-]{0,127}."""
    if not NAME_RE.fullmatch(name):
        raise BadRequest(f"BAD_{kind.upper()}_NAME",
                         f"{kind} name {name!r} must match [a-z0-9][a-z0-9._-]{{0,127}}")
    return name


def check_pointer(pointer: str, kind: str, *, settable: bool) -> str:
    """Aliases and labels: [a-z][a-z0-9-]{0,62}; `latest` is the registry's own."""
    if not POINTER_RE.fullmatch(pointer):
        raise BadRequest(f"BAD_{kind.upper()}",
                         f"{kind} {pointer!r} must match [a-z][a-z0-9-]{{0,62}}")
    if settable and pointer == LATEST:
        raise BadRequest(f"RESERVED_{kind.upper()}",
                         f"{kind} {LATEST!r} always names the newest version and cannot be set")
    return pointer


def check_version(version: int) -> int:
    if version < 1:
        raise BadRequest("BAD_VERSION", "versions start at 1")
    if version > MAX_INT:
        raise BadRequest("BAD_VERSION", f"versions are at most {MAX_INT}")
    return version


def check_uri(uri: str, field_name: str, *, required: bool) -> str:
    if not uri and not required:
        return uri
    if len(uri) > MAX_URI or not URI_RE.fullmatch(uri):
        reason = "BAD_ARTIFACT_URI" if field_name == "artifact_uri" else "BAD_LINEAGE"
        raise BadRequest(reason, f"{field_name} {uri[:100]!r} must be scheme://... "
                                 f"(pkg://, file:///, s3://, hf://...), at most {MAX_URI} chars")
    return uri


def check_format(fmt: str, allowed: tuple[str, ...]) -> str:
    if fmt not in allowed:
        raise BadRequest("BAD_FORMAT", f"format {fmt!r} is not one of {list(allowed)}")
    return fmt


def check_text(value: str, field_name: str, limit: int = MAX_TEXT) -> str:
    if len(value) > limit:
        raise BadRequest("FIELD_TOO_LONG", f"{field_name} is longer than {limit} characters")
    check_no_nul(value, field_name)
    return value


def check_no_nul(value: str, field_name: str) -> None:
    """Postgres text cannot hold NUL characters (nor JSON strings in it, \\u0000)."""
    if "\x00" in value:
        raise BadRequest("NUL_CHARACTER", f"{field_name} contains a NUL character")


def check_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    if len(metadata) > MAX_METADATA:
        raise BadRequest("BAD_METADATA", f"at most {MAX_METADATA} metadata entries")
    for key, value in metadata.items():
        if not key or len(key) > MAX_TEXT or len(value) > MAX_VALUE:
            raise BadRequest("BAD_METADATA", f"metadata key {key[:50]!r}: keys 1-{MAX_TEXT} "
                                             f"chars, values at most {MAX_VALUE}")
        check_no_nul(key, "metadata key")
        check_no_nul(value, f"metadata {key[:50]!r}")
    return dict(metadata)


def check_lineage(lineage: Lineage, own_name: str) -> Lineage:
    if lineage.parent_name and not lineage.parent_version:
        raise BadRequest("BAD_LINEAGE", "lineage.parent_name needs a parent_version")
    if lineage.parent_name:
        check_name(lineage.parent_name, "model")
    if lineage.parent_version:
        check_version(lineage.parent_version)
    check_text(lineage.training_job_id, "lineage.training_job_id")
    check_uri(lineage.dataset_uri, "lineage.dataset_uri", required=False)
    if lineage.parent_version and not lineage.parent_name:
        # A bare parent version means an earlier version of the same model.
        return Lineage(own_name, lineage.parent_version, lineage.training_job_id,
                       lineage.dataset_uri)
    return lineage


def page_size(requested: int, limits: Limits) -> int:
    """0 means the default; larger than the maximum is coerced to it (AIP-158)."""
    return min(requested or limits.default_page_size, limits.max_page_size)


def encode_token(cursor: int | str) -> str:
    raw = f"{'i' if isinstance(cursor, int) else 's'}:{cursor}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(token: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("BAD_PAGE_TOKEN", "page_token is not one this service issued") from exc
    kind, sep, value = raw.partition(":")
    if not sep or kind not in ("i", "s"):
        raise BadRequest("BAD_PAGE_TOKEN", "page_token is not one this service issued")
    return kind, value


def decode_int_token(token: str) -> int | None:
    if not token:
        return None
    kind, value = _decode(token)
    # isascii: str.isdigit() also accepts "²", which int() refuses
    if kind != "i" or not (value.isascii() and value.isdigit()) or int(value) > MAX_INT:
        raise BadRequest("BAD_PAGE_TOKEN", "page_token is not one this call issued")
    return int(value)


def decode_str_token(token: str) -> str | None:
    if not token:
        return None
    kind, value = _decode(token)
    if kind != "s" or not NAME_RE.fullmatch(value):  # the cursor is a model or prompt name
        raise BadRequest("BAD_PAGE_TOKEN", "page_token is not one this call issued")
    return value
