"""Decrypted chat-archive (会话存档) records in: validated, resolved to staff, customers and conversations,
and stored in the one message store (`copilot.persistence.messages`).

A record is the JSON the archive SDK yields after decryption (see `ArchiveRecord`). The SDK itself is a
native library outside the package registries, so records arrive from a JSONL file (`copilot archive
import`) or an HTTP relay (`POST /v1/archive/records`); both validate everything before storing anything.

- `send` records are messages. Every msgtype is kept with its type (the text of a non-text message is a
  short label such as `[图片]`); only the text of `text` and `mixed` messages is inspected.
- `recall` records mark the message named by `revoke.pre_msgid` as withdrawn.
- `switch` records (a member switching enterprises) carry no message and are skipped, as are messages of
  robots (`wb…`) and chats without any customer (staff talking among themselves).
- Staff are matched by `wecom_userid` (an unknown userid stands for itself and is reported); customers by
  their external id (a profile's `attributes.external_userid`, or the id WeCom automation gives them), and
  one the library does not know becomes a bare profile. A group chat is one conversation, `room:<roomid>`,
  attributed to the first staff member seen in it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from copilot.backoffice.turns import ROOM_PREFIX
from copilot.clock import utcnow
from copilot.errors import ValidationError
from copilot.knowledge.schema import customer_id_for
from copilot.persistence.engine import insert_ignore, session_scope
from copilot.persistence.messages import ArchiveMessage, store_archive, withdraw
from copilot.persistence.tables.base import new_id
from copilot.persistence.tables.conversations import Conversation
from copilot.persistence.tables.library import CustomerRow, StaffRow

__all__ = [
    "TEXT_TYPES", "ArchiveImporter", "ArchiveRecord", "ImportReport", "check_records", "parse_record", "read_jsonl",
    "validate_records",
]

TEXT_TYPES = frozenset({"text", "mixed"})
_LABELS = {
    "image": "[图片]", "voice": "[语音]", "video": "[视频]", "card": "[名片]", "location": "[位置]",
    "emotion": "[表情]", "file": "[文件]", "link": "[链接]", "weapp": "[小程序]", "chatrecord": "[聊天记录]",
    "redpacket": "[红包]", "agree": "[同意会话存档]", "disagree": "[不同意会话存档]", "todo": "[待办]",
    "vote": "[投票]", "collect": "[填表]", "meeting": "[会议]", "calendar": "[日程]", "docmsg": "[在线文档]",
    "markdown": "[Markdown]", "news": "[图文]", "sphfeed": "[视频号]", "voip_doc_share": "[音视频共享文档]",
    "external_redpacket": "[互通红包]", "meeting_voice_call": "[音频存档]", "voiptext": "[音视频通话]",
    "qydiskfile": "[微盘文件]",
}
_TITLE_FIELDS = {"location": "title", "file": "filename", "link": "title", "weapp": "title", "chatrecord": "title",
                 "redpacket": "wish", "docmsg": "title", "news": "title"}
MAX_ERRORS = 50


class ArchiveRecord(BaseModel):
    """One decrypted archive record; the sub-object named after `msgtype` stays in the extra fields."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    msgid: str = Field(min_length=1, max_length=128)
    action: Literal["send", "recall", "switch"]
    sender: str = Field(default="", alias="from", max_length=128)
    tolist: tuple[str, ...] = ()
    roomid: str = Field(default="", max_length=128)
    msgtime: int | None = Field(default=None, ge=0)  # milliseconds since the epoch
    msgtype: str = Field(default="", max_length=64)

    def part(self, name: str) -> dict[str, Any]:
        value = (self.model_extra or {}).get(name)
        return value if isinstance(value, dict) else {}

    @property
    def moment(self) -> dt.datetime:
        assert self.msgtime is not None
        return dt.datetime.fromtimestamp(self.msgtime / 1000, dt.UTC)

    def text(self) -> str:
        """The message text: the content of a text message, the texts of a mixed one, else a label."""
        if self.msgtype == "text":
            return str(self.part("text").get("content") or "")
        if self.msgtype == "mixed":
            items = self.part("mixed").get("item") or []
            texts: list[str] = []
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and item.get("type") == "text":
                    content = item.get("content")
                    if isinstance(content, str):
                        texts.append(_mixed_text(content))
            return "\n".join(t for t in texts if t) or "[混合消息]"
        label = _LABELS.get(self.msgtype, f"[{self.msgtype}]")
        title_field = _TITLE_FIELDS.get(self.msgtype)
        title = self.part(self.msgtype).get(title_field) if title_field else None
        return f"{label} {title}" if isinstance(title, str) and title else label


