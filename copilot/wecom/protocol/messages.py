"""Parse WeCom callback envelopes and decrypted messages/events into typed values.

XML is parsed with expat directly so that any DOCTYPE or entity declaration is refused before it can
expand (billion laughs, external entities); WeCom never sends either. Size limits are the caller's job.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, NoReturn
from xml.parsers import expat

from copilot.wecom.protocol.crypto import WeComPayloadError

__all__ = ["CallbackEnvelope", "WeComEvent", "event_from_raw", "parse_envelope", "parse_message", "parse_xml"]

_PARSE = -40002


@dataclass(frozen=True)
class CallbackEnvelope:
    """The outer, still-encrypted body WeCom POSTs to the callback URL."""

    encrypt: str
    to_user: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True)
class WeComEvent:
    """One decrypted message or event; `raw` keeps every field WeCom sent, nested elements as dicts."""

    msg_type: str
    event: str | None = None
    change_type: str | None = None
    msg_id: str | None = None
    from_user: str | None = None
    to_user: str | None = None
    create_time: int | None = None
    content: str | None = None
    user_id: str | None = None
    external_user_id: str | None = None
    state: str | None = None
    welcome_code: str | None = None
    kf_token: str | None = None
    open_kfid: str | None = None
    agent_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def dedupe_key(self) -> str:
        """Stable across WeCom's retries of one callback: the MsgId, else sender + time + event keys."""
        if self.msg_id:
            return f"msg:{self.msg_id}"
        parts = [
            self.from_user or "",
            "" if self.create_time is None else str(self.create_time),
            self.event or self.msg_type,
            self.change_type or "",
            self.user_id or "",
            self.external_user_id or "",
            self.open_kfid or "",
            self.kf_token or "",
        ]
        return "event:" + json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


def _forbidden(what: str) -> NoReturn:
    raise WeComPayloadError(_PARSE, f"XML with {what} is refused; WeCom payloads never contain one")


def parse_xml(data: bytes | str) -> dict[str, Any]:
    """Parse a flat-ish WeCom XML document into a dict; repeated elements become lists."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = lambda *_: _forbidden("a DOCTYPE")
    parser.EntityDeclHandler = lambda *_: _forbidden("an entity declaration")
    parser.StartElementHandler = lambda name, attrs: builder.start(name, attrs)
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        root = builder.close()
    except expat.ExpatError as exc:
        raise WeComPayloadError(_PARSE, f"body is not well-formed XML ({exc})") from exc
    value = _element_value(root)
    if not isinstance(value, dict):
        raise WeComPayloadError(_PARSE, f"the XML root <{root.tag}> has no child elements")
    return value


def _element_value(element: ET.Element) -> str | dict[str, Any]:
    children = list(element)
    if not children:
        return element.text or ""
    out: dict[str, Any] = {}
    for child in children:
        value = _element_value(child)
        if child.tag not in out:
            out[child.tag] = value
        elif isinstance(out[child.tag], list):
            out[child.tag].append(value)
        else:
            out[child.tag] = [out[child.tag], value]
    return out


def _parse_json(data: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WeComPayloadError(_PARSE, f"body is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise WeComPayloadError(_PARSE, "the JSON body must be an object")
    return value


def _parse_any(data: bytes | str) -> dict[str, Any]:
    head = data.lstrip()[:1]
    if head in (b"{", "{"):
        return _parse_json(data)
    return parse_xml(data)


def _text(raw: dict[str, Any], *keys: str) -> str | None:
    """The first scalar value among `keys`; numbers in JSON bodies are turned into strings."""
    for key in keys:
        value = raw.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, str | int):
            return str(value)
    return None


def parse_envelope(body: bytes | str) -> CallbackEnvelope:
    """Read the `Encrypt` field from an XML `<xml><Encrypt/>…</xml>` or JSON `{"encrypt": …}` body."""
    raw = _parse_any(body)
    encrypt = _text(raw, "Encrypt", "encrypt")
    if not encrypt:
        raise WeComPayloadError(_PARSE, "the callback body has no Encrypt field")
    return CallbackEnvelope(
        encrypt=encrypt,
        to_user=_text(raw, "ToUserName", "tousername"),
        agent_id=_text(raw, "AgentID", "agentid"),
    )


def parse_message(plaintext: bytes | str) -> WeComEvent:
    """Turn decrypted message/event XML (or JSON with the same keys) into a `WeComEvent`."""
    return event_from_raw(_parse_any(plaintext))


def event_from_raw(raw: dict[str, Any]) -> WeComEvent:
    """Rebuild a `WeComEvent` from its `raw` fields (e.g. as stored in the inbox)."""
    msg_type = _text(raw, "MsgType")
    if not msg_type:
        raise WeComPayloadError(_PARSE, "the decrypted message has no MsgType")
    create_text = _text(raw, "CreateTime")
    try:
        create_time = int(create_text) if create_text else None
    except ValueError as exc:
        raise WeComPayloadError(_PARSE, f"CreateTime {create_text!r} is not an integer") from exc
    return WeComEvent(
        msg_type=msg_type,
        event=_text(raw, "Event"),
        change_type=_text(raw, "ChangeType"),
        msg_id=_text(raw, "MsgId", "MsgID"),
        from_user=_text(raw, "FromUserName"),
        to_user=_text(raw, "ToUserName"),
        create_time=create_time,
        content=_text(raw, "Content"),
        user_id=_text(raw, "UserID", "UserId"),
        external_user_id=_text(raw, "ExternalUserID", "ExternalUserId"),
        state=_text(raw, "State"),
        welcome_code=_text(raw, "WelcomeCode"),
        kf_token=_text(raw, "Token"),
        open_kfid=_text(raw, "OpenKfId"),
        agent_id=_text(raw, "AgentID"),
        raw=raw,
    )
