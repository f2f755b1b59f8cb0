"""The revisit queue: one row per customer per day."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint
from sqlalchemy import Date as SADate
from sqlmodel import JSON, Field, SQLModel

from copilot.clock import utcnow
from copilot.persistence.tables.base import new_id

__all__ = ["RevisitItem"]


class RevisitItem(SQLModel, table=True):
    __tablename__ = "revisit_items"
    __table_args__ = (
        UniqueConstraint("tenant_id", "customer_id", "day", name="uq_revisit_customer_day"),
        Index("ix_revisit_staff_day", "tenant_id", "staff_id", "day"),
    )
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str
    day: dt.date = Field(sa_column=Column(SADate, nullable=False))
    staff_id: str
    customer_id: str
    customer_name: str = ""
    rule_id: str
    kind: str
    stage: str
    priority: float
    intent: int = 0
    score: float = 0.0
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    evidence: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = "open"  # open | done | snoozed | dismissed
    snoozed_until: dt.date | None = None
    note: str | None = None
    decided_at: dt.datetime | None = None
    draft: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    drafted_at: dt.datetime | None = None
    outcome: str | None = None
    outcome_source: str | None = None  # staff | computed
    outcome_at: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)
