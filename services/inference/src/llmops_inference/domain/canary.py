"""Canary routing of one request (pure): which of production and the candidate serves it.

The registry's canary of a tenant says which share of its `production` requests the
candidate serves; each request draws once, when it starts (resolution happens once per
request, so a request in flight finishes on the version it started with whatever changes
meanwhile).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from llmops_inference.domain.model import ModelRef


@dataclass(frozen=True)
class CanaryRoute:
    """A progressing canary: `share` percent (0-100) of requests go to `candidate`."""

    share: int
    candidate: ModelRef


def route(production: ModelRef, canary: CanaryRoute | None, draw: float) -> ModelRef:
    """`draw` is uniform in [0, 1): the candidate when it falls under the share."""
    if canary is None or canary.share <= 0 or draw * 100 >= canary.share:
        return production
    return dataclasses.replace(canary.candidate, canary=True)
