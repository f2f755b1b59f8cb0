"""Approval items for risky drafts, the append-only audit log and staff notifications."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Index, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from copilot.clock import utcnow
from copilot.errors import ConflictError
from copilot.persistence.tables.base import json_dict, json_list, new_id

__all__ = ["ApprovalItem", "AuditLog", "StaffNotification"]


class ApprovalItem(SQLModel, table=True):
    __tablename__ = "approval_items"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source_kind", "source_id"),
        Index("ix_approval_items_queue", "tenant_id", "status", "created_at"),
    )
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str
    status: str = "pending"
    source_kind: str  # candidate | outbox
    source_id: str
    suggestion_id: str | None = None
    customer_id: str | None = None
    staff_id: str | None = Field(default=None, index=True)
    text: str
    final_text: str | None = None
    risk: str
    categories: list[str] = json_list()
    flags: list[dict[str, Any]] = json_list()
    reviewer: str | None = None
    reason: str | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)
    decided_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None


class AuditLog(SQLModel, table=True):
    """Append-only: the ORM refuses updates and deletes of these rows."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(index=True)
    at: dt.datetime = Field(default_factory=utcnow)
    action: str  # held | approved | edited_approved | rejected | expired | sent | task_created | staff_notified | send_failed | send_unconfirmed
    actor: str
    approval_id: str | None = Field(default=None, index=True)
    outbox_id: str | None = None
    customer_id: str | None = Field(default=None, index=True)
    staff_id: str | None = Field(default=None, index=True)
    detail: dict[str, Any] = json_dict()


class StaffNotification(SQLModel, table=True):
    __tablename__ = "staff_notifications"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(index=True)
    staff_id: str = Field(index=True)
    kind: str
    ref_id: str
    text: str
    created_at: dt.datetime = Field(default_factory=utcnow)
    read_at: dt.datetime | None = None


def _refuse_change(*_: Any) -> None:
    raise ConflictError("the audit log is append-only")


event.listen(AuditLog, "before_update", _refuse_change)
event.listen(AuditLog, "before_delete", _refuse_change)
