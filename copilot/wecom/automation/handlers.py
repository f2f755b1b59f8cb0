"""What the worker does with each kind of inbox event.

Each handler has two halves. `prepare` does the slow, retry-safe work outside any write transaction
(WeCom reads, `kf/sync_msg`, the copilot's analysis and drafts). `apply` writes every effect — customer
row, messages, counters, outbox rows, approval items — inside the one transaction that also marks the
event done; so an event is applied once, however often a crash makes a worker start it again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

from sqlmodel import Session, select

from copilot.approvals.items import create_item, flags_of
from copilot.clock import as_utc
from copilot.compliance import ComplianceResult
from copilot.compliance.frequency import KF_CHANNEL, open_window
from copilot.compliance.result import Severity
from copilot.conversation.turns import Turn
from copilot.errors import CopilotError, NotFoundError, ValidationError
from copilot.knowledge.inspection import CONTACT_EVENTS
from copilot.knowledge.schema import CustomerProfile, customer_id_for
from copilot.persistence.engine import insert_new
from copilot.persistence.tables.backoffice import ContactEvent
from copilot.persistence.tables.library import CustomerRow, StaffRow
from copilot.persistence.tables.webhooks import InboxEvent, OutboxMessage
from copilot.persistence.tables.wecom import AutomationState, KfCursor
from copilot.suggestion import FlagOut, MessageIn, SuggestRequest
from copilot.webhooks.inbox import add_event, enqueue_outbox
from copilot.wecom.automation.apps import ClientPool
from copilot.wecom.automation.policy import AutoReplyPolicy, PolicyBook, plan_reply, render
from copilot.wecom.protocol.messages import event_from_raw

if TYPE_CHECKING:
    from copilot.service import Copilot

__all__ = ["Effects", "Handlers", "customer_id_for"]

WELCOME_LIFE = dt.timedelta(seconds=20)
# A send must reach WeCom while the code lives: none starts in the last two seconds (CreateTime is
# whole seconds, and the request itself takes time under load).
WELCOME_SEND_BY = WELCOME_LIFE - dt.timedelta(seconds=2)
_KF_CUSTOMER, _KF_SERVICER = 3, 5


def _from_unix(value: Any, default: dt.datetime) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    except (TypeError, ValueError, OverflowError):
        return default


@dataclass
class Effects:
    """Everything `apply` will write for one event; `result` is kept on the inbox row."""

    customer: CustomerProfile | None = None
    message: Turn | None = None
    conversation_staff: str | None = None
    channel: str = ""
    stage: str | None = None
    pause_until: dt.datetime | None = None
    off_hours_at: dt.datetime | None = None
    kf_customer_at: dt.datetime | None = None  # a 微信客服 customer wrote: the reply window reopens
    outbox: OutboxMessage | None = None
    hold: ComplianceResult | None = None
    hold_flags: list[FlagOut] = field(default_factory=list)
    fan_out: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # kf messages → new events
    kf_cursor: tuple[str, str] | None = None
    contact_event: ContactEvent | None = None  # for inspection (copilot.backoffice)
    result: dict[str, Any] = field(default_factory=dict)


class Handlers:
    def __init__(self, copilot: Copilot, clients: ClientPool, policies: PolicyBook) -> None:
        self.copilot = copilot
        self.engine = copilot.engine
        self.clients = clients
        self.policies = policies

    # ---- prepare ---------------------------------------------------------------------------------
    async def prepare(self, event: InboxEvent, now: dt.datetime) -> Effects:
        if event.kind == "add_external_contact":
            return await self._new_contact(event, now)
        if event.kind == "kf_msg_or_event":
            return await self._kf_pull(event)
        if event.kind in CONTACT_EVENTS:
            return self._contact_change(event, now)
        if event.kind == "text":  # the copilot's analysis is CPU-bound; keep the event loop free
            return await asyncio.to_thread(self._text, event, now)
        return Effects(result={"ignored": event.kind})

    async def _new_contact(self, event: InboxEvent, now: dt.datetime) -> Effects:
        wecom = event_from_raw(event.payload)
        if not wecom.external_user_id:
            raise ValidationError("add_external_contact without ExternalUserID")
        staff_id, staff_name = self._staff(event.tenant_id, wecom.user_id)
        created = _from_unix(wecom.create_time, now) if wecom.create_time else now
        in_time = now <= created + WELCOME_SEND_BY
        # A late welcome will be refused anyway, so a backlog does not spend a lookup on it.
        name = await self._contact_name(event.tenant_id, wecom.external_user_id) if in_time else ""
        customer = CustomerProfile(
            id=customer_id_for(wecom.external_user_id), name=name or "客户", staff_id=staff_id,
            added_on=now.date(),
            attributes={"external_userid": wecom.external_user_id, "state": wecom.state or "",
                        "wecom_userid": wecom.user_id or ""},
        )
        effects = Effects(customer=customer, result={"customer_id": customer.id, "state": wecom.state})
        policy = self.policies.for_tenant(event.tenant_id)
        template = policy.welcome.for_state(wecom.state)
        if not wecom.welcome_code:
            return effects
        if not template:
            effects.result["welcome"] = "no welcome text configured"
            return effects
        persona = self._persona(event.tenant_id)
        text = render(template, {"客户称呼": name or "您", "客户": name or "您", "顾问": staff_name or persona[1],
                                 "品牌": persona[0], "人设": persona[1]})
        effects.outbox = OutboxMessage(
            tenant_id=event.tenant_id, idempotency_key=f"welcome:{event.dedupe_key}", channel="welcome",
            target={"welcome_code": wecom.welcome_code}, text=text, kind="welcome", priority=0,
            customer_id=customer.id, staff_id=staff_id, event_id=event.id, not_after=created + WELCOME_SEND_BY,
            created_at=now, available_at=now,
        )
        self._gate(effects, policy, text, strict=False)
        return effects

    def _contact_change(self, event: InboxEvent, now: dt.datetime) -> Effects:
        """A deleted contact: recorded for the inspection rules that watch it, nothing is sent."""
        wecom = event_from_raw(event.payload)
        if not wecom.external_user_id or not wecom.user_id:
            raise ValidationError(f"{event.kind} without UserID or ExternalUserID")
        staff_id, _ = self._staff(event.tenant_id, wecom.user_id)
        customer = customer_id_for(wecom.external_user_id)
        at = _from_unix(wecom.create_time, now) if wecom.create_time else now
        return Effects(contact_event=ContactEvent(
            tenant_id=event.tenant_id, kind=event.kind, staff_id=staff_id or wecom.user_id, customer_id=customer,
            at=at, dedupe_key=event.dedupe_key), result={"customer_id": customer, "contact_event": event.kind})

    async def _contact_name(self, tenant: str, external_userid: str) -> str:
        try:
            data = await self.clients.get(tenant).get_external_contact(external_userid)
        except CopilotError:
            return ""  # the welcome must not wait for, or fail on, a profile lookup
        contact = data.get("external_contact")
        return str(contact.get("name") or "") if isinstance(contact, dict) else ""

    async def _kf_pull(self, event: InboxEvent) -> Effects:
        wecom = event_from_raw(event.payload)
        if not wecom.open_kfid:
            raise ValidationError("kf_msg_or_event without OpenKfId")
        with Session(self.engine) as session:
            stored = session.get(KfCursor, (event.tenant_id, wecom.open_kfid))
        cursor = stored.cursor if stored else ""
        client = self.clients.get(event.tenant_id)
        effects = Effects()
        for _ in range(20):  # bounded: a burst larger than 20 pages continues with the next event
            page = await client.kf_sync_msg(wecom.kf_token or "", cursor, wecom.open_kfid)
            for message in page.messages:
                if message.get("msgtype") != "text" or not message.get("msgid"):
                    continue
                payload = {
                    "msgid": str(message["msgid"]), "open_kfid": wecom.open_kfid,
                    "external_userid": str(message.get("external_userid") or ""),
                    "servicer_userid": str(message.get("servicer_userid") or ""),
                    "origin": int(message.get("origin") or 0),
                    "text": str((message.get("text") or {}).get("content") or ""),
                    "send_time": message.get("send_time"),
                }
                effects.fan_out.append((f"kf:{payload['msgid']}", payload))
            cursor = page.next_cursor or cursor
            if not page.has_more:
                break
        effects.kf_cursor = (wecom.open_kfid, cursor)
        effects.result = {"pulled": len(effects.fan_out), "cursor": cursor}
        return effects

    def _text(self, event: InboxEvent, now: dt.datetime) -> Effects:
        inbound = _Inbound.from_event(event, now)
        if inbound is None or not inbound.text:
            return Effects(result={"ignored": "not a text message from a customer or staff member"})
        tenant = event.tenant_id
        policy = self.policies.for_tenant(tenant)
        effects = Effects(message=Turn(inbound.role, inbound.text, inbound.ts), channel=inbound.channel,
                          conversation_staff=inbound.staff_id or "unassigned",
                          result={"customer_id": inbound.customer_id, "role": inbound.role})
        with Session(self.engine) as session:
            row = session.get(CustomerRow, (tenant, inbound.customer_id))
            state = session.get(AutomationState, (tenant, inbound.customer_id))
            ours = inbound.message_id is not None and session.exec(
                select(OutboxMessage.id).where(OutboxMessage.id == inbound.message_id)).first()
        if row is None:
            effects.customer = CustomerProfile(id=inbound.customer_id, name=inbound.customer_name or "客户",
                                               staff_id=inbound.staff_id, added_on=now.date())
        if inbound.role == "staff":
            if not ours:  # our own sent messages come back through kf/sync_msg; they are not a human
                effects.pause_until = now + dt.timedelta(seconds=policy.pause_after_human_s)
                effects.result["paused_until"] = effects.pause_until.isoformat()
            return effects
        if inbound.channel == "kf":
            effects.kf_customer_at = inbound.ts
        analysis = self.copilot.analyze(tenant, SuggestRequest(
            customer_id=inbound.customer_id if row is not None else None, staff_id=inbound.staff_id,
            messages=[MessageIn(role="customer", text=inbound.text[:4000], ts=inbound.ts)]))
        effects.stage = analysis.stage.name
        effects.result.update(stage=analysis.stage.name, intent=analysis.intent.score)
        plan = plan_reply(policy, text=inbound.text, channel=inbound.channel, staff_id=inbound.staff_id,
                          now=now, paused_until=state.paused_until if state else None,
                          last_off_hours_at=state.last_off_hours_at if state else None)
        effects.result["plan"] = plan.kind if plan.kind != "none" else f"none: {plan.reason}"
        text, strict, confidence, candidate_id = plan.text, False, 1.0, None
        if plan.kind == "ai":
            if row is None:
                effects.result["plan"] = "none: AI replies need a known customer profile"
                return effects
            # Only the script-grounded draft: its wording is the brand's own library text, filled from the
            # profile. An LLM draft can state what nothing supports or follow an instruction hidden in the
            # chat, and the fact check only flags that for a person: LLM drafts are shown in the sidebar,
            # never sent or proposed by automation (and the worker spends no model time on them).
            suggestion = self.copilot.suggest(tenant, SuggestRequest(
                customer_id=inbound.customer_id, staff_id=inbound.staff_id, n=1,
                messages=[MessageIn(role="customer", text=inbound.text[:4000], ts=inbound.ts)]), llm=False)
            if not suggestion.candidates:
                effects.result["plan"] = "none: the drafter produced nothing"
                return effects
            top = suggestion.candidates[0]
            text, strict, confidence, candidate_id = top.text, True, suggestion.stage.confidence, top.id
            effects.result["confidence"] = confidence
        if plan.kind == "off_hours":
            effects.off_hours_at = now
        if not text:
            return effects
        if inbound.reply_channel == "external":
            return self._external(effects, policy, event, inbound, text, plan.kind, now, strict=strict,
                                  confidence=confidence, candidate_id=candidate_id)
        effects.outbox = OutboxMessage(
            tenant_id=tenant, idempotency_key=f"reply:{event.source}:{event.dedupe_key}",
            channel=inbound.reply_channel, target=inbound.target, text=text, kind=plan.kind,
            customer_id=inbound.customer_id, staff_id=inbound.staff_id, event_id=event.id,
            created_at=now, available_at=now,
        )
        self._gate(effects, policy, text, strict=strict, confidence=confidence)
        return effects

    def _external(self, effects: Effects, policy: AutoReplyPolicy, event: InboxEvent, inbound: _Inbound, text: str,
                  kind: str, now: dt.datetime, *, strict: bool, confidence: float,
                  candidate_id: str | None) -> Effects:
        """A reply for an external 1v1 chat. WeCom cannot send it for the staff member, so by default the
        staff member is notified (application message: the suggested reply and a link opening the sidebar
        on this customer with the draft, which then passes the send gate); a tenant whose policy asks for
        it gets a group-send task instead, which the staff member confirms in the client."""
        tenant, staff_id = event.tenant_id, inbound.staff_id or ""
        if policy.external_delivery == "group_send_task":
            limit = self.copilot.frequency.check(tenant, staff_id, inbound.customer_id, "external", "group", now)
            if limit is not None and limit.severity is Severity.block:
                effects.result["plan"] = f"refused: {limit.rule_id}"
                return effects
            effects.outbox = OutboxMessage(
                tenant_id=tenant, idempotency_key=f"reply:{event.source}:{event.dedupe_key}", channel="external",
                target=inbound.target, text=text, kind=kind, customer_id=inbound.customer_id,
                staff_id=inbound.staff_id, event_id=event.id, created_at=now, available_at=now,
            )
            self._gate(effects, policy, text, strict=strict, confidence=confidence)
            return effects
        userid = self._wecom_userid(tenant, inbound.staff_id) or str(inbound.target.get("sender") or "")
        try:
            agent_id = self.clients.app(tenant).agent_id
        except NotFoundError:
            agent_id = ""
        if not userid or not agent_id:
            effects.result["plan"] = "none: staff cannot be notified (no WeCom userid or app agent id)"
            return effects
        check = self.copilot.check(tenant, text)
        message = OutboxMessage(
            tenant_id=tenant, idempotency_key=f"notify:{event.source}:{event.dedupe_key}", channel="app_message",
            text=text, kind=kind, risk=check.risk, customer_id=inbound.customer_id, staff_id=inbound.staff_id,
            event_id=event.id, created_at=now, available_at=now,
        )
        public = self.clients.public_url
        link = f"{public}/sidebar?{urlencode({'customer_id': inbound.customer_id, 'draft': message.id})}"
        who = inbound.customer_name or inbound.customer_id
        note = "（含需审批的内容，发送前由主管审批）" if check.requires_approval else ""
        message.target = {
            "touser": userid, "agentid": agent_id, "url": link if public else "",
            "title": f"{who}：{inbound.text[:40]}", "description": f"建议回复{note}：{text}"[:500],
            "button": "打开侧边栏", **({"candidate_id": candidate_id} if candidate_id else {}),
        }
        effects.outbox = message
        effects.result.update(delivery="notify_staff", risk=check.risk)
        return effects

    def _wecom_userid(self, tenant: str, staff_id: str | None) -> str:
        if not staff_id:
            return ""
        with Session(self.engine) as session:
            row = session.get(StaffRow, (tenant, staff_id))
        return row.wecom_userid or "" if row is not None else ""

    def _gate(self, effects: Effects, policy: AutoReplyPolicy, text: str, *, strict: bool,
              confidence: float = 1.0) -> None:
        """Compliance-check outbound text; risky text (and, for AI drafts, any flag or low confidence)
        is held for a human."""
        assert effects.outbox is not None
        check = self.copilot.check(effects.outbox.tenant_id, text)
        effects.outbox.risk = check.risk
        risky = check.requires_approval or (strict and (check.risk != "none"
                                                        or confidence < policy.ai.min_confidence))
        if risky:
            effects.hold = check
            effects.hold_flags = flags_of(check)
        effects.result["risk"] = check.risk
        effects.result["held"] = risky

    def _staff(self, tenant: str, wecom_userid: str | None) -> tuple[str | None, str]:
        if not wecom_userid:
            return None, ""
        with Session(self.engine) as session:
            row = session.exec(select(StaffRow).where(StaffRow.tenant_id == tenant,
                                                      StaffRow.wecom_userid == wecom_userid)).first()
        return (row.id, row.name) if row else (wecom_userid, "")

    def _persona(self, tenant: str) -> tuple[str, str]:
        try:
            persona = self.copilot.repo.persona(tenant)
        except NotFoundError:
            return "", ""
        return persona.brand, persona.persona_name

    # ---- apply -----------------------------------------------------------------------------------
    def apply(self, session: Session, event: InboxEvent, effects: Effects, now: dt.datetime,
              approval_ttl_s: float) -> dict[str, Any]:
        tenant = event.tenant_id
        if effects.customer is not None:
            _upsert_customer(session, tenant, effects.customer, now)
        customer_id = effects.customer.id if effects.customer else effects.result.get("customer_id")
        if effects.message is not None and customer_id:
            repo = self.copilot.repo
            conversation = repo.conversation(session, tenant, customer_id, effects.conversation_staff or "")
            repo.store_messages(session, tenant, conversation.id, [effects.message], source=effects.channel)
            if effects.stage:
                conversation.last_stage = effects.stage
            conversation.updated_at = now
            session.add(conversation)
        if customer_id and (effects.pause_until or effects.off_hours_at):
            state = session.get(AutomationState, (tenant, customer_id)) or AutomationState(
                tenant_id=tenant, customer_id=customer_id)
            state.paused_until = effects.pause_until or state.paused_until
            state.last_off_hours_at = effects.off_hours_at or state.last_off_hours_at
            session.add(state)
        if effects.kf_customer_at is not None and customer_id:
            open_window(session, tenant, customer_id, KF_CHANNEL, effects.kf_customer_at)
        for dedupe_key, payload in effects.fan_out:
            add_event(session, tenant=tenant, source="kf", dedupe_key=dedupe_key, kind="text",
                      payload=payload, now=now)
        if effects.kf_cursor is not None:
            open_kfid, cursor = effects.kf_cursor
            row = session.get(KfCursor, (tenant, open_kfid)) or KfCursor(tenant_id=tenant, open_kfid=open_kfid)
            row.cursor, row.updated_at = cursor, now
            session.add(row)
        if effects.contact_event is not None:
            insert_new(session.connection(), ContactEvent, [effects.contact_event.model_dump(exclude={"id"})],
                       ["tenant_id", "dedupe_key"])
        if effects.outbox is not None:
            self._enqueue(session, effects, now, approval_ttl_s)
        return effects.result

    def _enqueue(self, session: Session, effects: Effects, now: dt.datetime, ttl_s: float) -> None:
        message = effects.outbox
        assert message is not None
        if effects.hold is not None:
            message.status = "held"
        stored = enqueue_outbox(session, message)
        effects.result["outbox_id"] = stored.row.id
        if stored.created and effects.hold is not None:
            item = create_item(session, tenant=message.tenant_id, source_kind="outbox", source_id=message.id,
                               text=message.text, risk=effects.hold.risk, flags=effects.hold_flags,
                               customer_id=message.customer_id, staff_id=message.staff_id, now=now,
                               ttl_s=ttl_s)
            message.approval_id = item.id
            session.add(message)
            effects.result["approval_id"] = item.id


def _upsert_customer(session: Session, tenant: str, profile: CustomerProfile, now: dt.datetime) -> None:
    """Create the profile row, or refresh one WeCom created; rows from the library are left alone."""
    row = session.get(CustomerRow, (tenant, profile.id))
    if row is not None and row.source != "wecom":
        return
    data = profile.model_dump(mode="json", exclude_defaults=True)
    if row is None:
        row = CustomerRow(tenant_id=tenant, id=profile.id, name=profile.name, staff_id=profile.staff_id,
                          profile=data, source="wecom", updated_at=now)
    else:
        merged = {**row.profile, **data, "attributes": {**row.profile.get("attributes", {}),
                                                         **data.get("attributes", {})}}
        row.profile, row.staff_id, row.updated_at = merged, profile.staff_id or row.staff_id, now
        if profile.name != "客户":
            row.name = merged["name"] = profile.name
    session.add(row)


@dataclass(frozen=True)
class _Inbound:
    """A text message from any source, in one shape."""

    channel: str  # kf | external
    reply_channel: str
    customer_id: str
    customer_name: str
    staff_id: str | None
    role: Literal["customer", "staff"]
    text: str
    ts: dt.datetime
    target: dict[str, Any]
    message_id: str | None

    @classmethod
    def from_event(cls, event: InboxEvent, now: dt.datetime) -> _Inbound | None:
        p = event.payload
        if event.source == "kf":
            origin = int(p.get("origin") or 0)
            if origin not in (_KF_CUSTOMER, _KF_SERVICER) or not p.get("external_userid"):
                return None
            target = {"open_kfid": p["open_kfid"], "touser": p["external_userid"]}
            return cls("kf", "kf", customer_id_for(p["external_userid"]), "", p.get("servicer_userid") or None,
                       "customer" if origin == _KF_CUSTOMER else "staff", str(p.get("text") or ""),
                       _from_unix(p.get("send_time"), now), target, str(p.get("msgid") or "") or None)
        if event.source == "messages":
            ts = _parse_ts(p.get("ts"), now)
            external = str(p.get("external_userid") or p["customer_id"])
            channel = "kf" if p.get("channel") == "kf" and p.get("open_kfid") else "external"
            target = ({"open_kfid": p["open_kfid"], "touser": external} if channel == "kf"
                      else {"external_userid": external, "sender": p.get("staff_wecom_userid") or p.get("staff_id")})
            return cls(channel, channel, str(p["customer_id"]), str(p.get("customer_name") or ""),
                       p.get("staff_id"), "staff" if p["role"] == "staff" else "customer", str(p["text"]), ts, target, None)
        return None


def _parse_ts(value: Any, default: dt.datetime) -> dt.datetime:
    if isinstance(value, int | float):
        return _from_unix(value, default)
    if isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return default
        return as_utc(parsed)
    return default
