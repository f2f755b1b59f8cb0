"""Callback envelopes and decrypted messages/events become typed values; hostile XML is refused."""

from __future__ import annotations

import json

import pytest

from copilot.errors import ValidationError
from copilot.wecom.protocol.crypto import WeComCrypto, WeComPayloadError
from copilot.wecom.protocol.messages import parse_envelope, parse_message, parse_xml

ADD_CONTACT = """<xml>
<ToUserName><![CDATA[ww-corp]]></ToUserName>
<FromUserName><![CDATA[sys]]></FromUserName>
<CreateTime>1700000000</CreateTime>
<MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[change_external_contact]]></Event>
<ChangeType><![CDATA[add_external_contact]]></ChangeType>
<UserID><![CDATA[sales01]]></UserID>
<ExternalUserID><![CDATA[wmABC]]></ExternalUserID>
<State><![CDATA[spring-campaign]]></State>
<WelcomeCode><![CDATA[WELCOMECODE-1]]></WelcomeCode>
</xml>"""

KF_EVENT = """<xml>
<ToUserName><![CDATA[ww-corp]]></ToUserName>
<CreateTime>1700000100</CreateTime>
<MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[kf_msg_or_event]]></Event>
<Token><![CDATA[ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR]]></Token>
<OpenKfId><![CDATA[wkABC]]></OpenKfId>
</xml>"""

TEXT = """<xml><ToUserName><![CDATA[ww-corp]]></ToUserName><FromUserName><![CDATA[sales01]]></FromUserName>
<CreateTime>1700000200</CreateTime><MsgType><![CDATA[text]]></MsgType>
<Content><![CDATA[  价格 <含税> & 包邮吗？  ]]></Content><MsgId>4561255354251345929</MsgId>
<AgentID>1000002</AgentID></xml>"""


def test_xml_envelope_yields_encrypt_to_user_and_agent() -> None:
    body = b"<xml><ToUserName><![CDATA[ww-corp]]></ToUserName><Encrypt><![CDATA[abc+/=]]></Encrypt>"
    body += b"<AgentID><![CDATA[218]]></AgentID></xml>"
    envelope = parse_envelope(body)
    assert (envelope.encrypt, envelope.to_user, envelope.agent_id) == ("abc+/=", "ww-corp", "218")


def test_json_envelope_yields_encrypt() -> None:
    envelope = parse_envelope(json.dumps({"encrypt": "abc=", "tousername": "ww-corp", "agentid": 7}).encode())
    assert (envelope.encrypt, envelope.to_user, envelope.agent_id) == ("abc=", "ww-corp", "7")


@pytest.mark.parametrize(
    "body",
    [b"", b"<xml><ToUserName>x</ToUserName></xml>", b'{"other": 1}', b"<xml><Encrypt>", b"[1,2]", b"{nope"],
    ids=["empty", "no-encrypt-xml", "no-encrypt-json", "truncated", "json-array", "broken-json"],
)
def test_unusable_envelopes_are_parse_errors(body: bytes) -> None:
    with pytest.raises(WeComPayloadError) as caught:
        parse_envelope(body)
    assert caught.value.code == -40002 and isinstance(caught.value, ValidationError)


def test_add_external_contact_event_is_typed() -> None:
    event = parse_message(ADD_CONTACT.encode())
    assert event.msg_type == "event"
    assert event.event == "change_external_contact"
    assert event.change_type == "add_external_contact"
    assert (event.user_id, event.external_user_id) == ("sales01", "wmABC")
    assert (event.state, event.welcome_code) == ("spring-campaign", "WELCOMECODE-1")
    assert event.create_time == 1700000000 and event.from_user == "sys" and event.to_user == "ww-corp"
    assert event.msg_id is None
    assert event.raw["WelcomeCode"] == "WELCOMECODE-1"


