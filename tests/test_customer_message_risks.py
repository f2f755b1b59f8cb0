"""Risks in what a customer sends (spam ads, review farming, fraud, gambling, porn) reach the staff member as
warnings on the customer's message, never hold the staff member's reply, and are stored as flags of that
message so they can be counted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import Session, select

from api.app import create_app
from copilot.config import Settings
from copilot.knowledge.loader import load_library
from copilot.persistence.tables.conversations import FlagRow
from tests.conftest import KNOWLEDGE

KEY = "customer-risk-key-0123456789"
HEADERS = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def client(hashing_copilot: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("customer-risk"), api_keys=[SecretStr(KEY)])
    with TestClient(create_app(settings, copilot=hashing_copilot)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("宝妈兼职日结，在家动动手指就能赚，有兴趣私我", "spam_ad"),
        ("好评员做不做？一单8块，做完就结", "review_cashback"),
        ("我是快递理赔专员，您把手机收到的验证码发我一下就能退款", "fraud"),
        ("新人注册就送88彩金，百家乐真人发牌，流水打够就能提", "sensitive_gambling"),
        ("看片进群，各种无码资源，懂的都懂", "sensitive_porn"),
    ],
)
def test_customer_risks_are_warnings_that_do_not_hold_the_reply(
    client: TestClient, hashing_copilot: Any, text: str, category: str
) -> None:
    customer = next(c for c in load_library(KNOWLEDGE).customers if c.chat)
    body = {"customer_id": customer.id, "staff_id": customer.staff_id or "staff",
            "messages": [{"role": "customer", "text": text}]}
    analysis = client.post("/v1/analyze", json=body, headers=HEADERS).json()
    out = client.post("/v1/suggestions", json=body, headers=HEADERS).json()
    for response in (analysis, out):
        flags = response["customer_message_flags"]
        assert category in {f["category"] for f in flags}
        assert {f["severity"] for f in flags} == {"warn"} and response["customer_message_risk"] == "low"
    # The staff member's candidates are judged on their own text only: the customer's flags hold none of them (a
    # message out of the shop's scope gets no sales drafts at all).
    candidates = out["candidates"]
    assert candidates or out["message_scope"]["out_of_scope"]
    assert not any(c["requires_approval"] for c in candidates if not c["compliance"]["flags"])
    # The same words drafted by staff would need review (spam ads are a warning in any case).
    as_staff = client.post("/v1/compliance/check", json={"text": text}, headers=HEADERS).json()
    assert as_staff["risk"] in ({"low"} if category == "spam_ad" else {"review", "block"})
    with Session(hashing_copilot.engine) as session:
        rows = session.exec(select(FlagRow).where(FlagRow.suggestion_id == out["suggestion_id"],
                                                  FlagRow.candidate_id == None)).all()  # noqa: E711
    assert category in {r.category for r in rows} and {r.severity for r in rows} == {"warn"}
