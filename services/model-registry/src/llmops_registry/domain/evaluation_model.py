"""Evaluation runs as the registry stores them: plain, immutable values (no protobuf, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from llmops_kit.evaluation.runs import QuestionResult


@dataclass(frozen=True)
class NewEvaluationRun:
    model_name: str
    model_version: int
    prompt_name: str
    prompt_version: int
    dataset: str
    results: tuple[QuestionResult, ...]


@dataclass(frozen=True)
class EvaluationRun:
    id: str
    tenant: str
    model_name: str
    model_version: int
    prompt_name: str
    prompt_version: int
    dataset: str
    created_at: datetime
    created_by: str
    totals: dict[str, float]
    # Empty when listed.
    results: tuple[QuestionResult, ...] = ()
    # The store's order of recording (list pages and "latest" follow it).
    sequence: int = 0

    @property
    def model_label(self) -> str:
        return f"{self.model_name}@{self.model_version}"


@dataclass(frozen=True)
class EvaluationCompletedEvent:
    run: EvaluationRun
