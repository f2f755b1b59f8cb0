"""`Revisits`: the feature's one entry point for the API, the CLI and the scheduler.

Generation is rules only; openers are drafted when a staff member's queue is read — only the top
`draft_top` items, each once (the draft is cached on the item) — through the ordinary suggestion
pipeline with no messages and the rule's stage, so they are compliance-checked like any draft. Right
before drafting, the frequency guard is asked again: an item it would now block is held back, not shown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import Session, col, select

from copilot.clock import utcnow
from copilot.errors import CopilotError, NotFoundError
from copilot.persistence.tables.library import CustomerRow, StaffRow
from copilot.persistence.tables.revisits import RevisitItem
from copilot.revisits.generate import PROACTIVE_CHANNEL, FrequencyCheck, GenerationReport, generate, local_now
from copilot.revisits.rules import RuleSet, RuleStore
from copilot.revisits.store import get_item, mark, record_outcome, rule_report
from copilot.suggestion import SuggestRequest

if TYPE_CHECKING:
    from copilot.service import Copilot

__all__ = ["HeldOut", "QueueOut", "RevisitOut", "Revisits", "StaffOut"]


class RevisitOut(BaseModel):
    id: str
    day: dt.date
    staff_id: str
    customer_id: str
    customer_name: str
    rule_id: str
    stage: str
    priority: float
    intent: int
    score: float
    reasons: list[str]
    evidence: list[dict[str, Any]]
    status: str
    snoozed_until: dt.date | None
    note: str | None
    opener: dict[str, Any] | None  # text, citations, compliance, suggestion/candidate ids; None until drafted
    outcome: str | None
    outcome_source: str | None

    @classmethod
    def of(cls, item: RevisitItem) -> RevisitOut:
        data = item.model_dump()
        return cls(**{k: v for k, v in data.items() if k in cls.model_fields}, opener=item.draft or None)


class HeldOut(BaseModel):
    id: str
    customer_id: str
    reason: str


class QueueOut(BaseModel):
    staff_id: str
    day: dt.date
    items: list[RevisitOut]
    held: list[HeldOut]  # queued, but the frequency guard would block a message now


class StaffOut(BaseModel):
    id: str
    name: str
    customers: int


class Revisits:
    def __init__(
        self, copilot: Copilot, rules: RuleStore, *, guard: FrequencyCheck | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.copilot = copilot
        self.engine = copilot.engine
        self.rules = rules
        self.guard = guard
        self.clock = clock or copilot.clock

    def rule_set(self, tenant: str) -> RuleSet:
        return self.rules.for_tenant(tenant)

    def today(self, tenant: str) -> dt.date:
        return self.clock().astimezone(ZoneInfo(self.rule_set(tenant).schedule.timezone)).date()

    # ---- generation -----------------------------------------------------------------------------
    def generate(self, tenant: str, day: dt.date | None = None) -> GenerationReport:
        rules = self.rule_set(tenant)
        day = day or self.today(tenant)
        return generate(self.engine, tenant, day, rules, now=local_now(day, rules, self.clock()), guard=self.guard)

    def generate_all(self, day: dt.date | None = None) -> list[GenerationReport]:
        return [self.generate(tenant, day) for tenant in self.copilot.repo.tenants()]

    # ---- reading --------------------------------------------------------------------------------
    def staff(self, tenant: str) -> list[StaffOut]:
        with Session(self.engine) as session:
            counts = dict(session.execute(
                select(CustomerRow.staff_id, func.count()).where(col(CustomerRow.tenant_id) == tenant)
                .group_by(col(CustomerRow.staff_id))
            ).tuples().all())
            rows = session.exec(select(StaffRow).where(col(StaffRow.tenant_id) == tenant).order_by(col(StaffRow.id)))
            return [StaffOut(id=r.id, name=r.name, customers=int(counts.get(r.id, 0))) for r in rows]

    def queue(self, tenant: str, staff_id: str, day: dt.date | None = None, *, limit: int = 20) -> QueueOut:
        """Open items of `day` and snoozed ones now due, best first; the top ones carry a drafted opener."""
        day = day or self.today(tenant)
        with Session(self.engine) as session:
            if session.get(StaffRow, (tenant, staff_id)) is None:
                raise NotFoundError(f"staff member {staff_id!r} not found")
            due_today = (col(RevisitItem.day) == day) & (col(RevisitItem.status) == "open")
            woke = ((col(RevisitItem.status) == "snoozed") & (col(RevisitItem.snoozed_until) <= day)
                    & (col(RevisitItem.day) < day))
            items = list(session.exec(
                select(RevisitItem).where(
                    col(RevisitItem.tenant_id) == tenant, col(RevisitItem.staff_id) == staff_id, due_today | woke,
                ).order_by(col(RevisitItem.score).desc(), col(RevisitItem.id)).limit(limit * 2)
            ))
        shown: list[RevisitOut] = []
        held: list[HeldOut] = []
        budget = self.rule_set(tenant).draft_top
        for item in items:
            if len(shown) >= limit:
                break
            if self.guard is not None:
                flag = self.guard.check(tenant, staff_id, item.customer_id, PROACTIVE_CHANNEL, "proactive",
                                        self.clock())
                if flag is not None:
                    held.append(HeldOut(id=item.id, customer_id=item.customer_id,
                                        reason=str(getattr(flag, "message", flag))))
                    continue
            if not item.draft and budget > 0:
                item = self._draft(tenant, item)
            budget -= 1
            shown.append(RevisitOut.of(item))
        return QueueOut(staff_id=staff_id, day=day, items=shown, held=held)

    def _draft(self, tenant: str, item: RevisitItem) -> RevisitItem:
        request = SuggestRequest(customer_id=item.customer_id, staff_id=item.staff_id, stage=item.stage, n=2)  # type: ignore[arg-type]
        try:
            suggestion = self.copilot.suggest(tenant, request)
        except CopilotError as exc:
            draft: dict[str, Any] = {"error": str(exc)}
        else:
            usable = [c for c in suggestion.candidates if c.compliance.risk != "block"]
            if usable:
                best = usable[0]
                draft = {
                    "text": best.text, "suggestion_id": suggestion.suggestion_id, "candidate_id": best.id,
                    "stage": best.stage, "citations": [c.model_dump() for c in best.citations],
                    "compliance": best.compliance.model_dump(), "requires_approval": best.requires_approval,
                    "alternatives": [c.text for c in usable[1:]],
                }
            else:
                draft = {"error": "every drafted opener was blocked by compliance; write one by hand",
                         "suggestion_id": suggestion.suggestion_id}
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(RevisitItem, item.id)
            if row is None:
                return item
            row.draft, row.drafted_at = draft, utcnow()
            session.add(row)
            session.commit()
            return row

    def item(self, tenant: str, item_id: str) -> RevisitOut:
        return RevisitOut.of(get_item(self.engine, tenant, item_id))

    # ---- staff actions and outcomes -------------------------------------------------------------
    def act(self, tenant: str, item_id: str, action: str, *, until: dt.date | None = None,
            note: str | None = None) -> RevisitOut:
        return RevisitOut.of(mark(self.engine, tenant, item_id, action, until=until, note=note,
                                  today=self.today(tenant)))

    def outcome(self, tenant: str, item_id: str, outcome: str) -> RevisitOut:
        return RevisitOut.of(record_outcome(self.engine, tenant, item_id, outcome, source="staff",
                                            at=self.clock()))

    def report(self, tenant: str, since: dt.date, until: dt.date) -> list[dict[str, Any]]:
        return rule_report(self.engine, tenant, since, until)
