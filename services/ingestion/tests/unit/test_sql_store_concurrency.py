"""The SQLite document store under concurrent writers (two replicas sharing one file).

A deferred transaction that reads and then writes gets "database is locked" at once, without
waiting, when another connection wrote since it read; every read-then-write must therefore begin
IMMEDIATE. `mark_published` once did not, and document submissions failed under load.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from llmops_ingestion.adapters.sql_store import SqlDocumentStore, make_engine
from llmops_ingestion.domain.model import PreparedDocument

pytestmark = pytest.mark.unit


def _doc(i: int) -> PreparedDocument:
    return PreparedDocument(tenant="acme", document_id=f"doc-{i}", title="t", source="s", metadata={},
                            fingerprint=f"fp-{i}", chunks=[], duplicates_dropped=0)


def test_replicas_store_and_mark_documents_concurrently_without_lock_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ingestion.db"
    replicas = [SqlDocumentStore(make_engine(url)), SqlDocumentStore(make_engine(url))]

    def submit(i: int) -> None:
        store = replicas[i % 2]
        record, new = store._begin(_doc(i))
        assert new
        store._mark_published(record.tenant, record.document_id, record.version)
        store._record_indexed(record.tenant, record.document_id, record.version, 0, 0)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(submit, range(400)))
    for i in range(400):
        record = replicas[0]._get("acme", f"doc-{i}")
        assert record is not None and record.published and record.version == 1
