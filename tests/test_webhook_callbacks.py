"""The webhook ack path: verify, decrypt, parse, store once, answer at once; every bad request refused
with the right status and nothing stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from copilot.clock import utcnow
from copilot.persistence.tables.webhooks import InboxEvent, SpooledEvent, WebhookSecret
from copilot.webhooks.spool import Spool
from copilot.wecom.protocol.crypto import WeComCrypto
from tests.wecom_stub import (
    API_KEY,
    CALLBACK_AES_KEY,
    CALLBACK_RECEIVE_ID,
    CALLBACK_TOKEN,
    CORP_ID,
    add_wecom_tenant,
    encrypted_callback,
    event_xml,
    take_spool,
    webhook_app,
    webhook_config,
)

HEADERS = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def client(hashing_copilot: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = webhook_app(hashing_copilot, webhook_config(), tmp_path_factory.mktemp("webhooks"), clock=utcnow)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def tenant(hashing_copilot: Any) -> str:
    """A fresh tenant with its own WeCom app row and message secret, so tests never see each other."""
    name = f"t{uuid.uuid4().hex[:10]}"
    return add_wecom_tenant(hashing_copilot.engine, name, WebhookSecret(tenant_id=name, secret=f"secret-{name}"),
                            agent_id="1000002")


def spooled(copilot: Any, tenant: str) -> list[SpooledEvent]:
    spool = Spool(copilot.engine)
    try:
        return spool.waiting(tenant, limit=500)
    finally:
        spool.close()


def stored(copilot: Any, tenant: str) -> list[InboxEvent]:
    """The tenant's inbox once a worker has taken the spool in."""
    take_spool(copilot, utcnow())
    with Session(copilot.engine) as session:
        return list(session.exec(select(InboxEvent).where(InboxEvent.tenant_id == tenant)).all())


def add_contact_xml(external: str = "wmCustomer01", create_time: int = 1_763_776_800) -> str:
    return event_xml(ToUserName=CORP_ID, FromUserName="sys", CreateTime=create_time, MsgType="event",
                     Event="change_external_contact", ChangeType="add_external_contact", UserID="LinXiaoYa",
                     ExternalUserID=external, State="spring-campaign", WelcomeCode="WELCOME-CODE-1")


def test_url_verification_answers_the_decrypted_echostr_exactly(client: TestClient, tenant: str) -> None:
    crypto = WeComCrypto(CALLBACK_TOKEN, CALLBACK_AES_KEY, CALLBACK_RECEIVE_ID)
    stamp = str(int(time.time()))
    envelope = crypto.encrypt(b"8164372539123945781", nonce="abc", timestamp=stamp)
    response = client.get(f"/webhooks/wecom/{tenant}", params={
        "msg_signature": envelope.signature, "timestamp": stamp, "nonce": "abc", "echostr": envelope.encrypt})
    assert response.status_code == 200
    assert response.content == b"8164372539123945781"
    assert response.headers["content-type"].startswith("text/plain")


def test_url_verification_with_a_wrong_signature_is_401(client: TestClient, tenant: str) -> None:
    crypto = WeComCrypto(CALLBACK_TOKEN, CALLBACK_AES_KEY, CALLBACK_RECEIVE_ID)
    stamp = str(int(time.time()))
    envelope = crypto.encrypt(b"12345", nonce="abc", timestamp=stamp)
    response = client.get(f"/webhooks/wecom/{tenant}", params={
        "msg_signature": "0" * 40, "timestamp": stamp, "nonce": "abc", "echostr": envelope.encrypt})
    assert response.status_code == 401


def test_callback_delivered_three_times_is_stored_once_and_acked_empty(
    client: TestClient, tenant: str, hashing_copilot: Any
) -> None:
    params, body = encrypted_callback(add_contact_xml())
    for _ in range(3):
        response = client.post(f"/webhooks/wecom/{tenant}", params=params, content=body)
        assert response.status_code == 200
        assert response.content == b""
    rows = stored(hashing_copilot, tenant)
    assert len(rows) == 1
    assert rows[0].kind == "add_external_contact" and rows[0].priority == 0
    assert rows[0].status == "pending" and rows[0].payload["WelcomeCode"] == "WELCOME-CODE-1"


def test_a_retry_with_a_new_nonce_is_still_one_event(client: TestClient, tenant: str, hashing_copilot: Any) -> None:
    for nonce in ("first", "second", "third"):
        params, body = encrypted_callback(add_contact_xml(), nonce=nonce)
        assert client.post(f"/webhooks/wecom/{tenant}", params=params, content=body).status_code == 200
    assert len(stored(hashing_copilot, tenant)) == 1


