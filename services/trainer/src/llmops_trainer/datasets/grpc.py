"""DatasetService over gRPC: proto <-> the dataset service; errors carry x-error-reason."""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc

from llmops.trainer.v1 import datasets_pb2, datasets_pb2_grpc
from llmops_kit.auth import Role, current_principal
from llmops_kit.context import current_tenant
from llmops_kit.errors import Unauthenticated
from llmops_kit.events import make_envelope
from llmops_trainer.datasets.catalogue import Entry
from llmops_trainer.datasets.service import DatasetService, Options

SERVICE_NAME = "llmops.trainer.v1.DatasetService"
DATASET_CREATED_TOPIC = "llmops.trainer.dataset-created.v1"
_EVENT_NAMESPACE = uuid.UUID("0b7e3f55-5d0e-4a8e-9c1f-6a2d8e4b7c90")
# Any key of a tenant may create, read and list that tenant's dataset versions: building one
# changes nothing that serves traffic (training on it is the trainer's own, finer decision).
ROLES = {"CreateDataset": Role.MEMBER, "GetDataset": Role.MEMBER, "ListDatasets": Role.MEMBER}

KIND_FROM_PB = {
    datasets_pb2.DATASET_KIND_UNSPECIFIED: "auto",
    datasets_pb2.DATASET_KIND_INSTRUCTION: "instruction",
    datasets_pb2.DATASET_KIND_CHAT: "chat",
    datasets_pb2.DATASET_KIND_TEXT: "text",
    datasets_pb2.DATASET_KIND_EVAL: "eval",
}
KIND_TO_PB = {v: k for k, v in KIND_FROM_PB.items()}


def _tenant() -> str:
    tenant = current_tenant()
    if not tenant:  # the kit's wrapper refuses calls without a key before this
        raise Unauthenticated("NO_TENANT", "request has no tenant")
    return tenant


def _caller() -> str:
    principal = current_principal()
    return f"{principal.tenant}/{principal.key_id}" if principal and principal.key_id else _tenant()


def options(request: datasets_pb2.CreateDatasetRequest) -> Options:
    o = request.options
    return Options(
        max_seq_len=o.max_seq_len if o.HasField("max_seq_len") else None,
        validation_fraction=o.validation_fraction if o.HasField("validation_fraction") else None,
        seed=o.seed if o.HasField("seed") else None,
        near_duplicate_threshold=(o.near_duplicate_threshold
                                  if o.HasField("near_duplicate_threshold") else None),
        disable_near_dedupe=o.disable_near_dedupe, skip_invalid=o.skip_invalid)


def dataset_pb(entry: Entry) -> datasets_pb2.Dataset:
    m = entry.manifest
    counts, stats = m.get("counts", {}), m.get("token_stats", {})
    msg = datasets_pb2.Dataset(
        id=entry.id, tenant_id=entry.tenant, name=entry.name,
        kind=KIND_TO_PB.get(entry.kind, datasets_pb2.DATASET_KIND_UNSPECIFIED),
        created_by=entry.created_by, uri=entry.uri, base_model=m.get("base_model", ""),
        manifest_json=json.dumps(m, ensure_ascii=False, sort_keys=True),
        counts=datasets_pb2.DatasetCounts(**{k: int(counts.get(k, 0)) for k in (
            "train", "validation", "records", "input_lines", "skipped", "exact_duplicates",
            "near_duplicates")}),
        token_stats=datasets_pb2.TokenStats(
            min=int(stats.get("min", 0)), mean=float(stats.get("mean", 0)),
            p50=float(stats.get("p50", 0)), p95=float(stats.get("p95", 0)),
            max=int(stats.get("max", 0)), max_seq_len=int(stats.get("max_seq_len", 0)),
            over_length=int(stats.get("over_length", 0)), total=int(stats.get("total", 0))),
        skipped=[datasets_pb2.ValidationProblem(**p)
                 for p in m.get("validation", {}).get("skipped", [])],
    )
    msg.created_at.FromDatetime(entry.created_at)
    return msg


def dataset_created_event(entry: Entry, producer: str = "trainer") -> datasets_pb2.DatasetVersionCreated:
    """The event for a new version (topic DATASET_CREATED_TOPIC, key: the tenant id)."""
    event_id = str(uuid.uuid5(_EVENT_NAMESPACE, f"{entry.tenant}/{entry.id}"))
    return datasets_pb2.DatasetVersionCreated(
        envelope=make_envelope(producer, tenant=entry.tenant, event_id=event_id),
        dataset=dataset_pb(entry))


class DatasetServicer(datasets_pb2_grpc.DatasetServiceServicer):
    def __init__(self, service: DatasetService) -> None:
        self.service = service

    async def CreateDataset(self, request: datasets_pb2.CreateDatasetRequest,
                            context: grpc.aio.ServicerContext) -> datasets_pb2.CreateDatasetResponse:
        tenant, opts = _tenant(), options(request)
        if request.WhichOneof("source") == "from_documents":
            entry, created = await self.service.create_from_documents(
                tenant, request.name, list(request.from_documents.document_ids), opts, _caller())
        else:
            entry, created = await self.service.create_from_jsonl(
                tenant, request.name, KIND_FROM_PB.get(request.kind, "auto"), request.jsonl,
                opts, _caller())
        return datasets_pb2.CreateDatasetResponse(dataset=dataset_pb(entry), created=created)

    async def GetDataset(self, request: datasets_pb2.GetDatasetRequest,
                         context: grpc.aio.ServicerContext) -> datasets_pb2.Dataset:
        return dataset_pb(await self.service.get(_tenant(), request.id))

    async def ListDatasets(self, request: datasets_pb2.ListDatasetsRequest,
                           context: grpc.aio.ServicerContext) -> datasets_pb2.ListDatasetsResponse:
        kind = KIND_FROM_PB.get(request.kind, "auto")
        entries = await self.service.list(_tenant(), None if kind == "auto" else kind, request.limit)
        return datasets_pb2.ListDatasetsResponse(datasets=[dataset_pb(e) for e in entries])


def register(server: Any, servicer: DatasetServicer) -> None:
    """Adds the servicer to a kit GrpcServer with its role table."""
    server.add(datasets_pb2_grpc.add_DatasetServiceServicer_to_server, servicer,
               [SERVICE_NAME], ROLES)
