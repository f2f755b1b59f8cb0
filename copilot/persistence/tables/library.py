"""The brand library as loaded by ingest: tenants, staff, customers (profiles), scripts, content and
single documents such as the persona."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Field, SQLModel

from copilot.clock import utcnow
from copilot.persistence.tables.base import json_dict, json_list

__all__ = ["ContentRow", "CustomerRow", "LibraryDoc", "LibraryVersion", "ScriptRow", "StaffRow", "Tenant"]


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    id: str = Field(primary_key=True)
    name: str = ""
    created_at: dt.datetime = Field(default_factory=utcnow)


class StaffRow(SQLModel, table=True):
    """A staff member: from the library's staff.yaml (`source="library"`, synced by ingest) or added by
    `copilot staff sync` (`source="wecom"`, left alone by ingest). Only active members may sign in."""

    __tablename__ = "staff"
    tenant_id: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    name: str
    wecom_userid: str | None = Field(default=None, index=True)
    timezone: str = "Asia/Shanghai"
    role: str = Field(default="staff", sa_column_kwargs={"server_default": "staff"})
    team: str | None = None
    source: str = Field(default="library", sa_column_kwargs={"server_default": "library"})
    active: bool = Field(default=True, sa_column_kwargs={"server_default": "1"})
    content_hash: str = ""


class CustomerRow(SQLModel, table=True):
    __tablename__ = "customers"
    tenant_id: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    name: str
    staff_id: str | None = Field(default=None, index=True)
    segment: str = "default"
    profile: dict[str, Any] = json_dict()
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
    tags: list[str] = json_list()
    segments: list[str] = json_list()
    triggers: list[str] = json_list()
    conditions: dict[str, Any] = json_dict()  # season and requires, as in the library file
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
    data: dict[str, Any] = json_dict()
    content_hash: str = ""
    source_file: str = ""
    source_line: int = 0


class LibraryDoc(SQLModel, table=True):
    """Single documents of a library, such as the persona and tone guide."""

    __tablename__ = "library_docs"
    tenant_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    data: dict[str, Any] = json_dict()
    content_hash: str = ""


class LibraryVersion(SQLModel, table=True):
    """Moves on with every ingest of a tenant's library; each API process reloads a tenant whose version
    moved (its keyword index, classifiers and compliance rules), so an ingest anywhere reaches every process."""

    __tablename__ = "library_versions"
    tenant_id: str = Field(primary_key=True)
    version: int = 0
    updated_at: dt.datetime = Field(default_factory=utcnow)
