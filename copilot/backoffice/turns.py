"""Customer turns and daily counts of one conversation, derived from its messages.

Definitions (the README's statistics section states them for people):
- Withdrawn (recalled) messages are not messages here: they neither count nor open or answer a turn.
- A customer turn starts at a customer message whose previous message in the chat is a staff message, or
  that is the chat's first message; the customer's further messages before a staff message belong to it.
- It is answered by the next staff message (in a group chat: any staff member's); its response time runs
  from the turn's first message to that answer, in working time of the reply-timeout rule's calendar when
  the rule says `working_time`, else in wall-clock seconds.
- Its deadline is the rule's limit after the turn's first message (working time when the rule says so).
- Group chats count customer messages and turns only when the staff member's reply-timeout rule has
  `groups: true`; staff messages count for their sender in every chat.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from copilot.clock import as_utc
from copilot.knowledge.calendar import WorkCalendar
from copilot.knowledge.inspection import ReplyTimeoutRule

__all__ = ["ROOM_PREFIX", "ChatFacts", "Msg", "derive"]

ROOM_PREFIX = "room:"


@dataclass(frozen=True)
class Msg:
    id: int
    role: str
    sender_id: str | None
    ts: dt.datetime
    withdrawn: bool = False


@dataclass
class ChatFacts:
    turns: list[dict[str, Any]] = field(default_factory=list)
    daily: list[dict[str, Any]] = field(default_factory=list)


def derive(*, tenant: str, conversation_id: str, staff_id: str, customer_id: str, messages: Sequence[Msg],
           calendar: WorkCalendar, rule: ReplyTimeoutRule | None) -> ChatFacts:
    """Turn rows and daily rows for one conversation, from all its messages (any order)."""
    is_group = customer_id.startswith(ROOM_PREFIX)
    watched = not is_group or (rule is not None and rule.groups)
    counted = sorted((m for m in messages if not m.withdrawn), key=lambda m: (as_utc(m.ts), m.id))
    facts = ChatFacts()
    daily: dict[tuple[str, dt.date, str], list[int]] = {}
    for m in counted:
        day = calendar.day_of(m.ts)
        if m.role == "staff":
            daily.setdefault((m.sender_id or staff_id, day, customer_id), [0, 0])[1] += 1
        elif m.role == "customer" and watched:
            who = (m.sender_id or customer_id) if is_group else customer_id
            daily.setdefault((staff_id, day, who), [0, 0])[0] += 1
    facts.daily = [
        {"tenant_id": tenant, "conversation_id": conversation_id, "staff_id": s, "day": d, "customer_id": c,
         "customer_messages": n[0], "staff_messages": n[1]}
        for (s, d, c), n in daily.items()
    ]
    if not watched:
        return facts
    open_turn: dict[str, Any] | None = None
    previous: str | None = None
    for m in counted:
        if m.role == "customer":
            if previous != "customer":
                open_turn = _start(tenant, conversation_id, staff_id, customer_id, m, calendar, rule, is_group)
                facts.turns.append(open_turn)
            elif open_turn is not None:
                open_turn["customer_messages"] += 1
        elif m.role == "staff" and open_turn is not None:
            _answer(open_turn, m, calendar, rule)
            open_turn = None
        previous = m.role
    return facts


def _start(tenant: str, conversation_id: str, staff_id: str, customer_id: str, m: Msg, calendar: WorkCalendar,
           rule: ReplyTimeoutRule | None, is_group: bool) -> dict[str, Any]:
    start = as_utc(m.ts)
    deadline = None
    if rule is not None:
        limit = rule.minutes * 60
        deadline = ((rule.calendar or calendar).add_working(start, limit) if rule.working_time
                    else start + dt.timedelta(seconds=limit))
    return {"tenant_id": tenant, "conversation_id": conversation_id, "staff_id": staff_id,
            "customer_id": customer_id, "day": calendar.day_of(start), "started_at": start,
            "first_message_id": m.id, "customer_messages": 1, "answered_at": None, "answered_by": None,
            "answer_message_id": None, "response_s": None, "answered_same_day": False, "deadline": deadline,
            "rule_id": rule.id if rule is not None else "", "is_group": is_group}


def _answer(turn: dict[str, Any], m: Msg, calendar: WorkCalendar, rule: ReplyTimeoutRule | None) -> None:
    start, end = turn["started_at"], as_utc(m.ts)
    if rule is not None and rule.working_time:
        response = (rule.calendar or calendar).working_seconds(start, end)
    else:
        response = (end - start).total_seconds()
    turn.update(answered_at=end, answered_by=m.sender_id, answer_message_id=m.id, response_s=response,
                answered_same_day=calendar.day_of(end) == turn["day"])
