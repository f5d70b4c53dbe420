"""What the property tests found on Postgres: values its columns cannot hold are refused with
a reason (INVALID_ARGUMENT) instead of failing inside the database (INTERNAL)."""

from __future__ import annotations

import base64

import pytest

from llmops_registry.domain import templates
from llmops_registry.domain import validation as v
from llmops_registry.domain.errors import BadRequest
from llmops_registry.domain.model import Lineage

pytestmark = pytest.mark.unit


def token(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def reason(call, *args) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(BadRequest) as info:
        call(*args)
    return info.value.reason


def test_versions_beyond_a_sql_integer_are_bad_versions() -> None:
    assert v.check_version(2**31 - 1) == 2**31 - 1
    assert reason(v.check_version, 2**31) == "BAD_VERSION"
    assert reason(v.check_version, 2**32 - 1) == "BAD_VERSION"
    assert reason(v.check_lineage, Lineage("m", 2**32 - 1), "m") == "BAD_VERSION"


def test_page_tokens_this_service_never_issues_are_refused() -> None:
    assert v.decode_int_token(v.encode_token(42)) == 42
    assert v.decode_str_token(v.encode_token("rag-answer")) == "rag-answer"
    for raw in ("i:²", "i:99999999999", "s:a\x00b", "s:Not A Name"):
        decode = v.decode_int_token if raw.startswith("i") else v.decode_str_token
        assert reason(decode, token(raw)) == "BAD_PAGE_TOKEN", raw


def test_nul_characters_are_refused_in_stored_text() -> None:
    assert reason(v.check_text, "a\x00b", "description", 100) == "NUL_CHARACTER"
    assert reason(v.check_metadata, {"k": "v\x00"}) == "NUL_CHARACTER"
    assert reason(v.check_metadata, {"k\x00": "v"}) == "NUL_CHARACTER"
    assert reason(templates.analyse, "Hi {{ x }}\x00", 1000) == "BAD_TEMPLATE"
    assert v.check_text("tab\tand é", "description", 100) == "tab\tand é"
