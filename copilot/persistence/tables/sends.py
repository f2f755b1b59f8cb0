"""Sends the send gate accepted: the exact text that went to a customer, who sent it and on whose approval."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from copilot.persistence.tables.base import new_id

__all__ = ["SendRow"]


class SendRow(SQLModel, table=True):
    __tablename__ = "sends"
    __table_args__ = (Index("ix_sends_customer", "tenant_id", "customer_id", "created_at"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str
    customer_id: str
    staff_id: str
    text: str
    kind: str  # reply | proactive (what the frequency guard counted it as)
    channel: str = "sidebar"
    candidate_id: str | None = None
    approval_id: str | None = Field(default=None, unique=True)  # an approval lets exactly one send through
    actor: str  # the signed-in staff id, or `key:<prefix>` for an API key
    created_at: dt.datetime
