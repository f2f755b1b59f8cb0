"""Who is who in a tenant, as the back office needs it: each staff member's team and WeCom userid, and
who supervises whom (a `supervisor` of the same team; a team without one falls back to the admins)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from copilot.persistence.tables.library import StaffRow

__all__ = ["Person", "StaffDirectory"]


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    wecom_userid: str | None
    team: str | None
    role: str


class StaffDirectory:
    def __init__(self, people: list[Person]) -> None:
        self._by_id = {p.id: p for p in people}

    @classmethod
    def load(cls, engine: Engine, tenant: str) -> StaffDirectory:
        with Session(engine) as session:
            rows = session.exec(select(StaffRow).where(StaffRow.tenant_id == tenant)).all()
        return cls([Person(r.id, r.name, r.wecom_userid, getattr(r, "team", None), getattr(r, "role", "staff"))
                    for r in rows if getattr(r, "active", True)])

    def people(self) -> list[Person]:
        return sorted(self._by_id.values(), key=lambda p: p.id)

    def get(self, staff_id: str) -> Person | None:
        return self._by_id.get(staff_id)

    def name(self, staff_id: str) -> str:
        person = self._by_id.get(staff_id)
        return person.name if person else staff_id

    def team(self, staff_id: str) -> str | None:
        person = self._by_id.get(staff_id)
        return person.team if person else None

    def members(self, team: str) -> list[str]:
        return sorted(p.id for p in self._by_id.values() if p.team == team)

    def supervisors_of(self, staff_id: str) -> list[Person]:
        team = self.team(staff_id)
        found = [p for p in self._by_id.values() if p.role == "supervisor" and team and p.team == team
                 and p.id != staff_id]
        return found or [p for p in self._by_id.values() if p.role == "admin" and p.id != staff_id]
