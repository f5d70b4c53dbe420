"""Kafka edge: TrainingProgress out (key: job id), training-job-requested in.

A request whose configuration cannot run goes to the dead-letter topic with the same stable
reason SubmitJob would answer with (INVALID_CONFIG, DATASET_NOT_FOUND, UNKNOWN_BASE_MODEL...);
one whose job id is known already changes nothing (delivery is at least once).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from llmops.trainer.v1 import trainer_pb2
from llmops_kit import events
from llmops_kit.context import bound
from llmops_kit.errors import InvalidArgument, NotFound, PoisonMessage
from llmops_kit.kafka import Batch, EventBus
from llmops_trainer.api.convert import progress_pb, spec_from_pb
from llmops_trainer.domain.job import Job, Progress
from llmops_trainer.domain.jobs import Jobs
from llmops_trainer.domain.validation import DATASET_ID

log = logging.getLogger(__name__)

PRODUCER = "trainer"
GROUP = "trainer-jobs"
JOB_ID_CHARS = 64


class BusProgressPublisher:
    def __init__(self, bus: EventBus,
                 event_type: events.EventType[trainer_pb2.TrainingProgress]
                 = events.TRAINING_PROGRESS) -> None:
        self.bus = bus
        self.event_type = event_type

    async def publish(self, job: Job, records: Sequence[Progress]) -> None:
        out = []
        for record in records:
            msg = progress_pb(job, record)
            # The event id follows the record, so a re-publish is recognisably the same event.
            msg.envelope.CopyFrom(events.make_envelope(
                PRODUCER, tenant=job.tenant, event_id=f"{job.job_id}-{record.sequence}"))
            out.append((job.job_id.encode(), msg))
        try:
            await self.bus.publish_many(self.event_type, out)
        except Exception:  # progress is in the job's history either way (WatchJob replays it)
            log.exception("could not publish progress of job %s", job.job_id)


def check_job_id(job_id: str) -> None:
    if not job_id or len(job_id) > JOB_ID_CHARS or not job_id.replace("-", "").isalnum():
        raise PoisonMessage("BAD_JOB_ID", f"job_id must be 1-{JOB_ID_CHARS} letters, digits "
                                          "or dashes")


def subscribe_job_requests(
    bus: EventBus, jobs: Jobs, group: str = GROUP,
    event_type: events.EventType[trainer_pb2.TrainingJobRequested]
    = events.TRAINING_JOB_REQUESTED,
) -> None:
    async def on_requests(batch: Batch[trainer_pb2.TrainingJobRequested]) -> None:
        for item in batch.items:
            event = item.event
            try:
                check_job_id(event.job_id)
                if not DATASET_ID.fullmatch(event.spec.dataset_id):
                    raise InvalidArgument("BAD_DATASET_ID", "spec.dataset_id is not ds-<16 hex>")
                with bound(item.tenant, event.envelope.trace_id or None):
                    job = await jobs.submit(item.tenant, spec_from_pb(event.spec),
                                            job_id=event.job_id)
            except InvalidArgument as exc:
                await batch.dead_letter(item, PoisonMessage(exc.reason, exc.message))
                continue
            except PoisonMessage as exc:
                await batch.dead_letter(item, exc)
                continue
            except NotFound:  # the id is another tenant's job
                await batch.dead_letter(item, PoisonMessage("JOB_ID_TAKEN",
                                                            "job_id is used by another job"))
                continue
            log.info("job %s queued from training-job-requested", job.job_id)

    bus.subscribe_batch(event_type, group, on_requests)
