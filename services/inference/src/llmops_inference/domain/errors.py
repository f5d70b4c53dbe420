from __future__ import annotations

from llmops_kit.errors import InvalidArgument


class InvalidQuestion(InvalidArgument):
    pass
