"""`llmops train` and `llmops jobs list|show|watch|cancel`: fine-tuning jobs on the trainer.

`train` submits a job for the caller's tenant (a maintainer key) on one of its dataset versions
(`llmops datasets list`); `--watch` (and `jobs watch`) follow it with a progress bar showing
loss and tokens/s until it ends, exiting 0 only when it SUCCEEDED. With --json every command
prints JSON; watching prints one JSON object per progress record (JSON lines).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TextIO, cast

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from llmops.trainer.v1 import trainer_pb2 as pb
from llmops.trainer.v1 import trainer_pb2_grpc
from llmops_cli.client import api_key_for, metadata
from llmops_kit import ports

TIMEOUT = 30.0
BAR = 30
STATES = {"queued": pb.JOB_STATE_QUEUED, "running": pb.JOB_STATE_RUNNING,
          "succeeded": pb.JOB_STATE_SUCCEEDED, "failed": pb.JOB_STATE_FAILED,
          "cancelled": pb.JOB_STATE_CANCELLED}
FINAL = (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED)


def _dict(msg: Message) -> dict[str, Any]:
    return MessageToDict(msg, preserving_proto_field_name=True)


def _state(value: int) -> str:
    return pb.JobState.Name(value).removeprefix("JOB_STATE_")  # type: ignore[arg-type]


@asynccontextmanager
async def _trainer() -> AsyncIterator[trainer_pb2_grpc.TrainerServiceAsyncStub]:
    address = os.environ.get("LLMOPS_TRAINER_ADDR", ports.service_address("trainer"))
    async with grpc.aio.insecure_channel(address) as channel:
        yield cast("trainer_pb2_grpc.TrainerServiceAsyncStub",
                   trainer_pb2_grpc.TrainerServiceStub(channel))


def _md(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    return metadata(api_key_for(args.tenant, args.api_key))


def job_line(job: pb.Job) -> str:
    parts = [job.job_id, _state(job.state), f"dataset {job.spec.dataset_id}",
             f"{'lora' if job.spec.lora else 'full'} zero-{job.spec.zero_stage}"]
    if job.last_progress.step:
        parts.append(f"step {job.last_progress.step}/{job.last_progress.total_steps or '?'}")
    if job.model_version:
        parts.append(f"-> {job.model_name}@{job.model_version}")
    if job.error:
        parts.append(job.error)
    return "  ".join(parts)


def job_text(job: pb.Job) -> str:
    s = job.spec
    lines = [job_line(job),
             f"base {s.base_model}, output {s.output_model_name}, epochs {s.epochs}, "
             f"lr {s.learning_rate:g}, micro batch {s.micro_batch_size} x accumulation "
             f"{s.gradient_accumulation}, max_seq_len {s.max_seq_len}, world size {s.world_size}"
             + (f", lora r={s.lora_r} alpha={s.lora_alpha}" if s.lora else "")
             + (f", max_steps {s.max_steps}" if s.max_steps else ""),
             f"attempts {job.attempts}"]
    return "\n".join(lines)


class ProgressBar:
    """One line, redrawn: `[#####-----] step 3/10  loss 1.2345  152 tok/s  val 1.30`."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.val_loss: float | None = None
        self.drawn = False

    def update(self, p: pb.TrainingProgress) -> None:
        if p.kind == pb.PROGRESS_KIND_EVAL and "val_loss" in p.eval_metrics:
            self.val_loss = p.eval_metrics["val_loss"]
        if p.kind == pb.PROGRESS_KIND_STEP:
            self.out.write("\r" + self.line(p))
            self.drawn = True
        elif p.kind == pb.PROGRESS_KIND_STATE:
            self.end()
            text = f"{_state(p.state)}" + (f": {p.message}" if p.message else "")
            if p.model_version:
                text += f" -> registered {p.model_name}@{p.model_version}"
            self.out.write(text + "\n")
        elif p.kind == pb.PROGRESS_KIND_RESUMED:
            self.end()
            self.out.write(f"resumed from the checkpoint at step {p.step}\n")
        self.out.flush()

    def line(self, p: pb.TrainingProgress) -> str:
        total = p.total_steps or 0
        filled = int(BAR * p.step / total) if total else 0
        bar = "#" * filled + "-" * (BAR - filled)
        text = f"[{bar}] step {p.step}/{total or '?'}  loss {p.loss:.4f}  " \
               f"{p.tokens_per_s:.0f} tok/s"
        if self.val_loss is not None:
            text += f"  val {self.val_loss:.4f}"
        return text

    def end(self) -> None:
        if self.drawn:
            self.out.write("\n")
            self.drawn = False


async def watch(args: argparse.Namespace, job_id: str) -> int:
    md = _md(args)
    bar = ProgressBar(sys.stdout)
    last = pb.JOB_STATE_UNSPECIFIED
    async with _trainer() as stub:
        async for p in stub.WatchJob(pb.WatchJobRequest(job_id=job_id), metadata=md):
            if args.json:
                print(json.dumps(_dict(p)), flush=True)
            else:
                bar.update(p)
            last = p.state if p.kind == pb.PROGRESS_KIND_STATE else last
    bar.end()
    return 0 if last == pb.JOB_STATE_SUCCEEDED else 1


