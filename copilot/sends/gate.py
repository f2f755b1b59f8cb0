"""`SendGate.send`: check the exact text, then record it (201) or hold it for a supervisor (409).

A send is a `reply` when the customer wrote after the last send to them, else `proactive`; proactive sends
count against the tenant's daily cap, and the frequency guard's slot is taken at the send, so the count
the sidebar is checked against is the count of what was really sent. Text that needs approval (a rule
flag, or the cap reached) is held in an approval item for the customer; once a supervisor approves it,
the same text for the same customer passes, once. An edited approval passes with its edited text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from copilot.approvals.items import DEFAULT_TTL_S, add_audit, create_item, flags_of
from copilot.clock import Clock, as_utc
from copilot.compliance import ComplianceResult, combine
from copilot.compliance.frequency import FrequencyGuard, SendKind
from copilot.errors import ConflictError, NotFoundError, ValidationError
from copilot.persistence.engine import session_scope
from copilot.persistence.tables.approvals import ApprovalItem
from copilot.persistence.tables.conversations import CandidateRow, Conversation, MessageRow, SuggestionRow
from copilot.persistence.tables.library import CustomerRow
from copilot.persistence.tables.sends import SendRow
from copilot.suggestion import FlagOut

__all__ = ["SendGate", "SendHeldError", "SendOut"]

_APPROVED = ("approved", "edited_approved")
MAX_TEXT = 4000


@dataclass(frozen=True)
class SendOut:
    send_id: str
    text: str
    kind: str
    approval_id: str | None


class SendHeldError(ConflictError):
    """The text may not go out now (HTTP 409): it waits for approval `approval_id`, or, when that is None,
    it is blocked and has to be changed."""

    def __init__(self, message: str, *, flags: list[FlagOut], risk: str, approval: ApprovalItem | None) -> None:
        super().__init__(message)
        self.flags = flags
        self.risk = risk
        self.approval_id = approval.id if approval is not None else None
        self.approval_status = approval.status if approval is not None else None


class SendGate:
    def __init__(self, engine: Engine, *, check: Callable[[str, str], ComplianceResult], guard: FrequencyGuard,
                 clock: Clock, approval_ttl_s: float = DEFAULT_TTL_S) -> None:
        self._engine = engine
        self._check = check
        self._guard = guard
        self._clock = clock
        self._ttl = approval_ttl_s

    def send(self, tenant: str, *, customer_id: str, staff_id: str, text: str, actor: str,
             candidate_id: str | None = None) -> SendOut:
        text = text.strip()
        if not text:
            raise ValidationError("text is empty; send the exact text that goes into the chat")
        if len(text) > MAX_TEXT:
            raise ValidationError(f"text is over {MAX_TEXT} characters")
        now = self._clock()
        if candidate_id is not None:
            self._check_candidate(tenant, customer_id, candidate_id)
        kind = self._kind(tenant, customer_id)
        result = self._check(tenant, text)
        limit = self._guard.check(tenant, staff_id, customer_id, "external", kind, now)
        judged = combine(result, [limit]) if limit is not None else result
        approval_id = None
        if judged.requires_approval:
            approval = self._approved(tenant, customer_id, text, candidate_id)
            if approval is None:
                raise self._hold(tenant, customer_id, staff_id, text, candidate_id, judged, now)
            approval_id = approval.id
        return self._record(tenant, customer_id, staff_id, text, kind, candidate_id, approval_id, actor, now)

    # ---- judging ---------------------------------------------------------------------------------------
    def _kind(self, tenant: str, customer_id: str) -> SendKind:
        """`reply` when the customer wrote after the last send to them (or was never sent to), else
        `proactive`."""
        with Session(self._engine) as session:
            customer = session.get(CustomerRow, (tenant, customer_id))
            if customer is None:
                raise NotFoundError(f"customer {customer_id!r} not found for tenant {tenant!r}")
            conversations = select(Conversation.id).where(Conversation.tenant_id == tenant,
                                                          Conversation.customer_id == customer_id)
            stored = session.exec(select(func.max(MessageRow.ts)).where(
                MessageRow.tenant_id == tenant, col(MessageRow.conversation_id).in_(conversations),
                MessageRow.role == "customer")).one()
            last_send = session.exec(select(func.max(SendRow.created_at)).where(
                SendRow.tenant_id == tenant, SendRow.customer_id == customer_id)).one()
        wrote = [as_utc(stored)] if stored is not None else []
        for turn in customer.profile.get("chat") or []:
            if turn.get("role") == "customer" and turn.get("ts"):
                wrote.append(as_utc(dt.datetime.fromisoformat(str(turn["ts"]).replace("Z", "+00:00"))))
        if not wrote:
            return "proactive"
        return "reply" if last_send is None or max(wrote) > as_utc(last_send) else "proactive"

    def _check_candidate(self, tenant: str, customer_id: str, candidate_id: str) -> None:
        with Session(self._engine) as session:
            candidate = session.get(CandidateRow, candidate_id)
            suggestion = session.get(SuggestionRow, candidate.suggestion_id) if candidate is not None else None
        if candidate is None or candidate.tenant_id != tenant or suggestion is None:
            raise NotFoundError(f"candidate {candidate_id!r} not found")
        if suggestion.customer_id != customer_id:
            raise ValidationError(f"candidate {candidate_id!r} was drafted for another customer")

    def _approved(self, tenant: str, customer_id: str, text: str, candidate_id: str | None) -> ApprovalItem | None:
        """An approval of exactly this text for this customer that no send has used yet."""
        used = select(SendRow.approval_id).where(col(SendRow.approval_id).is_not(None))
        with Session(self._engine) as session:
            found = session.exec(
                select(ApprovalItem).where(
                    ApprovalItem.tenant_id == tenant, ApprovalItem.customer_id == customer_id,
                    col(ApprovalItem.status).in_(_APPROVED), ApprovalItem.final_text == text,
                    col(ApprovalItem.id).not_in(used))
                .order_by(col(ApprovalItem.source_id) != (candidate_id or ""), col(ApprovalItem.decided_at))
            ).first()
        return found

    def _hold(self, tenant: str, customer_id: str, staff_id: str, text: str, candidate_id: str | None,
              judged: ComplianceResult, now: dt.datetime) -> SendHeldError:
        flags = flags_of(judged)
        names = "、".join(sorted({f.category for f in flags})) or judged.risk
        if judged.risk == "block":
            return SendHeldError(f"blocked ({names}): change the flagged words; blocked text cannot be approved",
                                 flags=flags, risk=judged.risk, approval=None)
        pending = self._pending(tenant, customer_id, text, candidate_id)
        if pending is None:
            with session_scope(self._engine) as session:
                pending = create_item(
                    session, tenant=tenant, source_kind="send", source_id=self._next_source(tenant, customer_id,
                                                                                            staff_id, text),
                    text=text, risk=judged.risk, flags=flags, customer_id=customer_id, staff_id=staff_id,
                    now=now, ttl_s=self._ttl)
        return SendHeldError(f"needs approval ({names}); a supervisor has been asked", flags=flags,
                             risk=judged.risk, approval=pending)

    def _pending(self, tenant: str, customer_id: str, text: str, candidate_id: str | None) -> ApprovalItem | None:
        with Session(self._engine) as session:
            query = select(ApprovalItem).where(
                ApprovalItem.tenant_id == tenant, ApprovalItem.customer_id == customer_id,
                ApprovalItem.status == "pending", ApprovalItem.text == text)
            if candidate_id is not None:
                found = session.exec(query.where(ApprovalItem.source_kind == "candidate",
                                                 ApprovalItem.source_id == candidate_id)).first()
                if found is not None:
                    return found
            return session.exec(query.where(ApprovalItem.source_kind == "send")).first()

    def _next_source(self, tenant: str, customer_id: str, staff_id: str, text: str) -> str:
        """A fresh source id for this text: the same text asked again after a decision is a new request."""
        base = hashlib.sha256(f"{customer_id}\x1f{staff_id}\x1f{text}".encode()).hexdigest()[:32]
        with Session(self._engine) as session:
            earlier = session.exec(select(func.count()).select_from(ApprovalItem).where(
                ApprovalItem.tenant_id == tenant, ApprovalItem.source_kind == "send",
                col(ApprovalItem.source_id).startswith(base))).one()
        return f"{base}:{int(earlier)}"

    # ---- recording -------------------------------------------------------------------------------------
    def _record(self, tenant: str, customer_id: str, staff_id: str, text: str, kind: SendKind,
                candidate_id: str | None, approval_id: str | None, actor: str, now: dt.datetime) -> SendOut:
        slots = self._guard.record_send(tenant, staff_id, customer_id, "external", kind, now)
        row = SendRow(tenant_id=tenant, customer_id=customer_id, staff_id=staff_id, text=text, kind=kind,
                      candidate_id=candidate_id, approval_id=approval_id, actor=actor, created_at=now)
        detail: dict[str, Any] = {"channel": "sidebar", "kind": kind, "text": text, "send_id": row.id}
        try:
            with session_scope(self._engine) as session:
                session.add(row)
                session.flush()
                add_audit(session, tenant=tenant, action="sent", actor=actor, now=now, approval_id=approval_id,
                          customer_id=customer_id, staff_id=staff_id, detail=detail)
        except IntegrityError:
            self._guard.release(slots)
            raise ConflictError("that approval was just used by another send; ask for approval again") from None
        return SendOut(send_id=row.id, text=text, kind=kind, approval_id=approval_id)
