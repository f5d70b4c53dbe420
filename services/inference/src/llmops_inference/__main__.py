"""`python -m llmops_inference`: Settings -> logging -> bootstrap -> serve until SIGTERM."""

from __future__ import annotations

import os


def main() -> None:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import, and then refuses every call, even to
    # a local TGI server. This process never downloads anything; drop it before the import.
    os.environ.pop("HF_HUB_OFFLINE", None)
    from llmops_inference.bootstrap import serve
    from llmops_inference.settings import Settings
    from llmops_kit.runner import run_service

    run_service(Settings, serve)


if __name__ == "__main__":
    main()
