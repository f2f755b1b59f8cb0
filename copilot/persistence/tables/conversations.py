"""Conversations, their messages, the suggestions drafted for them (candidates and flags) and what staff
did with each candidate."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from copilot.clock import utcnow
from copilot.persistence.tables.base import json_list, new_id

__all__ = ["CandidateRow", "Conversation", "FlagRow", "MessageRow", "SidebarFeedback", "SuggestionRow"]


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
    """One message of a chat, whichever source saw it first: the chat archive, a webhook, the sidebar or the
    suggest API. A message seen by two sources is one row (`copilot.persistence.messages` says how they are
    matched): `source` is the live source that saw it ("archive" when only the archive did) and `msgid` the
    archive's id once the archive has seen it."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "conversation_id", "dedupe_key"),
        UniqueConstraint("tenant_id", "msgid", name="uq_messages_msgid"),
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
    msgid: str | None = None
    msgtype: str = "text"  # the archive's msgtype (image, voice, file, ...); live sources send text
    sender_id: str | None = None  # staff or customer id of the writer (a group chat has several)
    withdrawn_at: dt.datetime | None = None  # recalled (撤回) by its sender


class SuggestionRow(SQLModel, table=True):
    __tablename__ = "suggestions"
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(index=True)
    conversation_id: str | None = Field(default=None, index=True)
    customer_id: str | None = None
    staff_id: str | None = None
    stage: str
    stage_confidence: float
    stage_reasons: list[str] = json_list()
    intent_score: int
    intent_level: str
    intent_factors: list[dict[str, Any]] = json_list()
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
    citations: list[dict[str, Any]] = json_list()
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


class SidebarFeedback(SQLModel, table=True):
    __tablename__ = "sidebar_feedback"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(index=True)
    suggestion_id: str = Field(index=True)
    candidate_id: str
    action: str
    final_text: str | None = None
    edit_distance: int | None = None  # characters changed from the draft to what was sent
    reason: str | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)
