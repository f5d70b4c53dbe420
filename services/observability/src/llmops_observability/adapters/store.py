"""The observability store on one clickhouse-connect client: batch inserts and deletions.

clickhouse-connect is synchronous; every call runs in a worker thread (`asyncio.to_thread`)
so the consumers and the gRPC server keep the event loop. Inserts are column-oriented, one
per table per consumer batch.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from llmops_observability.rows import COLUMNS, Rows, ms_version, utc

log = logging.getLogger(__name__)

# Every table that holds a tenant's rows (all of them: tenant is the first key column).
TENANT_TABLES = (*COLUMNS, "drift")


class ClickHouseStore:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def write(self, rows: Rows) -> dict[str, int]:
        """Inserts every table's rows (one insert per table); returns rows per table. Returns
        only once ClickHouse has them, so the caller may ack the records they came from."""
        return await asyncio.to_thread(self._write, rows)

    def _write(self, rows: Rows) -> dict[str, int]:
        written = {}
        for table, names, columns in rows.tables():
            self.client.insert(table, columns, column_names=list(names), column_oriented=True)
            written[table] = len(columns[0])
        return written

    async def delete_tenant(self, tenant: str, deleted_at: datetime) -> int:
        """Records the deletion (see deleted_tenants), then removes every row of `tenant` from
        every table; returns how many there were."""
        return await asyncio.to_thread(self._delete_tenant, tenant, deleted_at)

    def _delete_tenant(self, tenant: str, deleted_at: datetime) -> int:
        self.client.insert("deleted_tenants", [[tenant, deleted_at, ms_version(deleted_at)]],
                           column_names=["tenant", "deleted_at", "version"])
        removed = 0
        for table in TENANT_TABLES:
            removed += self._delete(table, "tenant = {t:String}", {"t": tenant})
        return removed

    async def delete_document(self, tenant: str, document_id: str, up_to_version: int) -> int:
        """Removes a document's document_events up to `up_to_version` (0: every version; the
        deletion's own row stays as the record that it happened) and its corpus_sample rows."""
        return await asyncio.to_thread(self._delete_document, tenant, document_id, up_to_version)

    def _delete_document(self, tenant: str, document_id: str, up_to_version: int) -> int:
        params = {"t": tenant, "d": document_id, "v": up_to_version}
        where = "tenant = {t:String} AND document_id = {d:String}"
        removed = self._delete(
            "document_events",
            where + " AND event != 'deleted' AND ({v:UInt32} = 0 OR doc_version <= {v:UInt32})",
            params)
        # Sampled vectors carry no document version: all of the document's go.
        removed += self._delete("corpus_sample", where, params)
        return removed

    def _delete(self, table: str, where: str, params: dict[str, Any]) -> int:
        count = int(self.client.query(f"SELECT count() FROM {table} WHERE {where}",
                                      parameters=params).result_rows[0][0])
        if count:
            # A lightweight delete: the rows are invisible at once, gone at the next merge.
            self.client.command(f"DELETE FROM {table} WHERE {where}", parameters=params)
        return count

    async def deleted_tenants(self) -> dict[str, datetime]:
        """Every deleted tenant and when it was (last) deleted."""
        rows = await asyncio.to_thread(
            self.client.query, "SELECT tenant, max(deleted_at) FROM deleted_tenants GROUP BY tenant")
        return {tenant: utc(at) for tenant, at in rows.result_rows}

    async def ready(self) -> bool:
        """Health probe: the store answers a query."""
        try:
            await asyncio.to_thread(self.client.command, "SELECT 1")
            return True
        except Exception:
            log.warning("ClickHouse does not answer", exc_info=True)
            return False

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)
