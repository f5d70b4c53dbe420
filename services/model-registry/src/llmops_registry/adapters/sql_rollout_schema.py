"""The rollout tables: canaries (one row per canary, the newest per tenant and model is the
current one) and controller leases (which registry replica runs the canary controller).

They share the registry's metadata (sql_schema.Base), so create_schema creates them too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llmops_registry.adapters.sql_schema import NAME, TENANT, Base


class CanaryRow(Base):
    __tablename__ = "canaries"
    __table_args__ = (Index("ix_canaries_owner", "model_id", "tenant", "id"),
                      Index("ix_canaries_due", "state", "next_check_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(TENANT)
    owner_id: Mapped[int] = mapped_column("model_id", ForeignKey("models.id"))
    production: Mapped[int] = mapped_column(Integer)
    candidate: Mapped[int] = mapped_column(Integer)
    share: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    max_share: Mapped[int] = mapped_column(Integer)
    interval_seconds: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[int] = mapped_column(Integer)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # progressing | promoted | rolled_back | aborted
    state: Mapped[str] = mapped_column(String(16))
    failed_checks: Mapped[int] = mapped_column(Integer, default=0)
    last_good: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_check_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(TENANT)


class LeaseRow(Base):
    """One row per singleton job: whoever holds an unexpired lease runs it."""

    __tablename__ = "controller_leases"
    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