def _mixed_text(content: str) -> str:
    """A mixed message's text item holds its own JSON ({"content": "…"}); plain text is taken as is."""
    try:
        inner = json.loads(content)
    except ValueError:
        return content
    return str(inner.get("content") or "") if isinstance(inner, dict) else content


def _problem(where: str, exc: pydantic.ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors()]
    return f"{where}: " + "; ".join(parts)


def _check(record: ArchiveRecord, where: str) -> str | None:
    if record.action == "switch":
        return None
    if record.msgtime is None:
        return f"{where}: msgtime is missing (milliseconds since the epoch)"
    if not record.sender:
        return f"{where}: from is missing (the sender's userid or external id)"
    if record.action == "recall" and not record.part("revoke").get("pre_msgid"):
        return f"{where}: a recall record needs revoke.pre_msgid (the id of the recalled message)"
    if record.action == "send" and not record.msgtype:
        return f"{where}: msgtype is missing"
    if record.action == "send" and record.msgtype == "text" and not isinstance(record.part("text").get("content"), str):
        return f"{where}: a text record needs text.content"
    return None


def parse_record(where: str, raw: Any) -> ArchiveRecord | str:
    """The record, or a problem stated as `where: field: what is wrong`."""
    if isinstance(raw, ArchiveRecord):  # read_jsonl validated it already
        return raw
    if isinstance(raw, _Problem):
        return raw.text
    if isinstance(raw, _NotJson):
        return f"{where}: not JSON ({raw.reason})"
    if not isinstance(raw, dict):
        return f"{where}: expected a JSON object"
    try:
        record = ArchiveRecord.model_validate(raw)
    except pydantic.ValidationError as exc:
        return _problem(where, exc)
    return _check(record, where) or record


def check_records(items: Iterable[tuple[str, Any]]) -> int:
    """Validate every record without keeping them; raise ValidationError naming each bad one."""
    problems: list[str] = []
    count = 0
    for where, raw in items:
        parsed = parse_record(where, raw)
        if isinstance(parsed, str):
            problems.append(parsed)
        count += 1
    _raise(problems)
    return count


def validate_records(items: Iterable[tuple[str, Any]]) -> list[ArchiveRecord]:
    """Parse every record; raise ValidationError naming each bad one (nothing is kept then)."""
    records: list[ArchiveRecord] = []
    problems: list[str] = []
    for where, raw in items:
        parsed = parse_record(where, raw)
        if isinstance(parsed, str):
            problems.append(parsed)
        else:
            records.append(parsed)
    _raise(problems)
    return records


def _raise(problems: list[str]) -> None:
    if problems:
        shown = "\n  ".join(problems[:MAX_ERRORS])
        more = f"\n  … and {len(problems) - MAX_ERRORS} more" if len(problems) > MAX_ERRORS else ""
        raise ValidationError(f"{len(problems)} bad archive record(s); nothing was imported:\n  {shown}{more}")


def read_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    """(`file:line`, the record or what is wrong with the line) for every non-blank line. A well-formed line
    is parsed and validated in one step (pydantic's JSON parser); any other is parsed again to say why."""
    name = path.name
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{name}:{number}"
            try:
                record = ArchiveRecord.model_validate_json(line)
            except pydantic.ValidationError:
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as exc:
                    yield where, _NotJson(exc.msg)
                continue
            problem = _check(record, where)
            yield where, _Problem(problem) if problem else record


@dataclass(frozen=True)
class _NotJson:
    reason: str


@dataclass(frozen=True)
class _Problem:
    text: str


