"""Human approval of risky drafts, and the append-only audit log of every decision and send.

An approval item is `pending → approved | edited_approved | rejected | expired`. Decisions are one
conditional UPDATE (`… WHERE status = 'pending'`), so of two reviewers acting at once exactly one wins;
repeating one's own decision returns the same result without a second audit row. Approving an item whose
source is an outbox row releases that row (`held → ready`) with the approved text; nothing else can
release it, which is how "only approved text can be sent" holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from copilot.compliance import ComplianceResult
from copilot.errors import ConflictError, NotFoundError, ValidationError
from copilot.persistence.engine import session_scope
from copilot.persistence.tables.approvals import ApprovalItem, AuditLog, StaffNotification
from copilot.persistence.tables.conversations import SuggestionRow
from copilot.persistence.tables.webhooks import OutboxMessage
from copilot.suggestion import FlagOut, SuggestionOut

__all__ = [
    "APPROVAL_STATUSES",
    "ApprovalStatus",
    "RiskyTextError",
    "add_audit",
    "create_for_candidates",
    "create_item",
    "decide",
    "expire_stale",
    "flags_of",
    "get_item",
    "list_audit",
    "list_items",
]

ApprovalStatus = Literal["pending", "approved", "edited_approved", "rejected", "expired"]
APPROVAL_STATUSES: tuple[str, ...] = get_args(ApprovalStatus)
Action = Literal["approve", "edit", "reject"]
_TARGET: dict[str, str] = {"approve": "approved", "edit": "edited_approved", "reject": "rejected"}
DEFAULT_TTL_S = 24 * 3600


class RiskyTextError(ValidationError):
    """Edited text still needs approval; carries the compliance flags for the reviewer (HTTP 422)."""

    def __init__(self, risk: str, flags: list[FlagOut]) -> None:
        self.risk = risk
        self.flags = flags
        names = ", ".join(sorted({f.category for f in flags})) or risk
        super().__init__(f"the edited text is still risky ({names}); change the flagged words")


def flags_of(result: ComplianceResult) -> list[FlagOut]:
    return [FlagOut(category=f.category, rule_id=f.rule_id, severity=f.severity.value, span=f.span,
                    message=f.message, suggestion=f.suggestion) for f in result.flags]


def add_audit(session: Session, *, tenant: str, action: str, actor: str, now: dt.datetime,
              approval_id: str | None = None, outbox_id: str | None = None, customer_id: str | None = None,
              staff_id: str | None = None, detail: dict[str, Any] | None = None) -> None:
    session.add(AuditLog(tenant_id=tenant, at=now, action=action, actor=actor, approval_id=approval_id,
                         outbox_id=outbox_id, customer_id=customer_id, staff_id=staff_id, detail=detail or {}))


def create_item(
    session: Session, *, tenant: str, source_kind: str, source_id: str, text: str, risk: str,
    flags: Sequence[FlagOut], customer_id: str | None, staff_id: str | None, now: dt.datetime,
    suggestion_id: str | None = None, ttl_s: float = DEFAULT_TTL_S,
) -> ApprovalItem:
    """Queue `text` for review (idempotent per source) and notify the staff member."""
    existing = session.exec(select(ApprovalItem).where(
        ApprovalItem.tenant_id == tenant, ApprovalItem.source_kind == source_kind,
        ApprovalItem.source_id == source_id)).first()
    if existing is not None:
        return existing
    item = ApprovalItem(
        tenant_id=tenant, source_kind=source_kind, source_id=source_id, suggestion_id=suggestion_id,
        customer_id=customer_id, staff_id=staff_id, text=text, risk=risk,
        categories=sorted({f.category for f in flags}), flags=[f.model_dump(mode="json") for f in flags],
        created_at=now, expires_at=now + dt.timedelta(seconds=ttl_s),
    )
    try:
        with session.begin_nested():
            session.add(item)
    except IntegrityError:
        return session.exec(select(ApprovalItem).where(
            ApprovalItem.tenant_id == tenant, ApprovalItem.source_kind == source_kind,
            ApprovalItem.source_id == source_id)).one()
    add_audit(session, tenant=tenant, action="held", actor="system", now=now, approval_id=item.id,
              outbox_id=source_id if source_kind == "outbox" else None, customer_id=customer_id,
              staff_id=staff_id, detail={"risk": risk, "categories": item.categories})
    if staff_id:
        session.add(StaffNotification(tenant_id=tenant, staff_id=staff_id, kind="approval", ref_id=item.id,
                                      text=f"有一条待审核的回复（风险：{risk}）", created_at=now))
    return item


def create_for_candidates(engine: Engine, tenant: str, suggestion: SuggestionOut, *,
                          now: dt.datetime, ttl_s: float = DEFAULT_TTL_S) -> list[ApprovalItem]:
    """Approval items for the candidates of a suggestion that need one; safe to call twice."""
    risky = [c for c in suggestion.candidates if c.requires_approval]
    if not risky:
        return []
    with session_scope(engine) as session:
        row = session.get(SuggestionRow, suggestion.suggestion_id)
        customer_id = row.customer_id if row else None
        staff_id = row.staff_id if row else None
        return [
            create_item(session, tenant=tenant, source_kind="candidate", source_id=c.id, text=c.text,
                        risk=c.compliance.risk, flags=c.compliance.flags, customer_id=customer_id,
                        staff_id=staff_id, now=now, suggestion_id=suggestion.suggestion_id, ttl_s=ttl_s)
            for c in risky
        ]


@dataclass(frozen=True)
class Decision:
    item: ApprovalItem
    changed: bool  # False: the same decision was already recorded


def decide(
    engine: Engine, tenant: str, item_id: str, action: Action, *, reviewer: str, reason: str | None = None,
    text: str | None = None, check: Callable[[str], ComplianceResult] | None = None,
    now: dt.datetime,
) -> Decision:
    """Approve, edit-and-approve or reject a pending item; the first decision wins."""
    target = _TARGET[action]
    item = get_item(engine, tenant, item_id)
    final_text = item.text
    new_risk = item.risk
    if action == "edit":
        if not text or not text.strip():
            raise ValidationError("edit needs the new text")
        if check is None:
            raise ValidationError("edit needs a compliance check")
        final_text = text.strip()
        result = check(final_text)
        if result.requires_approval:
            raise RiskyTextError(result.risk, flags_of(result))
        new_risk = result.risk
    elif action == "approve" and item.risk == "block":
        raise ValidationError("blocked text cannot be approved as it is; edit it so that it passes the check")
    if action != "reject" and item.expires_at is not None and item.expires_at < now:
        expire_stale(engine, now=now, tenant=tenant)
    with session_scope(engine) as session:
        won = session.execute(
            update(ApprovalItem)
            .where(col(ApprovalItem.id) == item_id, col(ApprovalItem.status) == "pending")
            .values(status=target, reviewer=reviewer, reason=reason, decided_at=now,
                    final_text=final_text if action != "reject" else None)
        ).rowcount == 1  # type: ignore[attr-defined]
        if won:
            _release_source(session, item, target, final_text, new_risk)
            add_audit(session, tenant=tenant, action=target, actor=reviewer, now=now, approval_id=item.id,
                      outbox_id=item.source_id if item.source_kind == "outbox" else None,
                      customer_id=item.customer_id, staff_id=item.staff_id,
                      detail={"reason": reason, "text": final_text if action != "reject" else None})
    with Session(engine) as session:
        current = session.get(ApprovalItem, item_id)
    assert current is not None
    if won:
        return Decision(current, True)
    same = current.status == target and current.reviewer == reviewer
    if same and (action != "edit" or current.final_text == final_text):
        return Decision(current, False)
    who = f" by {current.reviewer}" if current.reviewer else ""
    raise ConflictError(f"approval item {item_id} is already {current.status}{who}")


def _release_source(session: Session, item: ApprovalItem, status: str, text: str, risk: str) -> None:
    if item.source_kind != "outbox":
        return
    if status in ("approved", "edited_approved"):
        values: dict[str, Any] = {"status": "ready", "text": text, "risk": risk}
    else:
        values = {"status": "cancelled", "last_error": f"approval {status}"}
    session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == item.source_id, col(OutboxMessage.status) == "held")
        .values(**values)
    )


def expire_stale(engine: Engine, *, now: dt.datetime, tenant: str | None = None) -> int:
    """Expire pending items past their deadline (and cancel their held outbox rows)."""
    with Session(engine) as session:
        query = select(ApprovalItem).where(ApprovalItem.status == "pending",
                                           col(ApprovalItem.expires_at) < now)
        if tenant:
            query = query.where(ApprovalItem.tenant_id == tenant)
        stale = list(session.exec(query).all())
    expired = 0
    for item in stale:
        with session_scope(engine) as session:
            done = session.execute(
                update(ApprovalItem)
                .where(col(ApprovalItem.id) == item.id, col(ApprovalItem.status) == "pending")
                .values(status="expired", decided_at=now, reviewer="system", reason="not reviewed in time")
            ).rowcount == 1  # type: ignore[attr-defined]
            if done:
                _release_source(session, item, "expired", item.text, item.risk)
                add_audit(session, tenant=item.tenant_id, action="expired", actor="system", now=now,
                          approval_id=item.id, customer_id=item.customer_id, staff_id=item.staff_id)
                expired += 1
    return expired


def get_item(engine: Engine, tenant: str, item_id: str) -> ApprovalItem:
    with Session(engine) as session:
        item = session.get(ApprovalItem, item_id)
    if item is None or item.tenant_id != tenant:
        raise NotFoundError(f"approval item {item_id!r} not found")
    return item


def list_items(
    engine: Engine, tenant: str, *, status: str | None = None, staff_id: str | None = None,
    risk: str | None = None, category: str | None = None, older_than_s: float | None = None,
    limit: int = 100, now: dt.datetime, staff_ids: Collection[str] | None = None,
) -> list[ApprovalItem]:
    """Items of `tenant`, oldest first; only those of `staff_ids` when given (a reviewer's reach)."""
    with Session(engine) as session:
        query = select(ApprovalItem).where(ApprovalItem.tenant_id == tenant)
        if staff_ids is not None:
            query = query.where(col(ApprovalItem.staff_id).in_(list(staff_ids)))
        if status:
            query = query.where(ApprovalItem.status == status)
        if staff_id:
            query = query.where(ApprovalItem.staff_id == staff_id)
        if risk:
            query = query.where(ApprovalItem.risk == risk)
        if older_than_s is not None:
            query = query.where(col(ApprovalItem.created_at) <= now - dt.timedelta(seconds=older_than_s))
        rows = session.exec(query.order_by(col(ApprovalItem.created_at))).all()
    if category:
        rows = [r for r in rows if category in r.categories]
    return list(rows[:limit])


def list_audit(engine: Engine, tenant: str, *, customer_id: str | None = None, staff_id: str | None = None,
               limit: int = 200, staff_ids: Collection[str] | None = None) -> list[AuditLog]:
    with Session(engine) as session:
        query = select(AuditLog).where(AuditLog.tenant_id == tenant)
        if staff_ids is not None:
            query = query.where(col(AuditLog.staff_id).in_(list(staff_ids)))
        if customer_id:
            query = query.where(AuditLog.customer_id == customer_id)
        if staff_id:
            query = query.where(AuditLog.staff_id == staff_id)
        return list(session.exec(query.order_by(col(AuditLog.id)).limit(limit)).all())
