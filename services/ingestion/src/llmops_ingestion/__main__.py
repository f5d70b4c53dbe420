"""`python -m llmops_ingestion`: Settings -> logging -> bootstrap -> serve until SIGTERM."""

from __future__ import annotations

import asyncio

from llmops_ingestion.bootstrap import serve
from llmops_ingestion.settings import Settings
from llmops_kit.logging import configure_logging


def main() -> None:
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
