"""`python -m llmops_ingestion`: Settings -> logging -> bootstrap -> serve until SIGTERM."""

from __future__ import annotations

from llmops_ingestion.bootstrap import serve
from llmops_ingestion.settings import Settings
from llmops_kit.runner import run_service


def main() -> None:
    run_service(Settings, serve)


if __name__ == "__main__":
    main()