@dataclass
class ImportReport:
    records: int = 0
    messages: int = 0  # new rows in the message store
    matched: int = 0  # the same message was already stored by a webhook or the sidebar
    duplicates: int = 0  # msgids imported before (or twice in the input)
    recalled: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    new_customers: int = 0
    unknown_staff: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "messages": self.messages, "matched": self.matched,
                "duplicates": self.duplicates, "recalled": self.recalled, "skipped": dict(self.skipped),
                "new_customers": self.new_customers, "unknown_staff": sorted(self.unknown_staff)}


def _is_customer(userid: str) -> bool:
    return userid.startswith(("wm", "wo"))


def _is_robot(userid: str) -> bool:
    return userid.startswith("wb")


class ArchiveImporter:
    """Stores validated records for one tenant. Staff, customers and conversations are read once and
    remembered; the customers and conversations a batch needs are created together, in bulk."""

    def __init__(self, engine: Engine, tenant: str) -> None:
        self.engine = engine
        self.tenant = tenant
        self._customers: dict[str, str] = {}  # external id → customer id
        self._conversations: dict[tuple[str, str], str] = {}  # (customer id, staff id) → conversation id
        self._rooms: dict[str, str] = {}  # roomid → conversation id
        with Session(engine) as session:
            self._staff = {r.wecom_userid: r.id for r in session.exec(
                select(StaffRow).where(StaffRow.tenant_id == tenant)) if r.wecom_userid}
            for cid, profile in session.exec(select(CustomerRow.id, CustomerRow.profile).where(
                    CustomerRow.tenant_id == tenant)).all():
                external = (profile.get("attributes") or {}).get("external_userid") if isinstance(profile, dict) else None
                if isinstance(external, str) and external:
                    self._customers[external] = cid
            self._known_ids = set(session.exec(select(CustomerRow.id).where(CustomerRow.tenant_id == tenant)).all())
            for cid, customer, staff in session.exec(select(Conversation.id, Conversation.customer_id,
                                                             Conversation.staff_id).where(
                    Conversation.tenant_id == tenant).order_by(col(Conversation.created_at))).all():
                if customer.startswith(ROOM_PREFIX):
                    self._rooms.setdefault(customer[len(ROOM_PREFIX):], cid)
                else:
                    self._conversations[(customer, staff)] = cid
        self._new_customers: dict[str, dict[str, Any]] = {}
        self._new_conversations: dict[str, dict[str, Any]] = {}

    def store(self, records: Iterable[ArchiveRecord], report: ImportReport) -> set[str]:
        """Store one batch in one transaction; returns the conversations whose messages changed."""
        changed: set[str] = set()
        messages: list[ArchiveMessage] = []
        recalls: list[ArchiveRecord] = []
        self._new_customers, self._new_conversations = {}, {}
        for record in records:
            report.records += 1
            if record.action == "switch":
                report.skipped["switch"] += 1
            elif record.action == "recall":
                recalls.append(record)
            else:
                message = self._resolve(record, report)
                if message is not None:
                    messages.append(message)
        with session_scope(self.engine) as session:
            connection = session.connection()
            if self._new_customers:
                insert_ignore(connection, CustomerRow, list(self._new_customers.values()), ["tenant_id", "id"])
                report.new_customers += len(self._new_customers)
            if self._new_conversations:
                messages = self._create_conversations(session, messages)
            written = store_archive(session, self.tenant, messages)
            report.messages += written.inserted
            report.matched += written.matched
            report.duplicates += written.duplicates
            changed |= written.conversations
            for record in recalls:
                conversation = withdraw(session, self.tenant, str(record.part("revoke")["pre_msgid"]), record.moment)
                if conversation is not None:
                    report.recalled += 1
                    changed.add(conversation)
        return changed

    def _create_conversations(self, session: Session, messages: list[ArchiveMessage]) -> list[ArchiveMessage]:
        """Insert the batch's new conversations; one another writer created first is used instead."""
        rows = list(self._new_conversations.values())
        insert_ignore(session.connection(), Conversation, rows, ["tenant_id", "customer_id", "staff_id"])
        ours = {c for c in session.exec(select(Conversation.id).where(
            col(Conversation.id).in_([r["id"] for r in rows]))).all()}
        lost = {r["id"]: r for r in rows if r["id"] not in ours}
        if not lost:
            return messages
        remap: dict[str, str] = {}
        for cid, row in lost.items():
            found = session.exec(select(Conversation.id).where(
                Conversation.tenant_id == self.tenant, Conversation.customer_id == row["customer_id"],
                Conversation.staff_id == row["staff_id"])).first()
            if found is None:  # pragma: no cover - the unique key can only lose to a row that exists
                raise ValidationError(f"conversation of {row['customer_id']!r} could not be created")
            remap[cid] = found
        for key, cid in list(self._conversations.items()):
            self._conversations[key] = remap.get(cid, cid)
        for roomid, cid in list(self._rooms.items()):
            self._rooms[roomid] = remap.get(cid, cid)
        return [replace(m, conversation_id=remap.get(m.conversation_id, m.conversation_id)) for m in messages]

    # ---- resolution ------------------------------------------------------------------------------
    def _staff_id(self, userid: str, report: ImportReport) -> str:
        found = self._staff.get(userid)
        if found is None:
            report.unknown_staff.add(userid)
            return userid
        return found

    def _customer_id(self, external: str, staff_id: str | None) -> str:
        found = self._customers.get(external)
        if found is not None:
            return found
        cid = customer_id_for(external)
        if cid not in self._known_ids:
            profile: dict[str, Any] = {"id": cid, "name": "客户", "attributes": {"external_userid": external}}
            if staff_id:
                profile["staff_id"] = staff_id
            self._new_customers[cid] = {
                "tenant_id": self.tenant, "id": cid, "name": "客户", "staff_id": staff_id, "segment": "default",
                "profile": profile, "source": "archive", "content_hash": "", "source_file": "", "source_line": 0,
                "updated_at": utcnow()}
            self._known_ids.add(cid)
        self._customers[external] = cid
        return cid

    def _new_conversation(self, customer_id: str, staff_id: str) -> str:
        cid = new_id()
        now = utcnow()
        self._new_conversations[cid] = {"id": cid, "tenant_id": self.tenant, "customer_id": customer_id,
                                        "staff_id": staff_id, "last_stage": None, "created_at": now,
                                        "updated_at": now}
        return cid

    def _conversation(self, customer_id: str, staff_id: str) -> str:
        key = (customer_id, staff_id)
        found = self._conversations.get(key)
        if found is None:
            found = self._conversations[key] = self._new_conversation(customer_id, staff_id)
        return found

    def _room(self, roomid: str, staff_id: str) -> str:
        found = self._rooms.get(roomid)
        if found is None:
            found = self._rooms[roomid] = self._new_conversation(ROOM_PREFIX + roomid, staff_id)
        return found

    def _resolve(self, record: ArchiveRecord, report: ImportReport) -> ArchiveMessage | None:
        sender = record.sender
        if _is_robot(sender):
            report.skipped["robot"] += 1
            return None
        people = [sender, *record.tolist]
        if not any(_is_customer(p) for p in people):
            report.skipped["internal"] += 1
            return None
        role = "customer" if _is_customer(sender) else "staff"
        if record.roomid:
            staff_userid = sender if role == "staff" else next(
                (p for p in record.tolist if not _is_customer(p) and not _is_robot(p)), None)
            if staff_userid is None:
                report.skipped["no_staff"] += 1
                return None
            staff_id = self._staff_id(staff_userid, report)
            conversation_id = self._room(record.roomid, staff_id)
            sender_id = self._staff_id(sender, report) if role == "staff" else self._customer_id(sender, None)
        else:
            other = record.tolist[0] if record.tolist else ""
            staff_userid, external = (other, sender) if role == "customer" else (sender, other)
            if not staff_userid or _is_customer(staff_userid) or not _is_customer(external):
                report.skipped["not_1v1"] += 1
                return None
            staff_id = self._staff_id(staff_userid, report)
            customer_id = self._customer_id(external, staff_id)
            conversation_id = self._conversation(customer_id, staff_id)
            sender_id = staff_id if role == "staff" else customer_id
        return ArchiveMessage(msgid=record.msgid, conversation_id=conversation_id, role=role, sender_id=sender_id,
                              text=record.text()[:4000], msgtype=record.msgtype, ts=record.moment)
