"""Reading the worker's JOB_DIR/progress.jsonl (interface 2 of issue 9) incrementally.

Only complete lines count: a line the worker is still writing is read on the next poll.
The offset of what was consumed is stored with the history records it produced, so after a
restart the same line is never recorded twice, and nothing is skipped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Worker line types that become history records as they are; the others end the run.
RECORDED = ("step", "eval", "checkpoint", "resumed")
TERMINAL = ("done", "cancelled", "error")
MAX_MESSAGE = 500
# Fields kept per recorded line type (anything else a worker adds is ignored).
FIELDS = {
    "step": ("step", "total_steps", "epoch", "loss", "learning_rate", "tokens_per_s"),
    "eval": ("step", "val_loss", "perplexity", "overfitting"),
    "checkpoint": ("step",),
    "resumed": ("step",),
}


@dataclass
class Chunk:
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    terminal: dict[str, Any] | None = None
    offset: int = 0


def read_new(path: Path, offset: int) -> Chunk:
    """The records of the complete lines after `offset`, up to and including a terminal one."""
    chunk = Chunk(offset=offset)
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return chunk
    position = offset
    for raw in data.split(b"\n")[:-1]:  # the last piece has no newline yet
        position += len(raw) + 1
        chunk.offset = position
        line = parse(raw)
        if line is None:
            continue
        kind = line["type"]
        if kind in TERMINAL:
            chunk.terminal = line
            break
        chunk.records.append((kind, {k: line[k] for k in FIELDS[kind] if k in line}))
    return chunk


def parse(raw: bytes) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        line = json.loads(raw)
    except ValueError:
        log.warning("progress.jsonl: a line that is not JSON was skipped")
        return None
    if not isinstance(line, dict) or line.get("type") not in (*RECORDED, *TERMINAL):
        log.warning("progress.jsonl: a line of unknown type was skipped")
        return None
    return line


def error_message(line: dict[str, Any]) -> str:
    return f"worker error: {str(line.get('message', ''))[:MAX_MESSAGE]}"