def test_kf_event_carries_token_and_open_kfid() -> None:
    event = parse_message(KF_EVENT)
    assert event.event == "kf_msg_or_event"
    assert event.kf_token == "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR"
    assert event.open_kfid == "wkABC"


def test_text_content_is_kept_verbatim_including_markup_characters() -> None:
    event = parse_message(TEXT.encode())
    assert event.content == "  价格 <含税> & 包邮吗？  "
    assert (event.msg_id, event.agent_id) == ("4561255354251345929", "1000002")


def test_messages_dedupe_by_msg_id() -> None:
    first = parse_message(TEXT)
    retried = parse_message(TEXT.replace("1700000200", "1700000205"))
    assert first.dedupe_key == retried.dedupe_key == "msg:4561255354251345929"


def test_events_dedupe_by_sender_time_and_event_keys() -> None:
    event = parse_message(ADD_CONTACT)
    assert parse_message(ADD_CONTACT).dedupe_key == event.dedupe_key
    other_customer = parse_message(ADD_CONTACT.replace("wmABC", "wmXYZ"))
    later = parse_message(ADD_CONTACT.replace("1700000000", "1700000001"))
    deleted = parse_message(ADD_CONTACT.replace("add_external_contact", "del_external_contact"))
    keys = {event.dedupe_key, other_customer.dedupe_key, later.dedupe_key, deleted.dedupe_key}
    assert len(keys) == 4
    kf = parse_message(KF_EVENT)
    assert kf.dedupe_key != parse_message(KF_EVENT.replace("wkABC", "wkOTHER")).dedupe_key


def test_nested_and_repeated_elements_are_kept_in_raw() -> None:
    raw = parse_xml(
        "<xml><MsgType>event</MsgType><ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo>"
        "<Item>a</Item><Item>b</Item><Item>c</Item></xml>"
    )
    assert raw == {"MsgType": "event", "ScanCodeInfo": {"ScanType": "qrcode"}, "Item": ["a", "b", "c"]}


def test_json_message_with_the_same_keys_is_parsed() -> None:
    event = parse_message(json.dumps({"MsgType": "event", "Event": "x", "CreateTime": 17}))
    assert (event.msg_type, event.event, event.create_time) == ("event", "x", 17)


def test_message_without_msg_type_or_with_bad_create_time_is_refused() -> None:
    with pytest.raises(WeComPayloadError, match="MsgType"):
        parse_message("<xml><Content>hi</Content></xml>")
    with pytest.raises(WeComPayloadError, match="CreateTime"):
        parse_message("<xml><MsgType>text</MsgType><CreateTime>soon</CreateTime></xml>")


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><MsgType>text</MsgType><Content>&lol3;</Content></xml>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<xml><Encrypt>&secret;</Encrypt></xml>"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL_ENTITY, "<!DOCTYPE xml><xml><a>1</a></xml>"])
def test_doctype_and_entity_declarations_are_refused(document: str) -> None:
    with pytest.raises(WeComPayloadError, match="refused"):
        parse_xml(document.encode())


def test_undeclared_entity_reference_is_a_parse_error() -> None:
    with pytest.raises(WeComPayloadError, match="well-formed"):
        parse_envelope(b"<xml><Encrypt>&lol;</Encrypt></xml>")


def test_sample_callback_decrypts_and_parses_end_to_end() -> None:
    crypto = WeComCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "ww-corp")
    sealed = crypto.encrypt(ADD_CONTACT.encode(), nonce="42", timestamp="1700000000")
    body = f"<xml><ToUserName><![CDATA[ww-corp]]></ToUserName><Encrypt><![CDATA[{sealed.encrypt}]]></Encrypt>"
    body += "<AgentID><![CDATA[]]></AgentID></xml>"
    envelope = parse_envelope(body.encode())
    event = parse_message(crypto.decrypt(sealed.signature, sealed.timestamp, sealed.nonce, envelope.encrypt))
    assert event.welcome_code == "WELCOMECODE-1"
