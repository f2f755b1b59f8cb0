"""Who may call the API: hashed API keys, and the one-time `state` of each WeCom sign-in."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from copilot.persistence.tables.base import new_id

__all__ = ["ApiKeyRow", "LoginState"]


class ApiKeyRow(SQLModel, table=True):
    """An API key of one tenant; only its SHA-256 is stored, the key itself is shown once at creation."""

    __tablename__ = "api_keys"
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(index=True)
    role: str  # admin | service
    key_hash: str = Field(unique=True)
    prefix: str  # the first characters, to tell keys apart in listings and logs
    label: str = ""
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None


class LoginState(SQLModel, table=True):
    """One WeCom OAuth round trip: the `state` sent to WeCom, the browser that started it (a hash of a
    nonce kept in that browser's cookie) and whether it was used."""

    __tablename__ = "login_states"
    state: str = Field(primary_key=True)
    tenant_id: str
    next_path: str
    browser_hash: str
    created_at: dt.datetime
    used_at: dt.datetime | None = None
