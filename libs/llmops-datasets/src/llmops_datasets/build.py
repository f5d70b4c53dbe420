"""Building a dataset version: parse and validate, redact PII, check lengths, remove duplicates,
split, measure, and name it by its content.

    built = build_jsonl(data, BuildSettings(kind="chat"), counter)
    built.id          # "ds-" + 16 hex of sha256(normalised records + build settings)
    built.files       # {"train.jsonl": [...], "validation.jsonl": [...]} ({"records.jsonl"} for eval)
    built.manifest    # counts, token_stats, dedupe, split, pii, validation, base_model, settings

Any bad line refuses the whole upload with InvalidDataset (the first `max_errors` problems, each
naming its line and field) unless `skip_invalid` is set: then bad lines are left out and listed
in the manifest and in `skipped.jsonl` (line, field, reason; never the content).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llmops_datasets.dedupe import NearDuplicates, dedupe
from llmops_datasets.records import KINDS, LineError, Problem, canonical, detect_kind, parse_line, record_text
from llmops_datasets.split import split, token_stats
from llmops_datasets.tokens import TokenCounter, training_text
from llmops_pii import redact_pii

DEFAULT_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
# Dropped duplicates listed by line in the manifest (the counts are always complete).
MAX_LISTED = 100


@dataclass(frozen=True)
class BuildSettings:
    kind: str = "auto"  # instruction | chat | text | eval | auto (from the first line)
    max_seq_len: int = 2048
    base_model: str = DEFAULT_BASE_MODEL
    validation_fraction: float = 0.1
    seed: int = 0
    near: NearDuplicates = field(default_factory=NearDuplicates)
    redact_pii: bool = True
    skip_invalid: bool = False
    max_errors: int = 20
    max_records: int = 200_000

    def __post_init__(self) -> None:
        if self.kind not in (*KINDS, "auto"):
            raise ValueError(f"kind must be one of {', '.join((*KINDS, 'auto'))}, not {self.kind!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError("validation_fraction must be in [0, 1)")
        if self.max_seq_len < 8:
            raise ValueError("max_seq_len must be at least 8")
        if self.near.threshold is not None and not 0 < self.near.threshold <= 1:
            raise ValueError("near-duplicate threshold must be in (0, 1]")

    def hashed(self, kind: str) -> dict[str, Any]:
        """The settings that change a version's content (so they are part of its id)."""
        return {"kind": kind, "max_seq_len": self.max_seq_len, "base_model": self.base_model,
                "validation_fraction": self.validation_fraction, "seed": self.seed,
                "near": asdict(self.near), "redact_pii": self.redact_pii}


class InvalidDataset(Exception):
    """The upload is refused: `reason` is stable, `problems` the first errors (line + field)."""

    def __init__(self, reason: str, message: str, problems: Sequence[Problem] = (),
                 total: int = 0) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message
        self.problems = list(problems)
        self.total = total or len(self.problems)


@dataclass
class Built:
    id: str
    kind: str
    files: dict[str, list[dict[str, Any]]]
    manifest: dict[str, Any]
    skipped: list[Problem]


def _redact(value: Any, found: Counter[str]) -> Any:
    """Every string inside `value` with its PII replaced by labels ([EMAIL], ...)."""
    if isinstance(value, str):
        result = redact_pii(value)
        found.update(f.category for f in result.findings)
        return result.text
    if isinstance(value, list):
        return [_redact(v, found) for v in value]
    if isinstance(value, dict):
        return {k: _redact(v, found) if k not in ("id", "role") else v for k, v in value.items()}
    return value


def _length_field(kind: str, raw_fields: Iterable[str]) -> str:
    if kind == "eval":
        return "question"
    keys = set(raw_fields)
    if kind == "chat":
        return "conversations" if "conversations" in keys else "messages"
    return "prompt+response" if "prompt" in keys else "instruction+input+output"


def _lines(data: bytes) -> list[tuple[int, str | None]]:
    """(line number, text) of the non-blank lines; text None when it is not UTF-8."""
    out: list[tuple[int, str | None]] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            out.append((number, None))
            continue
        if text.strip():
            out.append((number, text))
    return out


def _kind_of(lines: list[tuple[int, str | None]], kind: str) -> str:
    if kind != "auto":
        return kind
    for _, text in lines:
        try:
            obj = json.loads(text or "")
        except json.JSONDecodeError:
            continue
        found = detect_kind(obj) if isinstance(obj, dict) else None
        if found:
            return found
    raise InvalidDataset("UNKNOWN_KIND", "no line looks like instruction, chat, text or eval "
                         "records; pass the kind")


def build_jsonl(data: bytes, settings: BuildSettings, counter: TokenCounter,
                source: dict[str, Any] | None = None) -> Built:
    """A dataset version from an uploaded JSONL file."""
    lines = _lines(data)
    if len(lines) > settings.max_records:
        raise InvalidDataset("TOO_MANY_RECORDS", f"{len(lines)} lines; at most {settings.max_records}")
    kind = _kind_of(lines, settings.kind)
    problems: list[Problem] = []
    items: list[tuple[int, dict[str, Any], str]] = []
    for number, text in lines:
        if text is None:
            problems.append(Problem(number, "", "NOT_UTF8", "the line is not UTF-8 text"))
            continue
        try:
            record = parse_line(text, kind)
        except LineError as exc:
            problems.append(Problem(number, exc.field, exc.reason, exc.message))
            continue
        raw_keys = json.loads(text).keys()
        items.append((number, record, _length_field(kind, raw_keys)))
    return _finish(kind, items, problems, settings, counter,
                   source or {"type": "upload"}, input_lines=len(lines))