def test_json_envelope_is_accepted(client: TestClient, tenant: str, hashing_copilot: Any) -> None:
    plain = event_xml(ToUserName=CORP_ID, CreateTime=1_763_776_900, MsgType="event", Event="kf_msg_or_event",
                      Token="KF-TOKEN", OpenKfId="wkKF01")
    params, body = encrypted_callback(plain, as_json=True)
    response = client.post(f"/webhooks/wecom/{tenant}", params=params, content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 200 and response.content == b""
    [row] = stored(hashing_copilot, tenant)
    assert row.kind == "kf_msg_or_event" and row.payload["OpenKfId"] == "wkKF01"


def test_default_tenant_uses_the_settings_credentials(client: TestClient, hashing_copilot: Any) -> None:
    external = f"wm{uuid.uuid4().hex[:8]}"
    params, body = encrypted_callback(add_contact_xml(external))
    assert client.post("/webhooks/wecom/default", params=params, content=body).status_code == 200
    assert any(r.payload.get("ExternalUserID") == external for r in stored(hashing_copilot, "default"))


def test_wrong_signature_is_401_and_nothing_is_stored(client: TestClient, tenant: str, hashing_copilot: Any) -> None:
    params, body = encrypted_callback(add_contact_xml())
    params["msg_signature"] = "f" * 40
    assert client.post(f"/webhooks/wecom/{tenant}", params=params, content=body).status_code == 401
    params, body = encrypted_callback(add_contact_xml(), token="another-token")
    assert client.post(f"/webhooks/wecom/{tenant}", params=params, content=body).status_code == 401
    assert stored(hashing_copilot, tenant) == []


def test_message_for_another_receive_id_is_401(client: TestClient, tenant: str, hashing_copilot: Any) -> None:
    params, body = encrypted_callback(add_contact_xml(), receive_id="ww-some-other-corp")
    assert client.post(f"/webhooks/wecom/{tenant}", params=params, content=body).status_code == 401
    assert stored(hashing_copilot, tenant) == []


def test_stale_timestamp_is_401_and_nothing_is_stored(client: TestClient, tenant: str, hashing_copilot: Any) -> None:
    params, body = encrypted_callback(add_contact_xml(), timestamp=int(time.time()) - 3600)
    response = client.post(f"/webhooks/wecom/{tenant}", params=params, content=body)
    assert response.status_code == 401
    params["timestamp"] = "not-a-number"
    assert client.post(f"/webhooks/wecom/{tenant}", params=params, content=body).status_code == 401
    assert stored(hashing_copilot, tenant) == []


def test_replay_window_of_zero_turns_the_check_off(hashing_copilot: Any, tmp_path_factory: pytest.TempPathFactory,
                                                   tenant: str) -> None:
    app = webhook_app(hashing_copilot, webhook_config(max_skew_s=0), tmp_path_factory.mktemp("skew"), clock=utcnow)
    with TestClient(app) as client:
        params, body = encrypted_callback(add_contact_xml(), timestamp=1_500_000_000)
        assert client.post(f"/webhooks/wecom/{tenant}", params=params, content=body).status_code == 200
    assert len(stored(hashing_copilot, tenant)) == 1


@pytest.mark.parametrize("body", [
    "<xml><Encrypt>unterminated",
    "<xml><ToUserName>x</ToUserName></xml>",
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><xml><Encrypt>&a;</Encrypt></xml>',
    '{"encrypt": ',
    "[1, 2, 3]",
])
def test_malformed_envelope_is_400_with_the_library_code_logged(
    client: TestClient, tenant: str, hashing_copilot: Any, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    params, _ = encrypted_callback(add_contact_xml())
    with caplog.at_level(logging.WARNING, logger="api.routes.webhooks"):
        response = client.post(f"/webhooks/wecom/{tenant}", params=params, content=body)
    assert response.status_code == 400
    assert response.json()["code"] == -40002
    assert "code=-40002" in caplog.text
    assert stored(hashing_copilot, tenant) == []


def test_bad_padding_is_400_with_code_minus_40008(
    client: TestClient, tenant: str, hashing_copilot: Any, caplog: pytest.LogCaptureFixture
) -> None:
    key = base64.b64decode(CALLBACK_AES_KEY + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    encrypt = base64.b64encode(encryptor.update(b"\x00" * 64) + encryptor.finalize()).decode()
    stamp = str(int(time.time()))
    signature = WeComCrypto(CALLBACK_TOKEN, CALLBACK_AES_KEY, CALLBACK_RECEIVE_ID).signature(stamp, "n", encrypt)
    body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    with caplog.at_level(logging.WARNING, logger="api.routes.webhooks"):
        response = client.post(f"/webhooks/wecom/{tenant}",
                               params={"msg_signature": signature, "timestamp": stamp, "nonce": "n"}, content=body)
    assert response.status_code == 400 and response.json()["code"] == -40008
    assert "code=-40008" in caplog.text
    assert stored(hashing_copilot, tenant) == []


def test_decrypted_content_that_is_not_a_message_is_400(client: TestClient, tenant: str, hashing_copilot: Any) -> None:
    params, body = encrypted_callback("<xml><Nothing>here</Nothing></xml>")
    response = client.post(f"/webhooks/wecom/{tenant}", params=params, content=body)
    assert response.status_code == 400
    assert stored(hashing_copilot, tenant) == []


def test_body_over_the_limit_is_413(client: TestClient, tenant: str, hashing_copilot: Any) -> None:
    params, body = encrypted_callback(event_xml(MsgType="text", Content="长" * 20_000, CreateTime=1))
    response = client.post(f"/webhooks/wecom/{tenant}", params=params, content=body)
    assert response.status_code == 413
    assert stored(hashing_copilot, tenant) == []


def test_unknown_tenant_is_404(client: TestClient) -> None:
    params, body = encrypted_callback(add_contact_xml())
    assert client.post("/webhooks/wecom/no-such-tenant", params=params, content=body).status_code == 404
    assert client.get("/webhooks/wecom/no-such-tenant", params=params).status_code == 404


def test_events_listing_needs_a_key_and_filters(client: TestClient, hashing_copilot: Any) -> None:
    external = f"wm{uuid.uuid4().hex[:8]}"
    params, body = encrypted_callback(add_contact_xml(external))
    client.post("/webhooks/wecom/default", params=params, content=body)
    assert client.get("/v1/webhooks/events").status_code == 401

    def mine(**filters: str) -> list[dict[str, Any]]:
        response = client.get("/v1/webhooks/events", params=filters, headers=HEADERS)
        assert response.status_code == 200
        return [e for e in response.json() if external in e["dedupe_key"]]

    if hashing_copilot.engine.dialect.name == "sqlite":
        received = mine(source="wecom", status="received")
        assert len(received) == 1 and received[0]["id"] is None  # acked, still in the spool
        assert {"dedupe_key", "status", "attempts", "last_error"} <= set(received[0])
        assert not mine(status="pending")
        stored(hashing_copilot, "default")  # a worker takes the spool in
    # PostgreSQL has no spool: the acked callback is in the inbox at once
    pending = mine(source="wecom", status="pending")
    assert len(pending) == 1 and pending[0]["id"] is not None and pending[0]["attempts"] == 0
    assert not mine(status="received") and not mine(status="dead") and not mine(source="messages")
    assert mine() == pending


def test_events_listing_refuses_an_unknown_status(client: TestClient) -> None:
    response = client.get("/v1/webhooks/events", params={"status": "finished"}, headers=HEADERS)
    assert response.status_code == 422 and "status" in response.text and "received" in response.text


# ---- the generic signed JSON source ------------------------------------------------------------

def signed(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Copilot-Timestamp": stamp, "X-Copilot-Signature": digest, "content-type": "application/json"}


def message_body(**overrides: Any) -> bytes:
    body = {"id": "m-1", "customer_id": "cust01", "staff_id": "staff_xiaoya", "role": "customer", "text": "在吗"}
    body.update(overrides)
    return json.dumps(body, ensure_ascii=False).encode()


def test_signed_message_is_stored_once(client: TestClient, tenant: str, hashing_copilot: Any) -> None:
    body = message_body()
    first = client.post(f"/webhooks/messages/{tenant}", content=body, headers=signed(f"secret-{tenant}", body))
    again = client.post(f"/webhooks/messages/{tenant}", content=body, headers=signed(f"secret-{tenant}", body))
    assert first.status_code == again.status_code == 200
    assert first.json() == {"status": "stored"} and again.json() == {"status": "duplicate"}
    [row] = stored(hashing_copilot, tenant)
    assert row.source == "messages" and row.kind == "text" and row.dedupe_key == "msg:m-1"


def test_message_with_a_bad_signature_or_old_timestamp_is_401(
    client: TestClient, tenant: str, hashing_copilot: Any
) -> None:
    body = message_body()
    wrong = client.post(f"/webhooks/messages/{tenant}", content=body, headers=signed("not-the-secret", body))
    old = client.post(f"/webhooks/messages/{tenant}", content=body,
                      headers=signed(f"secret-{tenant}", body, timestamp=int(time.time()) - 301))
    missing = client.post(f"/webhooks/messages/{tenant}", content=body)
    assert wrong.status_code == old.status_code == missing.status_code == 401
    assert stored(hashing_copilot, tenant) == []


@pytest.mark.parametrize("body", [b"{not json", b'{"id": "x"}', message_body(role="robot"),
                                  message_body(customer_id="../etc")])
def test_malformed_message_is_400(client: TestClient, tenant: str, hashing_copilot: Any, body: bytes) -> None:
    response = client.post(f"/webhooks/messages/{tenant}", content=body, headers=signed(f"secret-{tenant}", body))
    assert response.status_code == 400
    assert stored(hashing_copilot, tenant) == []


def test_message_source_limits_and_unknown_tenant(client: TestClient, tenant: str) -> None:
    big = message_body(text="长" * 20_000)
    assert client.post(f"/webhooks/messages/{tenant}", content=big,
                       headers=signed(f"secret-{tenant}", big)).status_code == 413
    body = message_body()
    assert client.post("/webhooks/messages/nobody", content=body,
                       headers=signed("x", body)).status_code == 404
