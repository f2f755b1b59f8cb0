"""What every table module shares: ids and JSON columns."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field

__all__ = ["json_dict", "json_list", "new_id"]


def new_id() -> str:
    return uuid.uuid4().hex


def json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def json_dict() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
