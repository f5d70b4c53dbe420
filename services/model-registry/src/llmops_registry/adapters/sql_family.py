"""Operations models and prompts share: heads, pointers (aliases/labels), history, outbox rows.

Every write locks its head row (SELECT ... FOR UPDATE on Postgres; SQLite writers hold the
database lock from BEGIN IMMEDIATE), so version numbers and the order of one model's pointer
changes are decided by one transaction at a time.

Scopes: a read on behalf of tenant T sees shared rows ("") and T's own rows; a pointer name
resolves to T's own row if there is one, else the shared one. With T = "" (SHARED) a read sees
shared rows only, which is also what a shared write may point at.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from llmops_registry.adapters.sql_schema import (
    ModelAliasHistoryRow,
    ModelAliasRow,
    ModelRow,
    ModelVersionRow,
    OutboxRow,
    PromptLabelHistoryRow,
    PromptLabelRow,
    PromptRow,
    PromptVersionRow,
)
from llmops_registry.domain.errors import Missing
from llmops_registry.domain.model import (
    LATEST,
    SHARED,
    Actor,
    PointerChange,
    PointerMove,
    Summary,
)

# Outbox kinds
MODEL_VERSION_CREATED = "model_version_created"
MODEL_ALIAS_CHANGED = "model_alias_changed"
PROMPT_VERSION_CREATED = "prompt_version_created"
PROMPT_LABEL_CHANGED = "prompt_label_changed"


@dataclass(frozen=True)
class Family:
    noun: str
    pointer_noun: str
    head: Any
    version: Any
    pointer: Any
    history: Any
    version_kind: str
    change_kind: str
    version_not_found: str

    @property
    def not_found(self) -> str:
        return f"{self.noun.upper()}_NOT_FOUND"

    @property
    def pointer_not_found(self) -> str:
        return f"{self.pointer_noun.upper()}_NOT_FOUND"


MODELS = Family("model", "alias", ModelRow, ModelVersionRow, ModelAliasRow, ModelAliasHistoryRow,
                MODEL_VERSION_CREATED, MODEL_ALIAS_CHANGED, "VERSION_NOT_FOUND")
PROMPTS = Family("prompt", "label", PromptRow, PromptVersionRow, PromptLabelRow,
                 PromptLabelHistoryRow, PROMPT_VERSION_CREATED, PROMPT_LABEL_CHANGED,
                 "PROMPT_VERSION_NOT_FOUND")


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def scopes(tenant: str) -> tuple[str, ...]:
    """The scopes a read on behalf of `tenant` sees."""
    return (SHARED,) if tenant == SHARED else (SHARED, tenant)


def head(s: Session, fam: Family, name: str, *, lock: bool = False) -> Any:
    stmt = select(fam.head).where(fam.head.name == name)
    if lock:
        stmt = stmt.with_for_update()
    row = s.scalars(stmt).one_or_none()
    if row is None:
        raise Missing(fam.not_found, f"{fam.noun} {name!r} does not exist")
    return row


def newest_visible(s: Session, fam: Family, owner: Any, tenant: str) -> int:
    """The newest version `tenant` can see; 0 if none."""
    newest = s.scalar(select(func.max(fam.version.version)).where(
        fam.version.owner_id == owner.id, fam.version.tenant.in_(scopes(tenant))))
    return int(newest or 0)


def visible_head(s: Session, fam: Family, name: str, tenant: str, *, lock: bool = False) -> Any:
    """The head row if `tenant` can see at least one version of it: a name that only another
    tenant has versions of does not exist for this one (nothing about it leaks)."""
    owner = head(s, fam, name, lock=lock)
    if not newest_visible(s, fam, owner, tenant):
        raise Missing(fam.not_found, f"{fam.noun} {name!r} does not exist")
    return owner


def ensure_head(s: Session, fam: Family, name: str, actor: Actor, at: datetime) -> Any:
    """The head row, created if missing, locked for the rest of the transaction."""
    dialect = s.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    s.execute(insert(fam.head).values(name=name, latest_version=0, created_at=at,
                                      created_by=actor.tenant).on_conflict_do_nothing())
    return head(s, fam, name, lock=True)


def version_row(s: Session, fam: Family, owner: Any, version: int, tenant: str) -> Any:
    """Version `version` if `tenant` can see it (another tenant's is as good as missing)."""
    row = s.scalars(select(fam.version).where(
        fam.version.owner_id == owner.id, fam.version.version == version,
        fam.version.tenant.in_(scopes(tenant)))).one_or_none()
    if row is None:
        raise Missing(fam.version_not_found,
                      f"{fam.noun} {owner.name!r} has no version {version}")
    return row


def pointer_row(s: Session, fam: Family, owner_id: int, scope: str, pointer: str) -> Any:
    return s.scalars(select(fam.pointer).where(
        fam.pointer.owner_id == owner_id, fam.pointer.tenant == scope,
        fam.pointer.name == pointer)).one_or_none()


def effective_pointers(s: Session, fam: Family, owner_id: int, tenant: str) -> dict[str, int]:
    """pointer -> version as `tenant` resolves them: its own rows over the shared ones."""
    out: dict[str, int] = {}
    rows = s.scalars(select(fam.pointer).where(fam.pointer.owner_id == owner_id,
                                               fam.pointer.tenant.in_(scopes(tenant))))
    for row in sorted(rows, key=lambda r: r.tenant != SHARED):  # shared first, own overrides
        out[row.name] = int(row.version)
    return dict(sorted(out.items()))


def resolve(s: Session, fam: Family, owner: Any, version: int | None, pointer: str | None,
            tenant: str) -> int:
    """The version number a (version | pointer | newest) selector names for `tenant`."""
    if version is not None:
        return version
    if pointer is None or (pointer == LATEST and fam.noun == "model"):
        return newest_visible(s, fam, owner, tenant)
    found = effective_pointers(s, fam, owner.id, tenant).get(pointer)
    if found is None:
        raise Missing(fam.pointer_not_found, f"{fam.noun} {owner.name!r} has no "
                                             f"{fam.pointer_noun} {pointer!r}")
    return found


def pointers_by_version(s: Session, fam: Family, owner_id: int,
                        tenant: str) -> dict[int, tuple[str, ...]]:
    out: dict[int, list[str]] = {}
    for name, version in effective_pointers(s, fam, owner_id, tenant).items():
        out.setdefault(version, []).append(name)
    return {k: tuple(v) for k, v in out.items()}


def record_event(s: Session, kind: str, ref_id: int, actor: Actor, at: datetime) -> None:
    s.add(OutboxRow(kind=kind, ref_id=ref_id, event_id=str(uuid.uuid4()), tenant=actor.tenant,
                    trace_id=actor.trace_id, created_at=at, published_at=None, attempts=0,
                    last_error=""))


def move_pointer(s: Session, fam: Family, owner: Any, scope: str, pointer: str, version: int,
                 reason: str, actor: Actor, at: datetime) -> PointerMove:
    """Points `scope`'s `pointer` at `version` (0: deletes it), with a history row and an event."""
    row = pointer_row(s, fam, owner.id, scope, pointer)
    previous = int(row.version) if row is not None else 0
    if previous == version:
        return PointerMove(previous, version, changed=False)
    if version == 0:
        s.delete(row)
    elif row is None:
        s.add(fam.pointer(owner_id=owner.id, tenant=scope, name=pointer, version=version,
                          updated_at=at, updated_by=actor.tenant))
    else:
        row.version, row.updated_at, row.updated_by = version, at, actor.tenant
    entry = fam.history(owner_id=owner.id, tenant=scope, name=pointer, from_version=previous,
                        to_version=version, actor=actor.tenant, reason=reason, changed_at=at)
    s.add(entry)
    s.flush()  # assigns the entry's id: the change's sequence
    record_event(s, fam.change_kind, entry.id, actor, at)
    return PointerMove(previous, version, changed=True)


def to_change(row: Any) -> PointerChange:
    return PointerChange(pointer=row.name, from_version=row.from_version,
                         to_version=row.to_version, actor=row.actor, reason=row.reason,
                         changed_at=utc(row.changed_at), sequence=row.id, tenant=row.tenant)


def history(s: Session, fam: Family, name: str, pointer: str | None, tenant: str, limit: int,
            before: int | None) -> list[PointerChange]:
    owner = visible_head(s, fam, name, tenant)
    stmt = select(fam.history).where(fam.history.owner_id == owner.id,
                                     fam.history.tenant.in_(scopes(tenant)))
    if pointer is not None:
        stmt = stmt.where(fam.history.name == pointer)
    if before is not None:
        stmt = stmt.where(fam.history.id < before)
    return [to_change(r) for r in s.scalars(stmt.order_by(fam.history.id.desc()).limit(limit))]


def summaries(s: Session, fam: Family, limit: int, after: str | None,
              tenant: str) -> list[Summary]:
    """Names with a version `tenant` can see, their newest such version and its pointers."""
    newest = (select(fam.version.owner_id, func.max(fam.version.version).label("latest"))
              .where(fam.version.tenant.in_(scopes(tenant)))
              .group_by(fam.version.owner_id).subquery())
    stmt = select(fam.head, newest.c.latest).join(newest, newest.c.owner_id == fam.head.id)
    if after is not None:
        stmt = stmt.where(fam.head.name > after)
    rows = list(s.execute(stmt.order_by(fam.head.name).limit(limit)))
    pointers: dict[int, dict[str, int]] = {h.id: {} for h, _ in rows}
    if rows:
        found = s.scalars(select(fam.pointer).where(fam.pointer.owner_id.in_(list(pointers)),
                                                    fam.pointer.tenant.in_(scopes(tenant))))
        for p in sorted(found, key=lambda r: r.tenant != SHARED):  # own rows override shared
            pointers[p.owner_id][p.name] = int(p.version)
    return [Summary(h.name, int(latest), dict(sorted(pointers[h.id].items())),
                    utc(h.created_at), h.created_by) for h, latest in rows]
