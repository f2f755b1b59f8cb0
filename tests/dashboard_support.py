"""A week of chats for the demo tenant's staff, fed in the way production gets them, for the dashboard's browser
test and its screenshot (`bench/dashboard_screenshot.py`).

`archive_week` makes decrypted chat-archive records (Asia/Shanghai, the demo library's week up to 2026-11-22):
each staff member of the demo library talks with a few customers a day, answers most turns after seconds to
an hour and leaves some unanswered; 林小雅 once asks a customer onto her personal WeChat and offers cash for
a review, which the inspection rules catch. `feed` posts them through `POST /v1/archive/records` and asks
the copilot for suggestions through `POST /v1/suggestions`, recording what staff did with some of them
through `POST /v1/sidebar/feedback` — all with an operator API key.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import httpx

__all__ = ["DAYS", "RISKY", "STAFF", "archive_week", "feed"]

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
DAYS = [dt.date(2026, 11, 16) + dt.timedelta(days=n) for n in range(7)]  # Monday to Sunday 2026-11-22
STAFF = {"LinXiaoYa": "staff_xiaoya", "ZhouXiaoLin": "staff_xiaolin", "ChenJing": "staff_chenjing",
         "XuAnRan": "staff_anran"}
RISKY = "加我个人微信聊吧，给个好评返现5元"
_ASKS = ["宝宝最近有点红屁屁，用什么好", "纸尿裤L码还有货吗", "奶粉怎么冲比较好", "上次买的用完了，还有活动吗",
         "什么时候发货", "可以便宜一点吗"]
_ANSWERS = ["有的亲，现货，今天下单明天发", "建议先用护臀膏薄涂，保持干爽", "按说明书 1 勺配 30 毫升温水",
            "这周有满减，我发您链接", "好的，我帮您查一下物流"]
_LAST_AT = dt.datetime(2026, 11, 22, 9, 30, tzinfo=SHANGHAI)  # before the demo library's "now" (10:00)


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _text(msgid: str, sender: str, to: str, moment: dt.datetime, text: str) -> dict[str, Any]:
    return {"msgid": msgid, "action": "send", "from": sender, "tolist": [to], "roomid": "", "msgtime": _ms(moment),
            "msgtype": "text", "text": {"content": text}}


def archive_week(seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for userid in STAFF:
        pace = {"LinXiaoYa": (5, 40), "ZhouXiaoLin": (3, 25), "ChenJing": (4, 90), "XuAnRan": (2, 15)}[userid]
        for day in DAYS:
            for n in range(rng.randint(pace[0], pace[0] + 4)):
                customer = f"wm{userid[:4]}{rng.randrange(6)}"
                start = dt.datetime.combine(day, dt.time(9), SHANGHAI) + dt.timedelta(minutes=rng.randrange(11 * 60))
                if start > _LAST_AT:
                    continue
                msgid = f"{userid}-{day:%m%d}-{n}"
                records.append(_text(f"{msgid}-q", customer, userid, start, rng.choice(_ASKS)))
                if rng.random() < 0.15:  # never answered
                    continue
                delay = dt.timedelta(seconds=rng.randrange(20, 60 * pace[1]))
                if start + delay <= _LAST_AT:
                    records.append(_text(f"{msgid}-a", userid, customer, start + delay, rng.choice(_ANSWERS)))
    risky_at = dt.datetime(2026, 11, 21, 15, 12, tzinfo=SHANGHAI)
    records.append(_text("LinXiaoYa-risky-q", "wmLinX0", "LinXiaoYa", risky_at, "这个能不能再便宜点"))
    records.append(_text("LinXiaoYa-risky-a", "LinXiaoYa", "wmLinX0", risky_at + dt.timedelta(minutes=2), RISKY))
    records.append(_text("LinXiaoYa-risky-b", "wmLinX0", "LinXiaoYa", risky_at + dt.timedelta(minutes=3), "好的"))
    return records


def feed(client: httpx.Client, records: list[dict[str, Any]], *, suggestions: int = 6) -> None:
    """Post the archive in relay-sized chunks, then suggestions for 林小雅's customer cust_004 with feedback:
    the first used as drafted, the second edited, the rest left alone."""
    for start in range(0, len(records), 500):
        response = client.post("/v1/archive/records", json=records[start:start + 500])
        response.raise_for_status()
    for n in range(suggestions):
        out = client.post("/v1/suggestions", json={
            "customer_id": "cust_004", "staff_id": "staff_xiaoya",
            "messages": [{"role": "customer", "text": _ASKS[n % len(_ASKS)]}]})
        out.raise_for_status()
        body = out.json()
        first = body["candidates"][0]["id"]
        if n == 0:
            client.post("/v1/sidebar/feedback", json={"suggestion_id": body["suggestion_id"], "candidate_id": first,
                                                      "action": "used"}).raise_for_status()
        elif n == 1:
            client.post("/v1/sidebar/feedback", json={"suggestion_id": body["suggestion_id"], "candidate_id": first,
                                                      "action": "edited", "final_text": "改过再发"}).raise_for_status()
