"""`python -m llmops_trainer`: Settings -> logging -> bootstrap -> serve until SIGTERM."""

from __future__ import annotations

from llmops_kit.runner import run_service
from llmops_trainer.bootstrap import serve
from llmops_trainer.settings import Settings


def main() -> None:
    run_service(Settings, serve)


if __name__ == "__main__":
    main()
