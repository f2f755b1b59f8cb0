"""Webhook traffic: the inbox of received events, the outbox of messages to send, per-tenant HMAC
secrets, and the callback spool (a SQLite file of its own beside the main database; see
`copilot.webhooks.spool`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Column, Index, MetaData, UniqueConstraint
from sqlmodel import Field, SQLModel

from copilot.clock import utcnow
from copilot.persistence.tables.base import json_dict, new_id

__all__ = ["SPOOL_UNIQUE", "InboxEvent", "OutboxMessage", "SpoolCursor", "SpooledEvent", "WebhookSecret"]

SPOOL_UNIQUE = ["tenant_id", "source", "dedupe_key"]


class InboxEvent(SQLModel, table=True):
    __tablename__ = "webhook_inbox"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source", "dedupe_key"),
        Index("ix_webhook_inbox_claim", "status", "priority", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(index=True)
    source: str  # wecom | kf | messages
    dedupe_key: str
    kind: str  # add_external_contact | kf_msg_or_event | text | ignored
    priority: int = 1  # 0 first: welcome codes live 20 seconds
    payload: dict[str, Any] = json_dict()
    status: str = "pending"
    attempts: int = 0
    lease_owner: str | None = None
    lease_until: dt.datetime | None = None
    available_at: dt.datetime  # written and read by the worker's clock (see `insert_events`)
    last_error: str | None = None
    result: dict[str, Any] = json_dict()
    received_at: dt.datetime
    processed_at: dt.datetime | None = None


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "webhook_outbox"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_webhook_outbox_claim", "status", "priority", "created_at"),
    )
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(index=True)
    idempotency_key: str
    channel: str  # welcome | kf | external (a group-send task) | app_message (a note to a staff member)
    target: dict[str, Any] = json_dict()
    text: str
    kind: str = "reply"  # welcome | keyword | off_hours | ai
    risk: str = "none"
    priority: int = 1
    # ready | held | sending | sent | task_created (a group-send task the staff member confirms) | failed | cancelled
    status: str = "ready"
    approval_id: str | None = None
    customer_id: str | None = Field(default=None, index=True)
    staff_id: str | None = None
    event_id: int | None = None
    attempts: int = 0
    lease_until: dt.datetime | None = None
    available_at: dt.datetime  # the enqueuing worker's clock; the sender compares it with the same clock
    not_after: dt.datetime | None = None  # e.g. a welcome code's 20-second life
    last_error: str | None = None
    errcode: int | None = None
    remote_id: str | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)  # for people reading the row; decides nothing
    sent_at: dt.datetime | None = None


class WebhookSecret(SQLModel, table=True):
    """HMAC secret of the generic JSON message source, per tenant (the default tenant's is a setting)."""

    __tablename__ = "webhook_secrets"
    tenant_id: str = Field(primary_key=True)
    secret: str


class _SpoolBase(SQLModel):
    metadata = MetaData()  # the spool file's own tables; create_schema never puts them in the main database


class SpooledEvent(_SpoolBase, table=True):
    __tablename__ = "webhook_spool"
    __table_args__ = (UniqueConstraint(*SPOOL_UNIQUE), {"sqlite_autoincrement": True})
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    source: str
    dedupe_key: str
    kind: str
    priority: int = 1
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: dt.datetime


class SpoolCursor(SQLModel, table=True):
    """In the main database: the last spool row taken into the inbox."""

    __tablename__ = "webhook_spool_cursor"
    spool: str = Field(primary_key=True)
    last_id: int = 0
