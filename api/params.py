"""Bounded parameter types shared by the routes, so what the OpenAPI document promises is exactly what
the server accepts: every id, free-text filter, count and duration has documented limits, and anything
outside them is a 422 naming the field."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

__all__ = ["ID_PATTERN", "MAX_ID", "IdPath", "IdQuery", "Seconds", "TenantPath", "TextQuery"]

# Library and WeCom ids: letters, digits, '_', '-', '.', starting with a letter or digit.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
MAX_ID = 128
MAX_AGE_S = 10 * 365 * 24 * 3600  # ten years: older filters are a mistake, not a request

IdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)]
# Tenant ids may be any visible characters (a brand may name its tenant in Chinese).
TenantPath = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=r"^\S+$")]
IdQuery = Annotated[str | None, Query(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)]
TextQuery = Annotated[str | None, Query(min_length=1, max_length=64)]
Seconds = Annotated[float | None, Query(ge=0, le=MAX_AGE_S, description="seconds; at most ten years")]
