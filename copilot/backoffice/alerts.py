"""Telling people about inspection hits.

A new hit of a rule that notifies staff (by default `review` and `block`) sends the staff member a WeCom
application message (`message/send`, channel `app` of the outbox, so it leaves through the one sender with
its idempotency key) and leaves a row in `staff_notifications`; a hit still open after the rule's
`notify.supervisor_after_minutes` does the same for the staff member's supervisors (`escalate`). The text
names the rule and the time, never the message itself: the message may be exactly what must not spread.
"""

from __future__ import annotations

import datetime as dt

from sqlmodel import Session

from copilot.backoffice.staff import Person, StaffDirectory
from copilot.persistence.tables.approvals import StaffNotification
from copilot.persistence.tables.backoffice import InspectionHit
from copilot.persistence.tables.webhooks import OutboxMessage
from copilot.webhooks.inbox import enqueue_outbox

__all__ = ["APP_CHANNEL", "Alerts"]

APP_CHANNEL = "app"
_SEVERITY = {"warn": "提醒", "review": "需复核", "block": "严重"}


class Alerts:
    def tell_staff(self, session: Session, hit: InspectionHit, staff: StaffDirectory, now: dt.datetime) -> bool:
        person = staff.get(hit.staff_id)
        text = (f"【质检提醒】{_what(hit)}（{_SEVERITY.get(hit.severity, hit.severity)}）：{_when(hit)}"
                f"{_customer(hit)}的聊天被记录，请尽快处理，主管会在工作台查看。")
        return self._send(session, hit, person or Person(hit.staff_id, hit.staff_id, None, None, "staff"),
                          text, "staff", now)

    def tell_supervisors(self, session: Session, hit: InspectionHit, staff: StaffDirectory, now: dt.datetime) -> int:
        told = 0
        for person in staff.supervisors_of(hit.staff_id):
            text = (f"【质检升级】{staff.name(hit.staff_id)} 的{_what(hit)}（{_SEVERITY.get(hit.severity, hit.severity)}，"
                    f"{_when(hit)}）仍未处理，请到工作台跟进并标记「已处理」。")
            told += self._send(session, hit, person, text, f"supervisor:{person.id}", now)
        return told

    def _send(self, session: Session, hit: InspectionHit, person: Person, text: str, who: str,
              now: dt.datetime) -> bool:
        session.add(StaffNotification(tenant_id=hit.tenant_id, staff_id=person.id, kind="inspection_hit",
                                      ref_id=hit.id, text=text, created_at=now))
        if not person.wecom_userid:
            return True  # no WeCom account to reach: the in-app notification is all there is
        enqueue_outbox(session, OutboxMessage(
            tenant_id=hit.tenant_id, idempotency_key=f"inspection:{hit.id}:{who}", channel=APP_CHANNEL,
            target={"touser": person.wecom_userid}, text=text, kind="inspection", risk="none",
            customer_id=hit.customer_id, staff_id=person.id, created_at=now, available_at=now))
        return True


def _what(hit: InspectionHit) -> str:
    name = hit.detail.get("rule_name") if isinstance(hit.detail, dict) else None
    return str(name or hit.category)


def _when(hit: InspectionHit) -> str:
    local = hit.detail.get("at_local") if isinstance(hit.detail, dict) else None
    return f"{local} " if local else ""


def _customer(hit: InspectionHit) -> str:
    return f"与客户 {hit.customer_id} " if hit.customer_id else ""
