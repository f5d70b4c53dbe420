"""schemathesis against TGI's published OpenAPI contract, restricted to the routes this server implements.

Valid and invalid requests are generated from the contract; every response must use a
documented status code and content type, match its schema, and never be a 5xx; invalid
requests must be rejected. Two adjustments, both about the contract file rather than the server:
- TGI's generator writes `exclusiveMinimum: 0` (OpenAPI 3.1 style) into a 3.0.3 document,
  which schemathesis cannot build integers from; it is rewritten to the 3.0 spelling
  (`minimum` + `exclusiveMinimum: true`), or dropped where an inclusive `minimum` is already set.
- schemathesis checks an SSE stream's event envelope, not its JSON payload, so streamed
  responses are checked here: each `data:` payload against the documented schema.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.integration

# TGI's published contract, kept in the repository (see contracts/README.md).
CONTRACT = Path(__file__).resolve().parents[2] / "contracts" / "tgi-openapi.json"
# (method, path, examples per mode); chat gets more since most random chats are 422s.
ROUTES = [
    ("POST", "/generate", 25),
    ("POST", "/generate_stream", 20),
    ("POST", "/", 15),
    ("POST", "/v1/chat/completions", 40),
    ("POST", "/tokenize", 15),
    ("GET", "/info", 1),
    ("GET", "/health", 1),
    ("GET", "/metrics", 1),
]
SSE_SCHEMAS = {
    "/generate_stream": "StreamResponse",
    "/": "StreamResponse",
    "/v1/chat/completions": "ChatCompletionChunk",
}
MAX_NEW_TOKENS = 4  # generated requests may ask for thousands; the check is about shapes
_PROMPT = {"inputs": "My name is Olivier and I", "parameters": {"max_new_tokens": 4, "details": True}}
_CHAT = {"messages": [{"role": "user", "content": "What is Deep Learning?"}], "max_tokens": 4}
# Valid requests run first on each route: random valid chats are nearly all refused (tools,
# images, empty message lists), and the contract's own examples are too sparse to build one.
EXPLICIT: dict[str, list[dict[str, Any]]] = {
    "/generate": [_PROMPT],
    "/generate_stream": [_PROMPT],
    "/": [{**_PROMPT, "stream": False}, {**_PROMPT, "stream": True}],
    "/v1/chat/completions": [_CHAT, {**_CHAT, "stream": True, "logprobs": True, "top_logprobs": 2}],
    "/tokenize": [_PROMPT],
}


def _openapi_30(node: Any) -> None:
    if isinstance(node, dict):
        bound = node.get("exclusiveMinimum")
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            if "minimum" in node:
                del node["exclusiveMinimum"]
            else:
                node["minimum"], node["exclusiveMinimum"] = bound, True
        for value in node.values():
            _openapi_30(value)
    elif isinstance(node, list):
        for value in node:
            _openapi_30(value)


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema (`nullable` becomes a null alternative)."""
    if isinstance(node, list):
        return [_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "example", "discriminator")}
    if out.get("exclusiveMinimum") is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    if node.get("nullable"):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    assert CONTRACT.is_file(), f"TGI contract not found at {CONTRACT}"
    doc: dict[str, Any] = json.loads(CONTRACT.read_text())
    _openapi_30(doc)
    return doc


def _validator(doc: dict[str, Any], name: str) -> Any:
    root = {
        "$ref": f"#/components/schemas/{name}",
        "components": _json_schema(copy.deepcopy(doc["components"])),
    }
    return jsonschema_rs.validator_for(root)


def _check_sse(doc: dict[str, Any], path: str, status: int, text: str) -> None:
    payloads = [block[len("data:") :].strip() for block in text.split("\n\n") if block.startswith("data:")]
    assert payloads, f"empty event stream: {text!r}"
    schema = SSE_SCHEMAS[path] if status == 200 else "ErrorResponse"
    validator, errors = _validator(doc, schema), _validator(doc, "ErrorResponse")
    for payload in payloads:
        if payload == "[DONE]":
            assert path == "/v1/chat/completions" and payload is payloads[-1]
            continue
        event = json.loads(payload)
        (errors if "error" in event else validator).validate(event)
        if "error" in event:
            assert status != 200 or event["error_type"] == "generation", event


