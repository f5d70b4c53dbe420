-- Tenants deleted (TenantDeleted), and when. The writer drops any event of a deleted tenant
-- that happened before its deletion and arrives after it (a redelivery, a late producer), so a
-- deleted tenant's rows cannot come back. A tenant created again later under the same name
-- starts afresh: its new events are after the deletion.
CREATE TABLE IF NOT EXISTS deleted_tenants
(
    tenant      String,
    deleted_at  DateTime64(3, 'UTC'),
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY tenant
