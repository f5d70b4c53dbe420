"""Domain <-> protobuf for the trainer's API and events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from llmops.trainer.v1 import trainer_pb2 as pb
from llmops_trainer.domain.job import Job, JobSpec, JobState, Progress

STATES = {s: pb.JobState.Value(f"JOB_STATE_{s.value}") for s in JobState}
FROM_STATE = {v: k for k, v in STATES.items()}
KINDS = {"step": pb.PROGRESS_KIND_STEP, "eval": pb.PROGRESS_KIND_EVAL,
         "checkpoint": pb.PROGRESS_KIND_CHECKPOINT, "resumed": pb.PROGRESS_KIND_RESUMED,
         "state": pb.PROGRESS_KIND_STATE}


def spec_from_pb(req: pb.SubmitJobRequest) -> JobSpec:
    return JobSpec(
        dataset_id=req.dataset_id, base_model=req.base_model,
        output_model_name=req.output_model_name, zero_stage=req.zero_stage, lora=req.lora,
        lora_r=req.lora_r, lora_alpha=req.lora_alpha, epochs=req.epochs,
        learning_rate=round(float(req.learning_rate), 10), micro_batch_size=req.micro_batch_size,
        gradient_accumulation=req.gradient_accumulation, max_seq_len=req.max_seq_len,
        packing=req.packing,
        response_only_loss=req.response_only_loss if req.HasField("response_only_loss") else True,
        eval_interval_steps=req.eval_interval_steps,
        checkpoint_interval_steps=req.checkpoint_interval_steps,
        early_stopping_patience=req.early_stopping_patience, world_size=req.world_size,
        max_steps=req.max_steps, seed=req.seed)


def spec_pb(spec: JobSpec) -> pb.SubmitJobRequest:
    return pb.SubmitJobRequest(**spec.as_dict())


def _ts(at: datetime | None) -> Timestamp | None:
    if at is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


def progress_pb(job: Job, record: Progress) -> pb.TrainingProgress:
    d: dict[str, Any] = record.data
    msg = pb.TrainingProgress(job_id=job.job_id, kind=KINDS.get(record.kind, pb.PROGRESS_KIND_UNSPECIFIED),
                              sequence=record.sequence, step=int(d.get("step") or 0),
                              total_steps=int(d.get("total_steps") or 0),
                              loss=float(d.get("loss") or 0.0), epoch=float(d.get("epoch") or 0),
                              learning_rate=float(d.get("learning_rate") or 0.0),
                              tokens_per_s=float(d.get("tokens_per_s") or 0.0),
                              overfitting=bool(d.get("overfitting")),
                              message=str(d.get("message") or ""),
                              model_name=str(d.get("model_name") or ""),
                              model_version=int(d.get("model_version") or 0))
    state = JobState(d["state"]) if record.kind == "state" else job.state
    msg.state = STATES[state]
    for name in ("val_loss", "perplexity"):
        if d.get(name) is not None:
            msg.eval_metrics[name] = float(d[name])
    return msg


def job_pb(job: Job) -> pb.Job:
    msg = pb.Job(job_id=job.job_id, state=STATES[job.state], spec=spec_pb(job.spec),
                 error=job.error, tenant_id=job.tenant, model_name=job.model_name,
                 model_version=job.model_version, submitted_by=job.submitted_by,
                 attempts=job.attempts)
    for name in ("created_at", "started_at", "finished_at"):
        ts = _ts(getattr(job, name))
        if ts is not None:
            getattr(msg, name).CopyFrom(ts)
    if job.last_progress is not None:
        msg.last_progress.CopyFrom(progress_pb(job, job.last_progress))
    return msg