def _cap(body: Any) -> None:
    if not isinstance(body, dict):
        return
    params = body.get("parameters")
    if isinstance(params, dict) and isinstance(params.get("max_new_tokens"), int):
        params["max_new_tokens"] = min(params["max_new_tokens"], MAX_NEW_TOKENS)
    # A random model or adapter name is a 404 here (this server refuses to answer an unknown
    # one from its base model; TGI's contract has no 404 for these routes). That extension is
    # tested in test_generation_adapters/unit tests; here the generated names mean "default".
    if isinstance(params, dict) and isinstance(params.get("adapter_id"), str):
        params["adapter_id"] = None
    if isinstance(body.get("model"), str):
        body["model"] = "tgi"
    if isinstance(body.get("max_tokens"), int):
        body["max_tokens"] = min(body["max_tokens"], MAX_NEW_TOKENS)


CASES = [
    pytest.param(method, path, mode, examples, id=f"{method} {path} {mode.value}")
    for method, path, examples in ROUTES
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # A GET without parameters has no invalid form.
    if method == "POST" or mode is GenerationMode.POSITIVE
]


@pytest.mark.parametrize(("method", "path", "mode", "examples"), CASES)
def test_route_conforms_to_tgi_contract(
    server_url: str, contract: dict[str, Any], method: str, path: str, mode: GenerationMode, examples: int
) -> None:
    operation = schemathesis.openapi.from_dict(contract)[path][method]
    statuses: dict[int, int] = {}

    def check(case: Any) -> None:
        _cap(case.body)
        response = case.call(base_url=server_url, timeout=120)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        checks = [not_a_server_error, content_type_conformance, negative_data_rejection]
        # TGI answers an undecodable /tokenize body with 422 too; its contract lists only 200/404.
        if not (path == "/tokenize" and mode is GenerationMode.NEGATIVE):
            checks.append(status_code_conformance)
        content_type = response.headers.get("content-type", [""])[0]
        if content_type.startswith("text/event-stream"):
            _check_sse(contract, path, response.status_code, response.text)
        else:
            checks.append(response_schema_conformance)
        case.validate_response(response, checks=checks)
        if path == "/tokenize" and response.status_code == 422:
            assert set(json.loads(response.text)) == {"error", "error_type"}

    run = check
    if mode is GenerationMode.POSITIVE:
        for body in EXPLICIT.get(path, []):
            run = example(case=operation.Case(body=copy.deepcopy(body), media_type="application/json"))(run)
    run = given(case=operation.as_strategy(generation_mode=mode))(run)
    settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )(run)()
    assert sum(statuses.values()) >= 1
    if mode is GenerationMode.POSITIVE and method == "POST":
        # The valid requests (at least the explicit ones) reached a real generation.
        assert statuses.get(200, 0) >= 1, statuses


def test_sse_payload_check_catches_a_wrong_event(contract: dict[str, Any]) -> None:
    good = {"index": 1, "token": {"id": 1, "text": "a", "logprob": -0.1, "special": False}}
    _check_sse(contract, "/generate_stream", 200, f"data:{json.dumps(good)}\n\n")
    bad = {**good, "token": {"id": "one", "text": "a", "logprob": None, "special": False}}
    with pytest.raises(jsonschema_rs.ValidationError):
        _check_sse(contract, "/generate_stream", 200, f"data:{json.dumps(bad)}\n\n")
    with pytest.raises(jsonschema_rs.ValidationError):
        _check_sse(contract, "/generate_stream", 422, 'data:{"error":"x"}\n\n')