def spec_from_args(args: argparse.Namespace) -> pb.SubmitJobRequest:
    req = pb.SubmitJobRequest(
        dataset_id=args.dataset, base_model=args.base_model, lora=args.lora,
        zero_stage=args.zero_stage, epochs=args.epochs, learning_rate=args.lr,
        micro_batch_size=args.micro_batch, gradient_accumulation=args.grad_accum,
        max_seq_len=args.max_seq_len, packing=args.packing, lora_r=args.lora_r,
        lora_alpha=args.lora_alpha, eval_interval_steps=args.eval_interval,
        checkpoint_interval_steps=args.checkpoint_interval,
        early_stopping_patience=args.patience, world_size=args.world_size,
        max_steps=args.max_steps, seed=args.seed, output_model_name=args.output_name)
    if args.all_tokens_loss:
        req.response_only_loss = False
    return req


async def cmd_train(args: argparse.Namespace) -> int:
    async with _trainer() as stub:
        job = await stub.SubmitJob(spec_from_args(args), metadata=_md(args), timeout=TIMEOUT)
    if not args.watch:
        print(json.dumps(_dict(job), indent=2) if args.json else
              f"queued {job.job_id} (follow it: llmops jobs watch {job.job_id})")
        return 0
    if not args.json:
        print(f"job {job.job_id}")
    return await watch(args, job.job_id)


async def cmd_jobs(args: argparse.Namespace) -> int:
    md = _md(args)
    if args.jobs_cmd == "watch":
        return await watch(args, args.job_id)
    async with _trainer() as stub:
        if args.jobs_cmd == "list":
            resp = await stub.ListJobs(pb.ListJobsRequest(
                page_size=args.limit, state=STATES.get(args.state or "", pb.JOB_STATE_UNSPECIFIED)),
                metadata=md, timeout=TIMEOUT)
            data: Any = [_dict(j) for j in resp.jobs]
            text = "\n".join(job_line(j) for j in resp.jobs) or "no jobs"
        elif args.jobs_cmd == "show":
            job = await stub.GetJob(pb.GetJobRequest(job_id=args.job_id), metadata=md,
                                    timeout=TIMEOUT)
            data, text = _dict(job), job_text(job)
        else:
            job = await stub.CancelJob(pb.CancelJobRequest(job_id=args.job_id), metadata=md,
                                       timeout=TIMEOUT)
            data = _dict(job)
            text = (f"{job.job_id} {_state(job.state)}" if job.state in FINAL
                    else f"{job.job_id}: stopping (SIGTERM sent to its worker)")
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else text)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 parents: list[argparse.ArgumentParser]) -> None:
    """Adds `train` and `jobs ...`; parents: the shared --json/--tenant options."""
    train = sub.add_parser("train", parents=parents,
                           help="fine-tune a model on a dataset version (0 = the default)")
    train.add_argument("--dataset", required=True, help="dataset version id (ds-...)")
    train.add_argument("--base-model", default="",
                       help="NAME (shipped) or NAME@VERSION (hf in the registry)")
    train.add_argument("--output-name", default="", help="registered model name")
    train.add_argument("--lora", action="store_true", help="LoRA adapter instead of full")
    train.add_argument("--lora-r", type=int, default=0)
    train.add_argument("--lora-alpha", type=int, default=0)
    train.add_argument("--zero-stage", type=int, default=0, help="DeepSpeed ZeRO stage 1-3")
    train.add_argument("--epochs", type=int, default=0)
    train.add_argument("--lr", type=float, default=0.0, help="learning rate")
    train.add_argument("--micro-batch", type=int, default=0)
    train.add_argument("--grad-accum", type=int, default=0)
    train.add_argument("--max-seq-len", type=int, default=0)
    train.add_argument("--packing", action="store_true")
    train.add_argument("--all-tokens-loss", action="store_true",
                       help="loss on every token, not only the responses")
    train.add_argument("--eval-interval", type=int, default=0, help="steps")
    train.add_argument("--checkpoint-interval", type=int, default=0, help="steps")
    train.add_argument("--patience", type=int, default=0, help="early stopping evaluations")
    train.add_argument("--world-size", type=int, default=0, help="1 or 2 processes")
    train.add_argument("--max-steps", type=int, default=0)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--watch", action="store_true", help="follow it with a progress bar")
    train.set_defaults(func=cmd_train)

    jobs = sub.add_parser("jobs", help="fine-tuning jobs").add_subparsers(dest="jobs_cmd",
                                                                          required=True)
    ls = jobs.add_parser("list", parents=parents, help="newest first")
    ls.add_argument("--state", choices=sorted(STATES))
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=cmd_jobs)
    for name, text in (("show", "one job"), ("watch", "follow a job until it ends"),
                       ("cancel", "cancel a queued or running job")):
        cmd = jobs.add_parser(name, parents=parents, help=text)
        cmd.add_argument("job_id")
        cmd.set_defaults(func=cmd_jobs)
