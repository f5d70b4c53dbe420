"""Hypothesis strategies for any protobuf message: every field set to arbitrary values, and
helpers to run a servicer call per example (property tests of decoders and request converters;
hypothesis is a dev dependency: import this from tests only).

Strings include unicode, control characters and NULs; numbers span their type's whole range
(floats include NaN and infinities); enums include numbers no enum value has; repeated and map
fields and nested messages are bounded, so one example stays small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from llmops_kit.auth import Principal, Role, acting_as
from llmops_kit.context import bound
from llmops_kit.errors import DomainError

T = TypeVar("T")

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}

# Plausible values too, so requests also get past the first check and reach deeper code.
PLAUSIBLE = ["m", "acme", "production", "latest", "canary", "rag-answer", "file:///m", "hf",
             "gguf", "question", "{{ question }}", "{% for d in documents %}[{{ d.id }}]{% endfor %}",
             "d1", "doc.md#0", "title", "lang", "en", "1", "0.5"]
text = (st.text(max_size=64)
        | st.sampled_from(["", " ", "\x00", "a" * 300, "../../etc", "é" * 70, "\ud800x"[1:]])
        | st.sampled_from(PLAUSIBLE))


def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    # the edges and small numbers matter most: weight them in
    return st.sampled_from([low, high, 0, 1, -1 if low < 0 else 2]) | st.integers(low, high)


def _scalar(field: Any) -> st.SearchStrategy[Any]:  # FieldDescriptor (stubs: Optional parts)
    kind = field.type
    if kind in _INT_RANGES:
        return _ints(*_INT_RANGES[kind])
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return st.floats(allow_nan=True, allow_infinity=True)
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32, allow_nan=True, allow_infinity=True)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_STRING:
        return text
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.sampled_from(known) | _ints(-(2**31), 2**31 - 1)
    raise TypeError(f"no strategy for field type {kind}")


def _is_map(field: Any) -> bool:
    return (field.type == FieldDescriptor.TYPE_MESSAGE
            and field.message_type.GetOptions().map_entry)


def _fill(msg: Message, draw: Any, depth: int, max_items: int) -> None:
    descriptor: Any = msg.DESCRIPTOR
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue  # unset: default values and missing sub-messages matter as much
        if _is_map(field):
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            target = getattr(msg, field.name)
            for _ in range(draw(st.integers(0, max_items))):
                key = draw(_scalar(key_field))
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    if depth > 0:
                        _fill(target[key], draw, depth - 1, max_items)
                else:
                    target[key] = draw(_scalar(value_field))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth <= 0:
                continue
            if field.is_repeated:
                for _ in range(draw(st.integers(0, max_items))):
                    _fill(getattr(msg, field.name).add(), draw, depth - 1, max_items)
            else:
                sub = getattr(msg, field.name)
                sub.SetInParent()
                _fill(sub, draw, depth - 1, max_items)
        elif field.is_repeated:
            getattr(msg, field.name).extend(
                draw(st.lists(_scalar(field), max_size=max_items)))
        else:
            setattr(msg, field.name, draw(_scalar(field)))


def messages(cls: type[Message], depth: int = 3, max_items: int = 4) -> st.SearchStrategy[Any]:
    """Instances of `cls` with arbitrary values in arbitrary subsets of its fields."""

    @st.composite
    def build(draw: Any) -> Message:
        msg = cls()
        _fill(msg, draw, depth, max_items)
        return msg

    return build()


def rpc_outcome(call: Coroutine[Any, Any, T], tenant: str = "acme",
                loop: asyncio.AbstractEventLoop | None = None,
                role: Role = Role.ADMIN) -> T | DomainError:
    """Runs one servicer call (or use case) as `tenant` with `role` (the strongest by default,
    so every converter is reached): its result, or the DomainError it raised. Any other
    exception propagates, failing the property test that called it. `loop`: for services
    holding loop-bound objects (locks) across examples; default a fresh loop."""

    async def bound_call() -> T:
        with bound(tenant, "trace-property"), acting_as(Principal(tenant, role, "property")):
            return await call

    try:
        if loop is not None:
            return loop.run_until_complete(bound_call())
        return asyncio.run(bound_call())
    except DomainError as exc:
        return exc


def request_types(service: ServiceDescriptor) -> list[tuple[str, type[Message]]]:
    """(method name, request class) of every RPC of a gRPC service."""
    return [(m.name, message_factory.GetMessageClass(m.input_type))
            for m in service.methods]


def assert_client_error(result: object, *allowed: grpc.StatusCode) -> None:
    """A DomainError result must be the caller's fault (INVALID_ARGUMENT unless `allowed`)."""
    if isinstance(result, DomainError):
        codes = allowed or (grpc.StatusCode.INVALID_ARGUMENT,)
        assert result.code in codes, f"{result.code}: {result}"
        assert result.reason and result.reason.upper() == result.reason, result.reason
