"""`python -m llmops_ingestion`: Settings -> logging -> bootstrap -> serve until SIGTERM."""

from __future__ import annotations

import asyncio

from llmops_ingestion.bootstrap import build
from llmops_ingestion.settings import Settings
from llmops_kit.logging import configure_logging
from llmops_kit.runner import run_until_signalled


def main() -> None:
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)
    app = build(settings)
    asyncio.run(run_until_signalled(app.start, app.stop))


if __name__ == "__main__":
    main()
