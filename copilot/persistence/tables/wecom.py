"""WeCom integration: per-tenant app credentials and the state automation keeps."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from copilot.clock import utcnow

__all__ = ["AutoReplyPolicyRow", "AutomationState", "KfCursor", "WeComApp", "WeComCredential"]


class WeComApp(SQLModel, table=True):
    """One tenant's self-built app: callback Token/EncodingAESKey/receive id and API credentials."""

    __tablename__ = "wecom_apps"
    tenant_id: str = Field(primary_key=True)
    corp_id: str
    secret: str
    token: str
    aes_key: str
    receive_id: str
    agent_id: str = ""


class KfCursor(SQLModel, table=True):
    """Where `kf/sync_msg` left off for one Customer Service account."""

    __tablename__ = "wecom_kf_cursors"
    tenant_id: str = Field(primary_key=True)
    open_kfid: str = Field(primary_key=True)
    cursor: str = ""
    updated_at: dt.datetime = Field(default_factory=utcnow)


class AutomationState(SQLModel, table=True):
    """Per customer: automation paused after a human reply, and when the off-hours note last went out."""

    __tablename__ = "autoreply_state"
    tenant_id: str = Field(primary_key=True)
    customer_id: str = Field(primary_key=True)
    paused_until: dt.datetime | None = None
    last_off_hours_at: dt.datetime | None = None


class AutoReplyPolicyRow(SQLModel, table=True):
    """A tenant's auto-reply policy when it is kept in the database instead of a YAML file."""

    __tablename__ = "autoreply_policies"
    tenant_id: str = Field(primary_key=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class WeComCredential(SQLModel, table=True):
    """An access token or JS-SDK ticket WeCom issued to an app, shared by every process until `good_until`;
    `refresh_owner`/`refresh_until` let one process at a time fetch the next one."""

    __tablename__ = "wecom_credentials"
    name: str = Field(primary_key=True)  # API address, corp, secret fingerprint and kind (access_token | agent_ticket)
    value: str | None = None
    good_until: dt.datetime | None = None  # expiry less a safety margin
    refresh_owner: str | None = None
    refresh_until: dt.datetime | None = None
