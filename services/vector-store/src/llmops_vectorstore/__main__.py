"""`python -m llmops_vectorstore`: settings -> logging -> bootstrap -> serve until SIGTERM."""

from __future__ import annotations

import asyncio

from llmops_kit.logging import configure_logging
from llmops_vectorstore.bootstrap import serve
from llmops_vectorstore.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