def build_texts(texts: Sequence[tuple[str, str]], settings: BuildSettings, counter: TokenCounter,
                source: dict[str, Any]) -> Built:
    """A `text` version (continued pre-training) from (label, text) pairs such as documents."""
    items = [(i, {"text": text}, "text") for i, (_, text) in enumerate(texts, start=1)
             if text.strip()]
    if not items:
        raise InvalidDataset("NO_TEXT", "the documents hold no text")
    return _finish("text", items, [], settings, counter, source, input_lines=len(texts))


def _finish(kind: str, items: list[tuple[int, dict[str, Any], str]], problems: list[Problem],
            settings: BuildSettings, counter: TokenCounter, source: dict[str, Any],
            input_lines: int) -> Built:
    pii: Counter[str] = Counter()
    redacted_records = 0
    checked: list[tuple[int, dict[str, Any]]] = []
    lengths: list[int] = []
    over_length = 0
    seen_ids: dict[str, int] = {}
    for number, record, length_field in items:
        if settings.redact_pii:
            before = sum(pii.values())
            record = _redact(record, pii)
            redacted_records += sum(pii.values()) > before
        if kind == "eval":
            if record["id"] in seen_ids:
                problems.append(Problem(number, "id", "DUPLICATE_ID",
                                        f"id already used on line {seen_ids[record['id']]}"))
                continue
            seen_ids[record["id"]] = number
        if kind == "text":
            pieces = counter.windows(record["text"], settings.max_seq_len)
            over_length += len(pieces) > 1
            for piece in pieces:
                checked.append((number, {"text": piece}))
                lengths.append(counter.count(piece))
            continue
        tokens = counter.count(training_text(record))
        if tokens > settings.max_seq_len:
            over_length += 1
            problems.append(Problem(number, length_field, "TOO_LONG",
                                    f"{tokens} tokens with the {settings.base_model} tokenizer; "
                                    f"max_seq_len is {settings.max_seq_len}"))
            continue
        checked.append((number, record))
        lengths.append(tokens)
    problems.sort(key=lambda p: p.line)
    if problems and not settings.skip_invalid:
        raise InvalidDataset("INVALID_RECORDS",
                             f"{len(problems)} invalid line(s); the upload was refused "
                             "(fix them or pass skip_invalid)",
                             problems[:settings.max_errors], len(problems))
    if not checked:
        raise InvalidDataset("EMPTY_DATASET", "no valid records", problems[:settings.max_errors],
                             len(problems))
    records = [r for _, r in checked]
    digest = hashlib.sha256()
    digest.update(canonical(settings.hashed(kind)).encode())
    for record in records:
        digest.update(b"\n" + canonical(record).encode())
    dataset_id = "ds-" + digest.hexdigest()[:16]

    dedupe_info: dict[str, Any] = {"exact_removed": 0, "near_removed": 0, "removed": [],
                                   "threshold": None, "num_perm": None, "shingle_words": None}
    kept_idx = list(range(len(records)))
    if kind != "eval":  # eval questions are distinct by id; near-identical ones are deliberate
        result = dedupe([record_text(r) for r in records], settings.near)
        kept_idx = result.kept
        removed = sorted([(i, j, "exact") for i, j in result.exact.items()]
                         + [(i, j, "near") for i, j in result.near.items()])
        dedupe_info = {
            "exact_removed": len(result.exact), "near_removed": len(result.near),
            "threshold": settings.near.threshold, "num_perm": settings.near.num_perm,
            "shingle_words": settings.near.shingle_words,
            "removed": [{"line": checked[i][0], "duplicate_of_line": checked[j][0], "type": t}
                        for i, j, t in removed[:MAX_LISTED]],
        }
    kept = [records[i] for i in kept_idx]
    stats = token_stats([lengths[i] for i in kept_idx], settings.max_seq_len, over_length)
    if kind == "eval":
        files = {"records.jsonl": kept}
        counts = {"records": len(kept)}
    else:
        train, validation = split(kept, settings.validation_fraction, settings.seed)
        files = {"train.jsonl": train, "validation.jsonl": validation}
        counts = {"train": len(train), "validation": len(validation)}
    counts.update({"input_lines": input_lines, "invalid": len(problems), "skipped": len(problems),
                   "after_validation": len(records), "exact_duplicates": dedupe_info["exact_removed"],
                   "near_duplicates": dedupe_info["near_removed"], "kept": len(kept)})
    manifest = {
        "id": dataset_id, "kind": kind, "source": source, "counts": counts,
        "token_stats": stats, "dedupe": dedupe_info,
        "split": {"seed": settings.seed, "validation_fraction": settings.validation_fraction},
        "base_model": settings.base_model, "tokenizer": getattr(counter, "name", ""),
        "pii": {"redacted": settings.redact_pii, "records_with_pii": redacted_records,
                "findings": dict(sorted(pii.items()))},
        "validation": {"max_seq_len": settings.max_seq_len, "skip_invalid": settings.skip_invalid,
                       "skipped": [p.as_dict() for p in problems[:settings.max_errors]]},
        "settings": settings.hashed(kind),
    }
    return Built(dataset_id, kind, files, manifest, problems)
