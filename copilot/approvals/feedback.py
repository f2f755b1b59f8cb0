"""What staff did with each drafted reply: used as is, edited (final text and edit distance), or
rejected with a reason — and the export of edited and rejected cases as evaluation records.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from rapidfuzz.distance import Levenshtein
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from copilot.errors import NotFoundError, ValidationError
from copilot.persistence.engine import session_scope
from copilot.persistence.tables.conversations import CandidateRow, MessageRow, SidebarFeedback, SuggestionRow

__all__ = [
    "FEEDBACK_ACTIONS",
    "FeedbackAction",
    "export_cases",
    "list_feedback",
    "record_feedback",
]

FeedbackAction = Literal["used", "edited", "rejected"]
FEEDBACK_ACTIONS: tuple[str, ...] = get_args(FeedbackAction)

MAX_TEXT = 4000
MAX_REASON = 500




def record_feedback(
    engine: Engine,
    *,
    tenant: str,
    suggestion_id: str,
    candidate_id: str,
    action: str,
    final_text: str | None = None,
    reason: str | None = None,
) -> SidebarFeedback:
    """Store one action on one candidate; the candidate must belong to the suggestion and the tenant."""
    if action not in FEEDBACK_ACTIONS:
        raise ValidationError(f"action must be one of {', '.join(FEEDBACK_ACTIONS)}, not {action!r}")
    final_text = (final_text or "").strip() or None
    reason = (reason or "").strip() or None
    if action == "edited" and final_text is None:
        raise ValidationError("final_text is required when action is 'edited': send the text that was sent")
    if final_text is not None and len(final_text) > MAX_TEXT:
        raise ValidationError(f"final_text is longer than {MAX_TEXT} characters")
    if reason is not None and len(reason) > MAX_REASON:
        raise ValidationError(f"reason is longer than {MAX_REASON} characters")
    with session_scope(engine) as session:
        candidate = session.get(CandidateRow, candidate_id)
        if candidate is None or candidate.tenant_id != tenant or candidate.suggestion_id != suggestion_id:
            raise NotFoundError(f"candidate {candidate_id!r} of suggestion {suggestion_id!r} not found")
        row = SidebarFeedback(
            tenant_id=tenant,
            suggestion_id=suggestion_id,
            candidate_id=candidate_id,
            action=action,
            final_text=final_text,
            edit_distance=Levenshtein.distance(candidate.text, final_text) if final_text is not None else None,
            reason=reason,
        )
        session.add(row)
        session.flush()
        session.refresh(row)
    return row


def list_feedback(
    engine: Engine, tenant: str, suggestion_id: str | None = None, *, limit: int = 200
) -> list[SidebarFeedback]:
    """The tenant's feedback, oldest first; only one suggestion's when `suggestion_id` is given."""
    query = select(SidebarFeedback).where(SidebarFeedback.tenant_id == tenant)
    if suggestion_id is not None:
        query = query.where(SidebarFeedback.suggestion_id == suggestion_id)
    with Session(engine) as session:
        rows = session.exec(query.order_by(col(SidebarFeedback.id).desc()).limit(limit)).all()
    return list(reversed(rows))


def export_cases(engine: Engine, tenant: str, *, turns: int = 6) -> list[dict[str, Any]]:
    """Edited and rejected drafts as `drafts`-suite records (eval/README.md), so they become test cases.

    An edited draft's sent text is the `reference`; a rejected one carries the draft and the reason in
    `note`. The conversation is the stored turns before the suggestion was made.
    """
    cases: list[dict[str, Any]] = []
    with Session(engine) as session:
        rows = session.exec(
            select(SidebarFeedback).where(
                SidebarFeedback.tenant_id == tenant, col(SidebarFeedback.action).in_(("edited", "rejected"))
            ).order_by(col(SidebarFeedback.id))
        ).all()
        for row in rows:
            suggestion = session.get(SuggestionRow, row.suggestion_id)
            candidate = session.get(CandidateRow, row.candidate_id)
            if suggestion is None or candidate is None or suggestion.customer_id is None:
                continue
            history: list[MessageRow] = []
            if suggestion.conversation_id is not None:
                history = list(session.exec(
                    select(MessageRow).where(
                        MessageRow.tenant_id == tenant,
                        MessageRow.conversation_id == suggestion.conversation_id,
                        col(MessageRow.ts) <= suggestion.created_at,
                    ).order_by(col(MessageRow.ts).desc()).limit(turns)
                ).all())
            case: dict[str, Any] = {
                "id": f"feedback-{row.id}",
                "customer_id": suggestion.customer_id,
                "messages": [{"role": m.role, "text": m.text} for m in reversed(history)],
                "expected_stage": suggestion.stage,
            }
            if row.action == "edited":
                case["reference"] = row.final_text
                case["note"] = f"edited (distance {row.edit_distance}) from: {candidate.text}"
            else:
                case["note"] = f"rejected: {row.reason or 'no reason given'}; draft: {candidate.text}"
            cases.append(case)
    return cases
