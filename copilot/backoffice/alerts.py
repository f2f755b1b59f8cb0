"""Telling people about inspection hits.

A new hit of a rule that notifies staff (by default `review` and `block`) sends the staff member a WeCom
application message (`message/send`, channel `app_message` of the outbox, so the worker's one sender delivers
it with its idempotency key) and leaves a row in `staff_notifications`; a hit still open after the rule's
`notify.supervisor_after_minutes` does the same for the staff member's supervisors (`escalate`). The text
names the rule and the time, never the message itself: the message may be exactly what must not spread.

Which app sends is the tenant's (`app_for`: its agent id and the public URL the supervisors' card links to
the dashboard with); a tenant without an app, or a person without a WeCom userid, gets the in-app
notification only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session

from copilot.backoffice.staff import Person, StaffDirectory
from copilot.persistence.tables.approvals import StaffNotification
from copilot.persistence.tables.backoffice import InspectionHit
from copilot.persistence.tables.webhooks import OutboxMessage
from copilot.webhooks.inbox import enqueue_outbox

__all__ = ["APP_CHANNEL", "AlertApp", "Alerts"]

APP_CHANNEL = "app_message"


@dataclass(frozen=True)
class AlertApp:
    """The WeCom app a tenant's alerts leave through."""

    agent_id: str
    public_url: str = ""  # where the dashboard is served; empty: a plain-text message without a link
_SEVERITY = {"warn": "提醒", "review": "需复核", "block": "严重"}


class Alerts:
    def __init__(self, app_for: Callable[[str], AlertApp | None] | None = None) -> None:
        self.app_for = app_for or (lambda tenant: None)

    def tell_staff(self, session: Session, hit: InspectionHit, staff: StaffDirectory, now: dt.datetime) -> bool:
        person = staff.get(hit.staff_id)
        text = (f"【质检提醒】{_what(hit)}（{_SEVERITY.get(hit.severity, hit.severity)}）：{_when(hit)}"
                f"{_customer(hit)}的聊天被记录，请尽快处理，主管会在工作台查看。")
        return self._send(session, hit, person or Person(hit.staff_id, hit.staff_id, None, None, "staff"),
                          text, "staff", now, title="质检提醒", page="")

    def tell_supervisors(self, session: Session, hit: InspectionHit, staff: StaffDirectory, now: dt.datetime) -> int:
        told = 0
        for person in staff.supervisors_of(hit.staff_id):
            text = (f"【质检升级】{staff.name(hit.staff_id)} 的{_what(hit)}（{_SEVERITY.get(hit.severity, hit.severity)}，"
                    f"{_when(hit)}）仍未处理，请到工作台跟进并标记「已处理」。")
            told += self._send(session, hit, person, text, f"supervisor:{person.id}", now, title="质检升级",
                               page=f"/dashboard?from={hit.day}&to={hit.day}")
        return told

    def _send(self, session: Session, hit: InspectionHit, person: Person, text: str, who: str,
              now: dt.datetime, *, title: str, page: str) -> bool:
        session.add(StaffNotification(tenant_id=hit.tenant_id, staff_id=person.id, kind="inspection_hit",
                                      ref_id=hit.id, text=text, created_at=now))
        app = self.app_for(hit.tenant_id)
        if not person.wecom_userid or app is None or not app.agent_id:
            return True  # no WeCom account or app to reach them by: the in-app notification is all there is
        url = f"{app.public_url.rstrip('/')}{page}" if page and app.public_url else ""
        enqueue_outbox(session, OutboxMessage(
            tenant_id=hit.tenant_id, idempotency_key=f"inspection:{hit.id}:{who}", channel=APP_CHANNEL,
            target={"touser": person.wecom_userid, "agentid": app.agent_id, "title": title, "description": text,
                    "url": url, "button": "查看"},
            text=text, kind="inspection", risk="none", customer_id=hit.customer_id, staff_id=person.id,
            created_at=now, available_at=now))
        return True


def _what(hit: InspectionHit) -> str:
    name = hit.detail.get("rule_name") if isinstance(hit.detail, dict) else None
    return str(name or hit.category)


def _when(hit: InspectionHit) -> str:
    local = hit.detail.get("at_local") if isinstance(hit.detail, dict) else None
    return f"{local} " if local else ""


def _customer(hit: InspectionHit) -> str:
    return f"与客户 {hit.customer_id} " if hit.customer_id else ""
