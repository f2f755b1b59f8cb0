"""Staff as identities: who a WeCom userid is, who is on a team, and members synced from WeCom.

Library members (staff.yaml) get their role and team from the library; members added by `sync_members`
start as `staff` without a team, and `set_role` gives them another. A member whose userid WeCom no longer
lists is deactivated and can no longer sign in; an active session of theirs stops at its next request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from copilot.errors import NotFoundError, ValidationError
from copilot.identity.roles import Principal, Role
from copilot.persistence.engine import session_scope
from copilot.persistence.tables.library import StaffRow

__all__ = ["MemberSync", "StaffAccount", "account", "by_wecom_userid", "list_staff", "principal_for",
           "set_role", "sync_members"]

_PEOPLE_ROLES = ("staff", "supervisor", "admin")
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True)
class StaffAccount:
    tenant: str
    id: str
    name: str
    role: str
    team: str | None
    wecom_userid: str | None
    active: bool
    source: str

    @classmethod
    def of(cls, row: StaffRow) -> StaffAccount:
        return cls(row.tenant_id, row.id, row.name, row.role, row.team, row.wecom_userid, bool(row.active),
                   row.source)


def account(engine: Engine, tenant: str, staff_id: str) -> StaffAccount | None:
    with Session(engine) as session:
        row = session.get(StaffRow, (tenant, staff_id))
    return StaffAccount.of(row) if row is not None else None


def by_wecom_userid(engine: Engine, tenant: str, userid: str) -> StaffAccount | None:
    """The active staff member who signs in as `userid`, if any."""
    with Session(engine) as session:
        row = session.exec(select(StaffRow).where(
            StaffRow.tenant_id == tenant, StaffRow.wecom_userid == userid, StaffRow.active == True,  # noqa: E712
        )).first()
    return StaffAccount.of(row) if row is not None else None


def principal_for(engine: Engine, tenant: str, staff_id: str) -> Principal | None:
    """The principal of a signed-in staff member, read fresh (a role change applies at the next request);
    None when the member is gone or deactivated."""
    with Session(engine) as session:
        row = session.get(StaffRow, (tenant, staff_id))
        if row is None or not row.active or row.role not in _PEOPLE_ROLES:
            return None
        members: frozenset[str] = frozenset()
        if row.role == "supervisor" and row.team:
            members = frozenset(session.exec(select(StaffRow.id).where(
                StaffRow.tenant_id == tenant, StaffRow.team == row.team)).all())
    return Principal(tenant=tenant, role=Role(row.role), name=row.name, staff_id=row.id, team=row.team,
                     team_members=members)


def list_staff(engine: Engine, tenant: str, *, only: frozenset[str] | None = None) -> list[StaffAccount]:
    with Session(engine) as session:
        rows = session.exec(select(StaffRow).where(StaffRow.tenant_id == tenant).order_by(StaffRow.id)).all()
    return [StaffAccount.of(r) for r in rows if only is None or r.id in only]


def set_role(engine: Engine, tenant: str, staff_id: str, role: str, team: str | None) -> StaffAccount:
    """Give a member added by sync a role (and team); library members change theirs in staff.yaml."""
    if role not in _PEOPLE_ROLES:
        raise ValidationError(f"role must be one of {', '.join(_PEOPLE_ROLES)}; got {role!r}")
    if role == "supervisor" and not team:
        raise ValidationError("a supervisor oversees a team: give --team")
    with session_scope(engine) as session:
        row = session.get(StaffRow, (tenant, staff_id))
        if row is None:
            raise NotFoundError(f"staff member {staff_id!r} not found in tenant {tenant!r}")
        if row.source == "library":
            raise ValidationError(f"{staff_id!r} comes from the library's staff.yaml; change `role:`/`team:` "
                                  "there and run `copilot ingest`, so the file stays the one source")
        row.role, row.team = role, team
        session.add(row)
        return StaffAccount.of(row)


@dataclass
class MemberSync:
    added: list[str]
    reactivated: list[str]
    deactivated: list[str]
    unchanged: int

    def summary(self) -> str:
        return (f"+{len(self.added)} added, {len(self.reactivated)} reactivated, "
                f"{len(self.deactivated)} deactivated, {self.unchanged} unchanged")


def sync_members(engine: Engine, tenant: str, userids: Iterable[str]) -> MemberSync:
    """Make the tenant's staff match its WeCom members: new userids become `staff` members (source
    `wecom`), known ones are (re)activated, members whose userid is gone are deactivated."""
    wanted = {u.strip() for u in userids if u and u.strip()}
    if not wanted:
        raise ValidationError("the member list is empty; refusing to deactivate every staff member")
    report = MemberSync([], [], [], 0)
    with session_scope(engine) as session:
        rows = session.exec(select(StaffRow).where(StaffRow.tenant_id == tenant)).all()
        known = {r.wecom_userid: r for r in rows if r.wecom_userid}
        ids = {r.id for r in rows}
        for userid in sorted(wanted):
            row = known.get(userid)
            if row is None:
                new_id = _staff_id(userid, ids)
                ids.add(new_id)
                session.add(StaffRow(tenant_id=tenant, id=new_id, name=userid, wecom_userid=userid,
                                     role="staff", source="wecom", active=True))
                report.added.append(new_id)
            elif not row.active:
                row.active = True
                session.add(row)
                report.reactivated.append(row.id)
            else:
                report.unchanged += 1
        for userid, row in known.items():
            if userid not in wanted and row.active:
                row.active = False
                session.add(row)
                report.deactivated.append(row.id)
    return report


def _staff_id(userid: str, taken: set[str]) -> str:
    base = _UNSAFE_ID.sub("_", userid)
    base = base if base[:1].isalnum() else f"u{base}"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    return candidate
