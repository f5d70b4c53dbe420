"""Hypothesis strategies for any protobuf message: every field set to arbitrary values.

For property tests of decoders and request converters (dev dependency: import from tests only).
Strings include unicode, control characters and NULs; numbers span their type's whole range
(floats include NaN and infinities); enums include numbers no enum value has; repeated and map
fields and nested messages are bounded, so one example stays small.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

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

text = st.text(max_size=64) | st.sampled_from(["", " ", "\x00", "a" * 300, "../../etc", "é" * 70])


def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    # the edges and small numbers matter most: weight them in
    return st.sampled_from([low, high, 0, 1, -1 if low < 0 else 2]) | st.integers(low, high)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
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


def _is_map(field: FieldDescriptor) -> bool:
    return (field.type == FieldDescriptor.TYPE_MESSAGE
            and field.message_type.GetOptions().map_entry)


def _fill(msg: Message, draw: Any, depth: int, max_items: int) -> None:
    descriptor: Descriptor = msg.DESCRIPTOR
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
