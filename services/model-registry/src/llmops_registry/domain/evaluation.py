"""Evaluation runs as the registry stores them, and their use cases (record, read, list).

A run is recorded once, whole (its results are immutable); the registry computes its totals
from the results with llmops_kit.evaluation.runs.totals, so every reader (compare, the
promotion gate, observability) sees the same numbers. Runs belong to the recording tenant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from llmops_kit.errors import NotFound
from llmops_kit.evaluation.runs import QuestionResult
from llmops_registry.domain import validation as v
from llmops_registry.domain.audit import Auditor
from llmops_registry.domain.errors import BadRequest
from llmops_registry.domain.evaluation_model import EvaluationRun, NewEvaluationRun
from llmops_registry.domain.model import Actor, Page
from llmops_registry.domain.outbox import OutboxRelay
from llmops_registry.ports import EvaluationStore, ModelStore

MAX_RESULTS = 10_000
MAX_ANSWER = 20_000
EVALUATION_RECORD = "evaluation.record"


class RunNotFound(NotFound):
    pass


def _bad(message: str) -> BadRequest:
    return BadRequest("BAD_EVALUATION_RUN", message)


def check_dataset(dataset: str) -> str:
    dataset = dataset.strip()
    if not dataset or len(dataset) > 256 or any(c in dataset for c in "\x00\n\r"):
        raise _bad("dataset must be a dataset id or a set name of 1-256 characters on one line")
    return dataset


def check_results(results: Sequence[QuestionResult]) -> tuple[QuestionResult, ...]:
    if not results:
        raise _bad("a run needs at least one result")
    if len(results) > MAX_RESULTS:
        raise _bad(f"a run holds at most {MAX_RESULTS} results")
    ids = [r.question_id for r in results]
    if any(not i or len(i) > 128 for i in ids) or len(set(ids)) != len(ids):
        raise _bad("every result needs a unique question_id of 1-128 characters")
    for r in results:
        if len(r.answer) > MAX_ANSWER or len(r.question) > MAX_ANSWER:
            raise _bad(f"result {r.question_id}: question and answer hold at most "
                       f"{MAX_ANSWER} characters")
        numbers = [r.latency_ms] + ([r.groundedness] if r.groundedness is not None else [])
        if any(not math.isfinite(x) or x < 0 for x in numbers):
            raise _bad(f"result {r.question_id}: latency and groundedness must be finite, >= 0")
        v.check_no_nul(r.answer, "answer")
    return tuple(results)


class Evaluations:
    def __init__(self, store: EvaluationStore, models: ModelStore, relay: OutboxRelay,
                 limits: v.Limits, auditor: Auditor) -> None:
        self.store = store
        self.models = models
        self.relay = relay
        self.limits = limits
        self.auditor = auditor

    def validate_new(self, model_name: str, model_version: int, prompt_name: str,
                     prompt_version: int, dataset: str,
                     results: Sequence[QuestionResult]) -> NewEvaluationRun:
        return NewEvaluationRun(
            v.check_name(model_name, "model"), v.check_version(model_version),
            v.check_name(prompt_name, "prompt") if prompt_name else "",
            prompt_version, check_dataset(dataset), check_results(results))

    async def record(self, actor: Actor, new: NewEvaluationRun) -> EvaluationRun:
        # The version must be one the tenant can be served (its own or shared).
        await self.models.get_model_version(new.model_name, new.model_version,
                                            tenant=actor.tenant)
        run = await self.store.record_evaluation_run(new, actor)
        await self.auditor.record(actor, EVALUATION_RECORD, run.id, actor.tenant, None,
                                  {"model": run.model_label, "dataset": run.dataset,
                                   "questions": len(run.results)})
        await self.relay.flush()
        return run

    async def get(self, tenant: str, run_id: str) -> EvaluationRun:
        if not run_id.startswith("ev-") or len(run_id) > 64:
            raise RunNotFound("EVALUATION_RUN_NOT_FOUND", f"no evaluation run {run_id[:64]!r}")
        return await self.store.get_evaluation_run(run_id, tenant=tenant)

    async def list(self, tenant: str, model_name: str = "", model_version: int = 0,
                   dataset: str = "", page_size: int = 0,
                   page_token: str = "") -> Page[EvaluationRun]:
        if model_name:
            v.check_name(model_name, "model")
        size = v.page_size(page_size, self.limits)
        rows = await self.store.list_evaluation_runs(
            tenant, model_name, model_version, dataset, size + 1,
            v.decode_int_token(page_token))
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, v.encode_token(rows[-1].sequence) if more else "")
