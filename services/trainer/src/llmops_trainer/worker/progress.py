"""JOB_DIR/progress.jsonl: one JSON object per line (interface 2), appended and flushed."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

FILE_NAME = "progress.jsonl"


def _clean(value: Any) -> Any:
    # JSON has no NaN/Infinity: a non-finite loss is reported as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ProgressLog:
    """Appends events; writes only on the process that owns the log (rank 0), unless forced."""

    def __init__(self, job_dir: Path, enabled: bool) -> None:
        self.path = job_dir / FILE_NAME
        self.enabled = enabled

    def write(self, kind: str, force: bool = False, **fields: Any) -> None:
        if not (self.enabled or force):
            return
        record = {"type": kind, **{k: _clean(v) for k, v in fields.items()}}
        if kind == "step":
            record["ts"] = round(time.time(), 3)
        line = (json.dumps(record) + "\n").encode()
        # One write() on an O_APPEND descriptor: lines from two processes never interleave.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def read(job_dir: Path) -> list[dict[str, Any]]:
    path = job_dir / FILE_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
