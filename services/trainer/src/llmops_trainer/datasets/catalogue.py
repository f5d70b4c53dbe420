"""The catalogue of dataset versions: one row per (tenant, id) in the service's SQL database
(SQLite or Postgres through llmops_kit.db), so listing never walks the artifact store."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text, select
from sqlalchemy.engine import Engine

from llmops_kit.db import create_schema as kit_create_schema
from llmops_kit.db import insert_ignore, writer

metadata = MetaData()

dataset_versions = Table(
    "dataset_versions", metadata,
    Column("tenant", String(128), primary_key=True),
    Column("id", String(32), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("uri", Text, nullable=False),
    Column("train_count", Integer, nullable=False),
    Column("validation_count", Integer, nullable=False),
    Column("records_count", Integer, nullable=False),
    Column("manifest", Text, nullable=False),
    Index("ix_dataset_versions_tenant_created", "tenant", "created_at"),
)


@dataclass(frozen=True)
class Entry:
    tenant: str
    id: str
    name: str
    kind: str
    created_at: datetime
    created_by: str
    uri: str
    manifest: dict[str, Any]


def create_schema(engine: Engine) -> None:
    kit_create_schema(metadata, engine)


def _entry(row: Any) -> Entry:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return Entry(row.tenant, row.id, row.name, row.kind, created, row.created_by, row.uri,
                 json.loads(row.manifest))


class SqlCatalogue:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, tenant: str, manifest: dict[str, Any], uri: str) -> Entry:
        """Records a version (a no-op when it is there) and returns the stored row."""
        counts = manifest.get("counts", {})
        created = datetime.fromisoformat(manifest["created_at"])
        values = {"tenant": tenant, "id": manifest["id"], "name": manifest.get("name", ""),
                  "kind": manifest["kind"], "created_at": created,
                  "created_by": manifest.get("created_by", ""), "uri": uri,
                  "train_count": counts.get("train", 0),
                  "validation_count": counts.get("validation", 0),
                  "records_count": counts.get("records", 0),
                  "manifest": json.dumps(manifest, ensure_ascii=False)}
        with writer(self.engine).begin() as conn:
            conn.execute(insert_ignore(self.engine, dataset_versions, values))
        entry = self.get(tenant, manifest["id"])
        assert entry is not None
        return entry

    def get(self, tenant: str, dataset_id: str) -> Entry | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(dataset_versions).where(
                dataset_versions.c.tenant == tenant, dataset_versions.c.id == dataset_id)).first()
        return _entry(row) if row is not None else None

    def list(self, tenant: str, kind: str | None = None, limit: int = 100) -> list[Entry]:
        query = select(dataset_versions).where(dataset_versions.c.tenant == tenant)
        if kind:
            query = query.where(dataset_versions.c.kind == kind)
        query = query.order_by(dataset_versions.c.created_at.desc(), dataset_versions.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(query)]

    def delete_tenant(self, tenant: str) -> int:
        with writer(self.engine).begin() as conn:
            result = conn.execute(dataset_versions.delete().where(dataset_versions.c.tenant == tenant))
        return int(result.rowcount or 0)
