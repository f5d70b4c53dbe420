"""`python -m llmops_embedding`: settings -> logging -> bootstrap -> serve until SIGTERM."""

from __future__ import annotations

import os

from llmops_embedding.bootstrap import serve
from llmops_embedding.settings import Settings
from llmops_kit.runner import run_service


def main() -> None:
    # The model is a local folder; never let a library reach for the hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # transformers' tqdm bars would interleave raw text with the JSON log lines.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    run_service(Settings, serve)


if __name__ == "__main__":
    main()
