"""`python -m llmops_generation`: settings -> logging -> app -> uvicorn until SIGTERM (drains)."""

from __future__ import annotations

import os

from llmops_generation.bootstrap import serve
from llmops_generation.settings import Settings
from llmops_kit.logging import configure_logging


def main() -> None:
    # Models come from local files; never let a library reach for the hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # transformers' tqdm bars would interleave raw text with the JSON log lines.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    serve(settings)


if __name__ == "__main__":
    main()
