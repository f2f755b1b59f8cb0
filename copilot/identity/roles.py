"""Roles, the access each route declares, and the principal a request acts as.

    staff       a person: their own customers, revisit queue, sends and approval requests
    supervisor  a person: their team's customers, and decides their team's approvals
    admin       a person or an admin API key: everything of the tenant (library, compliance, exports, settings)
    service     an API key of a system that calls on the tenant's behalf: tenant-wide data, no decisions
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from copilot.errors import ForbiddenError

__all__ = ["Access", "Principal", "Role"]


class Role(StrEnum):
    staff = "staff"
    supervisor = "supervisor"
    admin = "admin"
    service = "service"


class Access(StrEnum):
    """What a route needs; every route declares exactly one (see `api.deps.require`)."""

    staff = "staff"            # anyone signed in or holding a key; data scoped to what the caller may see
    supervisor = "supervisor"  # supervisors and admins: team views such as approval queues and audit
    reviewer = "reviewer"      # a signed-in supervisor or admin: a decision carries a person's name
    admin = "admin"            # admins: library, compliance reload, exports, tenant settings
    operator = "operator"      # admins and service keys: machine-facing operations


_ALLOWED: dict[Access, frozenset[Role]] = {
    Access.staff: frozenset(Role),
    Access.supervisor: frozenset({Role.supervisor, Role.admin}),
    Access.reviewer: frozenset({Role.supervisor, Role.admin}),
    Access.admin: frozenset({Role.admin}),
    Access.operator: frozenset({Role.admin, Role.service}),
}
_NEEDS = {
    Access.staff: "a signed-in staff member or an API key",
    Access.supervisor: "a supervisor or an admin",
    Access.reviewer: "a signed-in supervisor or admin (decisions carry a person's name, so API keys cannot make them)",
    Access.admin: "an admin",
    Access.operator: "an admin or a service API key",
}


@dataclass(frozen=True)
class Principal:
    """Who a request acts as. People have a `staff_id`; API keys a `key_id` (the key's first characters)."""

    tenant: str
    role: Role
    name: str
    staff_id: str | None = None
    team: str | None = None
    key_id: str | None = None
    team_members: frozenset[str] = field(default_factory=frozenset)  # a supervisor's team, self included

    @property
    def is_person(self) -> bool:
        return self.staff_id is not None

    @property
    def actor(self) -> str:
        """What audit rows and sends record as the one who acted."""
        return self.staff_id if self.staff_id is not None else f"key:{self.key_id}"

    def visible_staff(self) -> frozenset[str] | None:
        """Whose customers this principal may see: None means every customer of the tenant."""
        if self.role in (Role.admin, Role.service):
            return None
        if self.role == Role.supervisor:
            return self.team_members | {self.staff_id or ""}
        return frozenset({self.staff_id or ""})

    def may_see(self, owner: str | None) -> bool:
        """May this principal see a customer (or approval, or revisit) that belongs to `owner`?"""
        visible = self.visible_staff()
        return visible is None or (owner is not None and owner in visible)

    def allows(self, access: Access) -> bool:
        if self.role not in _ALLOWED[access]:
            return False
        return access != Access.reviewer or self.is_person

    def require(self, access: Access) -> None:
        if not self.allows(access):
            who = f"{self.role.value} {self.staff_id}" if self.is_person else f"a {self.role.value} API key"
            raise ForbiddenError(f"this needs {_NEEDS[access]}; you are {who}")
