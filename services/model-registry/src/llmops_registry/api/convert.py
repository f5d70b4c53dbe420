"""Domain values <-> protobuf messages (used by the gRPC servicer and the event publisher)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from llmops.registry.v1 import registry_pb2 as pb
from llmops_registry.domain.model import Lineage, ModelVersion, PointerChange, PromptVersion, Summary
from llmops_registry.domain.templates import TemplateDocument


def _ts(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def lineage_from_pb(msg: pb.Lineage) -> Lineage:
    return Lineage(msg.parent_name, msg.parent_version, msg.training_job_id, msg.dataset_uri)


def model_version_pb(mv: ModelVersion) -> pb.ModelVersion:
    lin = mv.lineage
    return pb.ModelVersion(
        name=mv.name, version=mv.version, artifact_uri=mv.artifact_uri,
        base_model=mv.base_model, format=mv.format, metadata=mv.metadata,
        aliases=list(mv.aliases), created_at=_ts(mv.created_at), created_by=mv.created_by,
        tenant_id=mv.tenant,
        lineage=pb.Lineage(parent_name=lin.parent_name, parent_version=lin.parent_version,
                           training_job_id=lin.training_job_id, dataset_uri=lin.dataset_uri),
    )


def prompt_version_pb(pv: PromptVersion) -> pb.PromptVersion:
    return pb.PromptVersion(
        name=pv.name, version=pv.version, template=pv.template, labels=list(pv.labels),
        variables=list(pv.variables), created_at=_ts(pv.created_at), created_by=pv.created_by,
        description=pv.description, tenant_id=pv.tenant,
    )


def alias_change_pb(c: PointerChange) -> pb.AliasChange:
    return pb.AliasChange(alias=c.pointer, from_version=c.from_version, to_version=c.to_version,
                          actor=c.actor, reason=c.reason, changed_at=_ts(c.changed_at),
                          sequence=c.sequence, tenant_id=c.tenant)


def label_change_pb(c: PointerChange) -> pb.PromptLabelChange:
    return pb.PromptLabelChange(label=c.pointer, from_version=c.from_version,
                                to_version=c.to_version, actor=c.actor, reason=c.reason,
                                changed_at=_ts(c.changed_at), sequence=c.sequence,
                                tenant_id=c.tenant)


def model_summary_pb(s: Summary) -> pb.ModelSummary:
    return pb.ModelSummary(name=s.name, latest_version=s.latest_version, aliases=s.pointers,
                           created_at=_ts(s.created_at), created_by=s.created_by)


def prompt_summary_pb(s: Summary) -> pb.PromptSummary:
    return pb.PromptSummary(name=s.name, latest_version=s.latest_version, labels=s.pointers,
                            created_at=_ts(s.created_at), created_by=s.created_by)


def documents_from_pb(docs: Iterable[pb.PromptDocument]) -> list[TemplateDocument]:
    return [TemplateDocument(id=d.id, text=d.text, title=d.title, source=d.source,
                             metadata=dict(d.metadata), score=d.score) for d in docs]
