"""SQL tables (SQLModel). Every table carries `tenant_id`; times are UTC."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from copilot.clock import utcnow

__all__ = [
    "CandidateRow",
    "ContentRow",
    "Conversation",
    "CustomerRow",
    "FlagRow",
    "LibraryDoc",
    "MessageRow",
    "ScriptRow",
    "StaffRow",
    "SuggestionRow",
    "Tenant",
    "new_id",
]


def new_id() -> str:
    return uuid.uuid4().hex


def _json() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    id: str = Field(primary_key=True)
    name: str = ""
    created_at: dt.datetime = Field(default_factory=utcnow)


class StaffRow(SQLModel, table=True):
    __tablename__ = "staff"
    tenant_id: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    name: str
    wecom_userid: str | None = Field(default=None, index=True)
    timezone: str = "Asia/Shanghai"
    content_hash: str = ""


class CustomerRow(SQLModel, table=True):
    __tablename__ = "customers"
    tenant_id: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    name: str
    staff_id: str | None = Field(default=None, index=True)
    segment: str = "default"
    profile: dict[str, Any] = _json_dict()
    source: str = "library"  # library rows are synced by ingest; others (e.g. wecom) are left alone
    content_hash: str = ""
    source_file: str = ""
    source_line: int = 0
    updated_at: dt.datetime = Field(default_factory=utcnow)


class ScriptRow(SQLModel, table=True):
    __tablename__ = "scripts"
    tenant_id: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    stage: str = Field(index=True)
    scenario: str = Field(index=True)
    text: str
    tags: list[str] = _json()
    segments: list[str] = _json()
    triggers: list[str] = _json()
    conditions: dict[str, Any] = _json_dict()  # season and requires, as in the library file
    content_hash: str = ""
    source_file: str = ""
    source_line: int = 0


class ContentRow(SQLModel, table=True):
    __tablename__ = "content_items"
    tenant_id: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    kind: str
    title: str
    summary: str
    data: dict[str, Any] = _json_dict()
    content_hash: str = ""
    source_file: str = ""
    source_line: int = 0


class LibraryDoc(SQLModel, table=True):
    """Single documents of a library, such as the persona and tone guide."""

    __tablename__ = "library_docs"
    tenant_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    data: dict[str, Any] = _json_dict()
    content_hash: str = ""


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("tenant_id", "customer_id", "staff_id"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(index=True)
    customer_id: str
    staff_id: str
    last_stage: str | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class MessageRow(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "conversation_id", "dedupe_key"),
        Index("ix_messages_conv_ts", "tenant_id", "conversation_id", "ts"),
    )
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    conversation_id: str
    role: str
    text: str
    ts: dt.datetime
    source: str = "api"
    dedupe_key: str


class SuggestionRow(SQLModel, table=True):
    __tablename__ = "suggestions"
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(index=True)
    conversation_id: str | None = Field(default=None, index=True)
    customer_id: str | None = None
    staff_id: str | None = None
    stage: str
    stage_confidence: float
    stage_reasons: list[str] = _json()
    intent_score: int
    intent_level: str
    intent_factors: list[dict[str, Any]] = _json()
    drafter: str
    prompt_name: str | None = None
    prompt_version: str | None = None
    fallback_reason: str | None = None
    rules_version: str = ""
    latency_ms: float = 0.0
    created_at: dt.datetime = Field(default_factory=utcnow)


class CandidateRow(SQLModel, table=True):
    __tablename__ = "candidates"
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(index=True)
    suggestion_id: str = Field(index=True)
    rank: int
    text: str
    stage: str
    citations: list[dict[str, Any]] = _json()
    risk: str
    requires_approval: bool
    drafter: str


class FlagRow(SQLModel, table=True):
    __tablename__ = "flags"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(index=True)
    suggestion_id: str = Field(index=True)
    candidate_id: str | None = None  # None: the flag is on the customer's message
    category: str
    rule_id: str
    severity: str
    span_start: int
    span_end: int
    message: str
    suggestion: str | None = None
