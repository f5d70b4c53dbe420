"""Query-embedding drift: per tenant, the questions of a recent window against a baseline
window and against the tenant's corpus, written to the `drift` table, DriftDetected published
when confirmed.

The method (centroid distance, then a domain-classifier ROC AUC) is in drift_stats.py and
docs/observability-drift.md. Each run is a pure function of the stored rows, `now` and the
settings: samples are drawn by a hash of the row id and the classifier is seeded, so a rerun over
the same rows gives the same verdict and writes the same row ids (the table keeps one).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmops.observability.v1.observability_pb2 import DriftDetected
from llmops_kit.events import make_envelope
from llmops_observability import drift_stats

log = logging.getLogger(__name__)

METRIC = "query_embedding"
PRODUCER = "observability"


class Reference(enum.StrEnum):
    BASELINE_WINDOW = "baseline_window"
    CORPUS = "corpus"


class Status(enum.StrEnum):
    # Fewer than min_samples on a side: no verdict, no row, no event.
    INSUFFICIENT_SAMPLES = "insufficient_samples"
    # Centroid distance at or under its threshold: the classifier is not run (AUC null).
    BELOW_THRESHOLD = "below_threshold"
    # Centroid distance over the threshold, classifier AUC at or under the AUC threshold.
    NOT_CONFIRMED = "not_confirmed"
    # Both over: drift, DriftDetected published.
    CONFIRMED = "confirmed"


class DriftSettings(BaseSettings):
    """Query-embedding drift (env: LLMOPS_OBSERVABILITY_DRIFT_<FIELD>)."""

    model_config = SettingsConfigDict(env_prefix="LLMOPS_OBSERVABILITY_DRIFT_", extra="ignore",
                                      hide_input_in_errors=True)

    enabled: bool = True
    # Seconds between runs of run_forever.
    interval_seconds: float = Field(default=3600.0, gt=0)
    # The recent ("current") window ends at the run's time and spans this many hours.
    window_hours: float = Field(default=24.0, gt=0)
    # The baseline window: this many days just before the current window.
    baseline_days: float = Field(default=7.0, gt=0)
    # Cosine distance between centroids above which the classifier test runs, against the
    # baseline window (questions against questions: near 0 when nothing changed) ...
    centroid_threshold: float = Field(default=0.05, ge=0, le=2)
    # ... and against the corpus (questions against passages: never near 0, since questions
    # and passages differ in form; calibrate from the `drift` rows of a normal period).
    corpus_centroid_threshold: float = Field(default=0.5, ge=0, le=2)
    # Classifier ROC AUC above which drift is confirmed (Evidently's default) ...
    auc_threshold: float = Field(default=0.55, ge=0.5, le=1)
    # ... raised for small samples to 0.5 + auc_z standard errors of a same-distribution AUC
    # (0 turns this off).
    auc_z: float = Field(default=3.0, ge=0)
    # Samples per side below which there is no verdict, and the most drawn per side.
    min_samples: int = Field(default=50, ge=2)
    max_samples: int = Field(default=2000, ge=2)
    cv_folds: int = Field(default=5, ge=2)
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> DriftSettings:
        if self.max_samples < self.min_samples:
            raise ValueError("max_samples must be at least min_samples")
        if self.min_samples < self.cv_folds:
            raise ValueError("min_samples must be at least cv_folds (each fold needs a sample "
                             "of each side)")
        return self

    def threshold(self, reference: Reference) -> float:
        if reference is Reference.CORPUS:
            return self.corpus_centroid_threshold
        return self.centroid_threshold


@dataclass(frozen=True)
class DriftResult:
    tenant: str
    reference: Reference
    embedding_model: str
    window_start: datetime
    window_end: datetime
    current_samples: int
    reference_samples: int
    threshold: float
    status: Status
    # None when there were too few samples; roc_auc None unless the classifier ran, and
    # required_auc is then what it had to beat.
    centroid_distance: float | None = None
    roc_auc: float | None = None
    required_auc: float | None = None

    @property
    def detected(self) -> bool:
        return self.status is Status.CONFIRMED

    @property
    def row_id(self) -> str:
        return f"{METRIC}/{self.reference}/{_ms(self.window_end)}"


Publish = Callable[[DriftDetected], Awaitable[None]]

_DRIFT_COLUMNS = ["tenant", "ts", "id", "metric", "reference", "centroid_distance", "threshold",
                  "roc_auc", "detected", "current_samples", "reference_samples", "window_start",
                  "window_end", "version"]


class DriftMonitor:
    """Runs the drift check for every tenant with questions in the current window."""

    def __init__(self, client: Client, publish: Publish, settings: DriftSettings) -> None:
        self._client = client
        self._publish = publish
        self._settings = settings

    async def run_forever(self) -> None:
        """run_once every interval_seconds until cancelled; a failed run is logged and the next
        one still comes (a transient store error must not end monitoring)."""
        if not self._settings.enabled:
            log.info("query drift monitoring is disabled")
            return
        while True:
            try:
                await self.run_once(datetime.now(UTC))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("drift run failed; retrying in %.0fs", self._settings.interval_seconds)
            await asyncio.sleep(self._settings.interval_seconds)

    async def run_once(self, now: datetime) -> list[DriftResult]:
        """One check per tenant and reference for the window ending at `now`: writes a `drift`
        row for each verdict and publishes DriftDetected for each confirmed drift."""
        now = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC)
        results = await asyncio.to_thread(self._evaluate, now)
        measured = [r for r in results if r.status is not Status.INSUFFICIENT_SAMPLES]
        if measured:
            await asyncio.to_thread(self._write, measured, now)
        for result in results:
            log.info("drift %s tenant=%s reference=%s distance=%s auc=%s (needed %s) "
                     "samples=%d/%d", result.status, result.tenant, result.reference,
                     _fmt(result.centroid_distance), _fmt(result.roc_auc),
                     _fmt(result.required_auc), result.current_samples, result.reference_samples)
        for result in results:
            if result.detected:
                try:
                    await self._publish(drift_event(result))
                except Exception:
                    # The row is written; the next run publishes again while the drift lasts.
                    log.exception("publishing DriftDetected failed for tenant %s", result.tenant)
        return results

    # -- in a worker thread: the ClickHouse client and scikit-learn are synchronous ----------

    def _evaluate(self, now: datetime) -> list[DriftResult]:
        s = self._settings
        start = now - timedelta(hours=s.window_hours)
        baseline_start = start - timedelta(days=s.baseline_days)
        results = []
        for tenant, model in self._tenants(start, now):
            current = self._questions(tenant, model, start, now)
            references = {
                Reference.BASELINE_WINDOW: self._questions(tenant, model, baseline_start, start),
                Reference.CORPUS: self._corpus(tenant, model),
            }
            for reference, sample in references.items():
                results.append(self._judge(tenant, model, reference, current, sample, start, now))
        return results

    def _judge(self, tenant: str, model: str, reference: Reference,
               current: drift_stats.Matrix, sample: drift_stats.Matrix,
               start: datetime, end: datetime) -> DriftResult:
        s = self._settings
        threshold = s.threshold(reference)

        def result(status: Status, distance: float | None = None, auc: float | None = None,
                   required: float | None = None) -> DriftResult:
            return DriftResult(tenant, reference, model, start, end, len(current), len(sample),
                               threshold, status, distance, auc, required)

        if min(len(current), len(sample)) < s.min_samples:
            return result(Status.INSUFFICIENT_SAMPLES)
        if current.shape[1] != sample.shape[1]:
            # Same model name, different length: not comparable, so no verdict.
            log.warning("drift: tenant %s %s vectors have %d dims, %s has %d", tenant, model,
                        current.shape[1], reference, sample.shape[1])
            return result(Status.INSUFFICIENT_SAMPLES)
        distance = drift_stats.centroid_distance(current, sample)
        if distance <= threshold:
            return result(Status.BELOW_THRESHOLD, distance)
        auc = drift_stats.classifier_auc(current, sample, folds=s.cv_folds, seed=s.seed)
        # The classifier sees both sides cut to the smaller one's size.
        required = drift_stats.required_auc(s.auc_threshold, s.auc_z,
                                            min(len(current), len(sample)))
        status = Status.CONFIRMED if auc > required else Status.NOT_CONFIRMED
        return result(status, distance, auc, required)

    def _tenants(self, start: datetime, end: datetime) -> list[tuple[str, str]]:
        """Each tenant with question embeddings in the window, with its most used embedding
        model there (vectors of different models are never compared)."""
        rows = self._client.query(
            "SELECT tenant, embedding_model, count() AS n FROM answers FINAL "
            f"WHERE {_WINDOW} AND notEmpty(question_embedding) "
            "GROUP BY tenant, embedding_model ORDER BY tenant, n DESC, embedding_model",
            parameters=_window(start, end)).result_rows
        chosen: dict[str, str] = {}
        for tenant, model, _ in rows:
            chosen.setdefault(tenant, model)
        return list(chosen.items())

    def _questions(self, tenant: str, model: str, start: datetime,
                   end: datetime) -> drift_stats.Matrix:
        # ORDER BY a hash of the id: a deterministic sample, spread over the whole window.
        rows = self._client.query(
            "SELECT question_embedding FROM answers FINAL "
            f"WHERE tenant = {{tenant:String}} AND {_WINDOW} "
            "AND embedding_model = {model:String} AND notEmpty(question_embedding) "
            "ORDER BY cityHash64(id) LIMIT {limit:UInt32}",
            parameters={"tenant": tenant, "model": model, "limit": self._settings.max_samples,
                        **_window(start, end)}).result_rows
        return drift_stats.as_matrix([r[0] for r in rows])

    def _corpus(self, tenant: str, model: str) -> drift_stats.Matrix:
        rows = self._client.query(
            "SELECT embedding FROM corpus_sample FINAL "
            "WHERE tenant = {tenant:String} AND embedding_model = {model:String} "
            "AND notEmpty(embedding) ORDER BY cityHash64(id) LIMIT {limit:UInt32}",
            parameters={"tenant": tenant, "model": model,
                        "limit": self._settings.max_samples}).result_rows
        return drift_stats.as_matrix([r[0] for r in rows])

    def _write(self, results: list[DriftResult], now: datetime) -> None:
        self._client.insert("drift", [_row(r, now) for r in results], column_names=_DRIFT_COLUMNS)


# Windows are passed as epoch milliseconds: no client- or server-side time zone can shift them.
_WINDOW = ("ts >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC') "
           "AND ts < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')")


def _window(start: datetime, end: datetime) -> dict[str, int]:
    return {"start_ms": _ms(start), "end_ms": _ms(end)}


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _row(r: DriftResult, now: datetime) -> list[Any]:
    return [r.tenant, now, r.row_id, METRIC, str(r.reference), r.centroid_distance, r.threshold,
            r.roc_auc, int(r.detected), r.current_samples, r.reference_samples, r.window_start,
            r.window_end, _ms(now)]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def drift_event(r: DriftResult) -> DriftDetected:
    """The DriftDetected of a confirmed result (contract in observability.proto)."""
    event = DriftDetected(
        envelope=make_envelope(PRODUCER, tenant=r.tenant),
        metric=METRIC,
        baseline=r.threshold,
        current=r.centroid_distance or 0.0,
        statistic=r.roc_auc or 0.0,
        reference=str(r.reference),
        current_samples=r.current_samples,
        reference_samples=r.reference_samples,
    )
    event.window_start.FromDatetime(r.window_start)
    event.window_end.FromDatetime(r.window_end)
    return event
