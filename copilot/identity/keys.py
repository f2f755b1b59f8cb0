"""API keys: random, shown once, stored as SHA-256 (a key is 32 random bytes, so a fast hash is enough and
lets a request find its key with one indexed lookup).

Keys from `COPILOT_API_KEYS` are the operator's and act as their tenant's admin; keys created with
`copilot keys create` carry the role they were made with (`admin` or `service`) and can be revoked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from copilot.errors import NotFoundError, ValidationError
from copilot.identity.roles import Principal, Role
from copilot.identity.tenants import require_tenant
from copilot.persistence.engine import session_scope
from copilot.persistence.tables.identity import ApiKeyRow

__all__ = ["KEY_ROLES", "KeyRing", "create_key", "hash_key", "list_keys", "revoke_key"]

KEY_ROLES = ("admin", "service")
_PREFIX_CHARS = 8


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(engine: Engine, tenant: str, role: str, *, label: str = "", now: dt.datetime) -> tuple[ApiKeyRow, str]:
    """A new key of `tenant`; returns the stored row and the key itself, which is never stored or shown again."""
    if role not in KEY_ROLES:
        raise ValidationError(f"an API key's role is one of {', '.join(KEY_ROLES)}; got {role!r} "
                              "(people sign in through WeCom instead)")
    require_tenant(engine, tenant)
    key = f"ck_{secrets.token_urlsafe(32)}"
    row = ApiKeyRow(tenant_id=tenant, role=role, key_hash=hash_key(key), prefix=key[:_PREFIX_CHARS],
                    label=label[:100], created_at=now)
    with session_scope(engine) as session:
        session.add(row)
    return row, key


def list_keys(engine: Engine, tenant: str) -> list[ApiKeyRow]:
    with Session(engine) as session:
        return list(session.exec(select(ApiKeyRow).where(ApiKeyRow.tenant_id == tenant)
                                 .order_by(col(ApiKeyRow.created_at))).all())


def revoke_key(engine: Engine, tenant: str, key_id: str, *, now: dt.datetime) -> ApiKeyRow:
    with session_scope(engine) as session:
        row = session.get(ApiKeyRow, key_id)
        if row is None or row.tenant_id != tenant:
            raise NotFoundError(f"API key {key_id!r} not found in tenant {tenant!r}")
        if row.revoked_at is None:
            row.revoked_at = now
            session.add(row)
        return row


@dataclass(frozen=True)
class _Configured:
    tenant: str
    prefix: str


class KeyRing:
    """Finds the principal of an API key: the configured keys first, then the stored ones."""

    def __init__(self, engine: Engine, configured: Iterable[str], *, default_tenant: str) -> None:
        self._engine = engine
        self._configured: dict[str, _Configured] = {}
        for raw in configured:
            tenant, sep, key = raw.partition(":")
            if not (sep and tenant and key):
                tenant, key = default_tenant, raw
            self._configured[hash_key(key)] = _Configured(tenant, key[:4])

    def principal(self, key: str) -> Principal | None:
        digest = hash_key(key)
        found = self._configured.get(digest)
        if found is not None:
            return Principal(tenant=found.tenant, role=Role.admin, name=f"configured key {found.prefix}…",
                             key_id=found.prefix)
        with Session(self._engine) as session:
            row = session.exec(select(ApiKeyRow).where(ApiKeyRow.key_hash == digest)).first()
        if row is None or row.revoked_at is not None:
            return None
        return Principal(tenant=row.tenant_id, role=Role(row.role), name=row.label or f"key {row.prefix}…",
                         key_id=row.prefix)
