"""Parsing one uploaded JSONL line into a normalised record, with problems that name the field.

Kinds and what a line may look like (normalised form after the arrow):
- instruction: {"instruction", "input"?, "output", "system"?} (Alpaca) or {"prompt", "response"}
  -> {"messages": [{"role": "system"?}, {"role": "user"}, {"role": "assistant"}]}
- chat: {"messages": [{"role", "content"}]} or ShareGPT {"conversations": [{"from", "value"}]}
  -> {"messages": [...]} with roles system|user|assistant
- text: {"text"} -> {"text"}
- eval: {"id", "question", "facts": [...], "document"?, "lang"?} (samples/eval/questions.jsonl)
  -> the same fields, `document` null when absent, `lang` "en" when absent
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

KINDS = ("instruction", "chat", "text", "eval")
ROLES = ("system", "user", "assistant")
# ShareGPT speakers -> roles.
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant", "chatgpt": "assistant", "bing": "assistant",
                  "bard": "assistant"}


@dataclass(frozen=True)
class Problem:
    """Why a line was refused: its 1-based line number, the field (JSON path) and a stable
    reason. `message` never quotes the line's content (it may hold personal data)."""

    line: int
    field: str
    reason: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", field {self.field}" if self.field else "")
        return f"{where}: {self.reason}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "reason": self.reason,
                "message": self.message}


class LineError(Exception):
    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field, self.reason, self.message = field, reason, message


def _text(obj: dict[str, Any], key: str, path: str | None = None, *, required: bool = True) -> str:
    path = path or key
    value = obj.get(key)
    if value is None:
        if required:
            raise LineError(path, "MISSING_FIELD", f"'{path}' is required")
        return ""
    if not isinstance(value, str):
        raise LineError(path, "NOT_A_STRING", f"'{path}' must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise LineError(path, "EMPTY_FIELD", f"'{path}' is empty")
    return value


def _instruction(obj: dict[str, Any]) -> dict[str, Any]:
    if "prompt" in obj or "response" in obj:
        user, answer = _text(obj, "prompt"), _text(obj, "response")
    else:
        instruction = _text(obj, "instruction")
        extra = _text(obj, "input", required=False)
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        answer = _text(obj, "output")
    messages = []
    system = _text(obj, "system", required=False)
    if system.strip():
        messages.append({"role": "system", "content": system})
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


def _turns(obj: dict[str, Any]) -> tuple[str, list[Any], str, str, dict[str, str] | None]:
    """(list field, items, role key, content key, role map) of a chat line."""
    if "messages" in obj:
        return "messages", obj["messages"], "role", "content", None
    if "conversations" in obj:
        return "conversations", obj["conversations"], "from", "value", SHAREGPT_ROLES
    raise LineError("messages", "MISSING_FIELD", "'messages' (or ShareGPT 'conversations') is required")


def _chat(obj: dict[str, Any]) -> dict[str, Any]:
    field, items, role_key, content_key, mapping = _turns(obj)
    if not isinstance(items, list) or not items:
        raise LineError(field, "EMPTY_FIELD", f"'{field}' must be a non-empty list")
    messages = []
    for i, item in enumerate(items):
        path = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise LineError(path, "NOT_AN_OBJECT", f"'{path}' must be an object")
        raw_role = _text(item, role_key, f"{path}.{role_key}")
        role = (mapping or {r: r for r in ROLES}).get(raw_role.strip().lower())
        if role is None:
            allowed = sorted(mapping) if mapping else list(ROLES)
            raise LineError(f"{path}.{role_key}", "UNKNOWN_ROLE",
                            f"role must be one of {', '.join(allowed)}")
        messages.append({"role": role, "content": _text(item, content_key, f"{path}.{content_key}")})
    if not any(m["role"] == "assistant" for m in messages):
        raise LineError(field, "NO_ASSISTANT_TURN", f"'{field}' has no assistant message to learn")
    if not any(m["role"] == "user" for m in messages):
        raise LineError(field, "NO_USER_TURN", f"'{field}' has no user message")
    return {"messages": messages}


def _eval(obj: dict[str, Any]) -> dict[str, Any]:
    record_id = _text(obj, "id")
    question = _text(obj, "question")
    facts = obj.get("facts", [])
    if not isinstance(facts, list) or not all(isinstance(f, str) and f.strip() for f in facts):
        raise LineError("facts", "BAD_FACTS", "'facts' must be a list of non-empty strings")
    document = obj.get("document")
    if document is not None and (not isinstance(document, str) or not document.strip()):
        raise LineError("document", "BAD_DOCUMENT", "'document' must be a non-empty string or null")
    if document is not None and not facts:
        raise LineError("facts", "EMPTY_FIELD", "'facts' is empty although a document answers it")
    lang = _text(obj, "lang", required=False) or "en"
    return {"id": record_id, "question": question, "facts": list(facts), "document": document,
            "lang": lang}


def _text_record(obj: dict[str, Any]) -> dict[str, Any]:
    return {"text": _text(obj, "text")}


NORMALISERS = {"instruction": _instruction, "chat": _chat, "text": _text_record, "eval": _eval}


def detect_kind(obj: dict[str, Any]) -> str | None:
    """The kind a line looks like (for `kind="auto"`), or None."""
    if "messages" in obj or "conversations" in obj:
        return "chat"
    if "question" in obj:
        return "eval"
    if {"instruction", "prompt", "output", "response"} & obj.keys():
        return "instruction"
    if "text" in obj:
        return "text"
    return None


def parse_line(raw: str, kind: str) -> dict[str, Any]:
    """The normalised record of one line; LineError when it is not one of `kind`."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LineError("", "INVALID_JSON", f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise LineError("", "NOT_AN_OBJECT", "each line must be a JSON object")
    return NORMALISERS[kind](obj)


def record_text(record: dict[str, Any]) -> str:
    """The text a record is compared by (duplicates) and measured by (tokens, with `chat_text`)."""
    if "messages" in record:
        return "\n".join(f"{m['role']}: {m['content']}" for m in record["messages"])
    if "question" in record:
        return str(record["question"])
    return str(record["text"])


def canonical(record: dict[str, Any]) -> str:
    """The stable JSON of a record (hashes and files)."""
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
