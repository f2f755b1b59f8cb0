"""What a principal may see, applied to stored things: a customer belongs to its staff member (`staff_id`);
anything outside the principal's reach is answered as not found, so its existence does not leak."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session

from copilot.errors import NotFoundError
from copilot.identity.roles import Principal
from copilot.persistence.tables.conversations import SuggestionRow
from copilot.persistence.tables.library import CustomerRow

__all__ = ["require_customer", "require_owner", "require_suggestion"]


def require_customer(engine: Engine, principal: Principal, customer_id: str) -> str | None:
    """The owner of a customer this principal may see; NotFoundError otherwise (as if it did not exist)."""
    with Session(engine) as session:
        row = session.get(CustomerRow, (principal.tenant, customer_id))
    if row is None or not principal.may_see(row.staff_id):
        raise NotFoundError(f"customer {customer_id!r} not found for tenant {principal.tenant!r}")
    return row.staff_id


def require_owner(principal: Principal, owner: str | None, what: str) -> None:
    """Something that belongs to staff member `owner` (an approval, a revisit, a queue)."""
    if not principal.may_see(owner):
        raise NotFoundError(f"{what} not found")


def require_suggestion(engine: Engine, principal: Principal, suggestion_id: str) -> None:
    """A suggestion drafted for a customer (or by a staff member) this principal may see."""
    with Session(engine) as session:
        row = session.get(SuggestionRow, suggestion_id)
    if row is not None and row.tenant_id == principal.tenant:
        if row.customer_id is not None:
            require_customer(engine, principal, row.customer_id)
            return
        if principal.may_see(row.staff_id):
            return
    raise NotFoundError(f"suggestion {suggestion_id!r} not found")
