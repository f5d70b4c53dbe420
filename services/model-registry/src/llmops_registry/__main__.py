"""`python -m llmops_registry`: Settings -> logging -> bootstrap -> serve until SIGTERM."""

from __future__ import annotations

import asyncio

from llmops_kit.logging import configure_logging
from llmops_registry.bootstrap import serve
from llmops_registry.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
