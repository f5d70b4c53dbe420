"""`python -m llmops_safety`: settings -> logging -> bootstrap -> serve until SIGTERM."""

from __future__ import annotations

import os

from llmops_kit.runner import run_service
from llmops_safety.bootstrap import serve
from llmops_safety.settings import Settings


def main() -> None:
    # Detoxify weights are local files; never let transformers reach for the hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # transformers' progress bars would interleave raw text with the JSON log lines.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    run_service(Settings, serve)


if __name__ == "__main__":
    main()
