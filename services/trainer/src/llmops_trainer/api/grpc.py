"""TrainerService over gRPC: translate, call the use case, translate back.

Roles (llmops_kit.auth): SubmitJob and CancelJob need the tenant's `maintainer` key (training
spends the platform's compute and creates model versions, as registering one does); GetJob,
ListJobs and WatchJob need a `member` key of the tenant. A tenant sees only its own jobs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from llmops.trainer.v1 import trainer_pb2 as pb
from llmops.trainer.v1 import trainer_pb2_grpc
from llmops_kit.auth import Principal, Role, require
from llmops_kit.errors import Unauthenticated
from llmops_trainer.api.convert import FROM_STATE, job_pb, progress_pb, spec_from_pb
from llmops_trainer.domain.jobs import Jobs

SERVICE_NAME = "llmops.trainer.v1.TrainerService"
ROLES = {"SubmitJob": Role.MAINTAINER, "CancelJob": Role.MAINTAINER, "GetJob": Role.MEMBER,
         "ListJobs": Role.MEMBER, "WatchJob": Role.MEMBER}


def _caller(role: Role, action: str) -> Principal:
    principal = require(role, action)
    if not principal.tenant:
        raise Unauthenticated("NO_TENANT", "request has no tenant")
    return principal


def actor_name(principal: Principal) -> str:
    return f"{principal.tenant}/{principal.key_id}" if principal.key_id else principal.tenant


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    async def SubmitJob(self, request: pb.SubmitJobRequest,
                        context: grpc.aio.ServicerContext) -> pb.Job:
        caller = _caller(Role.MAINTAINER, "SubmitJob")
        job = await self.jobs.submit(caller.tenant, spec_from_pb(request),
                                     submitted_by=caller.key_id)
        return job_pb(job)

    async def GetJob(self, request: pb.GetJobRequest,
                     context: grpc.aio.ServicerContext) -> pb.Job:
        caller = _caller(Role.MEMBER, "GetJob")
        return job_pb(await self.jobs.get(caller.tenant, request.job_id))

    async def ListJobs(self, request: pb.ListJobsRequest,
                       context: grpc.aio.ServicerContext) -> pb.ListJobsResponse:
        caller = _caller(Role.MEMBER, "ListJobs")
        state = FROM_STATE.get(request.state)
        jobs, token = await self.jobs.list_jobs(caller.tenant, state, request.page_size,
                                           request.page_token)
        return pb.ListJobsResponse(jobs=[job_pb(j) for j in jobs], next_page_token=token)

    async def CancelJob(self, request: pb.CancelJobRequest,
                        context: grpc.aio.ServicerContext) -> pb.Job:
        caller = _caller(Role.MAINTAINER, "CancelJob")
        return job_pb(await self.jobs.cancel(caller.tenant, request.job_id, actor_name(caller)))

    async def WatchJob(self, request: pb.WatchJobRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[pb.TrainingProgress]:
        caller = _caller(Role.MEMBER, "WatchJob")
        async for job, record in self.jobs.watch(caller.tenant, request.job_id):
            yield progress_pb(job, record)
