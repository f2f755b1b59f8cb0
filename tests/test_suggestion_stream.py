"""Progressive suggestions: `POST /v1/suggestions` with `Accept: text/event-stream`, over a real socket,
against an OpenAI-compatible stub that streams its answer slowly.

Order is proved by cause, not by timing: the stub holds its answer at a marker until the client has
read what must come first (`Hold`). A server that buffered its events would leave the client with
nothing to read, the hold would time out, and the test fails; a loaded machine only makes it slower.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import Session, select

from api.app import create_app
from copilot.config import Settings
from copilot.llm.client import model_requests_allowed
from copilot.persistence.tables.approvals import ApprovalItem
from copilot.persistence.tables.conversations import CandidateRow, FlagRow, SuggestionRow
from tests.live_server import serve_in_thread
from tests.openai_stub import STAGE_VOTE_UNAVAILABLE, Hold, OpenAIStub, StubReply, attached_llm, openai_stub

__all__ = ["openai_stub"]

KEY = "stream-test-key"
HEADERS = {"X-API-Key": KEY}
STREAM = {**HEADERS, "Accept": "text/event-stream"}


@dataclass
class Event:
    kind: str
    data: dict[str, Any]
    at: float  # time.monotonic() when the event was read


def read_events(response: httpx.Response, stop_after: int | None = None) -> Iterator[Event]:
    kind, data = "", ""
    seen = 0
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and kind:
            yield Event(kind, json.loads(data), time.monotonic())
            kind, data = "", ""
            seen += 1
            if stop_after is not None and seen >= stop_after:
                return


def answer_citing_shown(n: int, *, extra: str = "") -> Any:
    """A model that writes `n` drafts, each citing a script the prompt showed it."""

    def respond(body: dict[str, Any]) -> str:
        user = body["messages"][-1]["content"]
        ids = re.findall(r"\[(S-[A-Z]+-\d+)\]", user)
        assert ids, "the prompt showed no script"
        drafts = [
            {"text": f"第{i + 1}条：宝宝用着舒服最重要，有问题随时跟我说～{extra}", "script_ids": [ids[i % len(ids)]],
             "content_ids": [], "profile_fields": []}
            for i in range(n)
        ]
        return json.dumps({"candidates": drafts}, ensure_ascii=False)

    return respond


@pytest.fixture
def live(hashing_copilot: Any, openai_stub: OpenAIStub, tmp_path: Any) -> Iterator[str]:
    """The app over the demo library with the LLM drafter wired from settings, served on a socket."""
    settings = Settings(_env_file=None, data_dir=tmp_path, api_keys=[SecretStr(KEY)],
                        llm_base_url=openai_stub.api_base, llm_model="stub-model", llm_mask_pii=False,
                        llm_timeout_s=10)
    openai_stub.always(STAGE_VOTE_UNAVAILABLE)
    with attached_llm(hashing_copilot, settings), model_requests_allowed(True), serve_in_thread(
        create_app(settings, copilot=hashing_copilot), name="copilot", lifespan="on"
    ) as url:
        yield url


def body(customer: str, staff: str, text: str) -> dict[str, Any]:
    return {"customer_id": customer, "staff_id": staff, "messages": [{"role": "customer", "text": text}]}


def test_script_drafts_arrive_before_the_models_first_token_and_llm_drafts_one_by_one(
    live: str, openai_stub: OpenAIStub
) -> None:
    script_drafts_read, second_llm_draft_read = threading.Event(), threading.Event()
    openai_stub.script(StubReply(respond=answer_citing_shown(3), chunk_chars=6, chunk_delay=0.01, holds=(
        Hold("", until=script_drafts_read), Hold("第3条", until=second_llm_draft_read))))

    events: list[Event] = []
    with httpx.Client(base_url=live, timeout=30) as client, client.stream(
        "POST", "/v1/suggestions", headers=STREAM, json=body("cust_003", "staff_xiaoya", "纸尿裤有什么推荐吗？")
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in read_events(response):
            events.append(event)
            read = [e.data["drafter"] for e in events if e.kind == "candidate"]
            if read.count("script") == 3:
                script_drafts_read.set()  # only now may the model write its first token
            if read.count("llm") == 2:
                second_llm_draft_read.set()  # only now may it write the third draft

    kinds = [e.kind for e in events]
    assert kinds[0] == "analysis" and kinds[-1] == "done"
    candidates = [e for e in events if e.kind == "candidate"]
    script = [e for e in candidates if e.data["drafter"] == "script"]
    llm = [e for e in candidates if e.data["drafter"] == "llm"]
    assert len(script) == 3 and len(llm) == 3
    [stream] = openai_stub.streams
    deadline = time.monotonic() + 10
    while stream.ended is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the stub's server notices the closed request on its own thread, a moment later
    assert stream.first_token is not None and stream.ended is not None
    # No hold ran out: the analysis and every script draft were read before the model wrote its first
    # token, and the first two LLM drafts before it wrote any of the third …
    assert stream.holds_timed_out == []
    assert max(e.at for e in [events[0], *script]) < stream.first_token
    # … so each LLM draft was handed out as soon as it was complete, not at the end of the answer.
    assert llm[0].at < llm[1].at < llm[2].at <= events[-1].at
    done = events[-1].data
    assert done["suggestion_id"] == events[0].data["suggestion_id"]
    assert [c["id"] for c in done["candidates"]] == [e.data["id"] for e in candidates]
    assert done["candidates"] == [e.data for e in candidates]  # the same candidate objects as the events


def test_a_newer_message_cancels_the_running_stream_and_stops_the_model(
    live: str, openai_stub: OpenAIStub, hashing_copilot: Any
) -> None:
    second_done = threading.Event()
    openai_stub.script(
        # The first answer stops in the middle of its first draft until the second stream is done: any
        # LLM draft the first stream hands out, or an answer the model finishes, is a failed cancellation.
        StubReply(respond=answer_citing_shown(3), chunk_chars=2, chunk_delay=0.01,
                  holds=(Hold('"script_ids"', until=second_done, timeout=60),)),
        StubReply(respond=answer_citing_shown(3), chunk_chars=40),
    )
    first: list[Event] = []
    client = httpx.Client(base_url=live, timeout=30)

    def read_first() -> None:
        with client.stream("POST", "/v1/suggestions", headers=STREAM,
                           json=body("cust_003", "staff_xiaoya", "纸尿裤有什么推荐吗？")) as response:
            first.extend(read_events(response))

    reader = threading.Thread(target=read_first)
    reader.start()
    deadline = time.monotonic() + 60
    while not openai_stub.streams or openai_stub.streams[0].first_token is None:
        assert time.monotonic() < deadline, "the first stream never reached the model"
        time.sleep(0.02)
    with client.stream("POST", "/v1/suggestions", headers=STREAM,
                       json=body("cust_003", "staff_xiaoya", "M码还是L码？")) as response:
        second = list(read_events(response))
    second_done.set()
    reader.join(timeout=20)
    client.close()

    assert first[-1].kind == "cancelled" and second[-1].kind == "done"
    assert not any(e.kind == "candidate" and e.data["drafter"] == "llm" for e in first)
    stale_stream = openai_stub.streams[0]
    while stale_stream.ended is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the stub notices the hang-up at its next chunk
    assert stale_stream.hung_up  # the model stopped writing the stale answer
    with Session(hashing_copilot.engine) as session:
        stale = session.get(SuggestionRow, first[0].data["suggestion_id"])
    assert stale is not None and stale.fallback_reason == "cancelled after 0 llm candidate(s)"


def stored(engine: Any, suggestion_id: str) -> dict[str, Any]:
    with Session(engine) as session:
        row = session.get(SuggestionRow, suggestion_id)
        cands = session.exec(select(CandidateRow).where(CandidateRow.suggestion_id == suggestion_id)
                             .order_by(CandidateRow.rank)).all()
        flags = session.exec(select(FlagRow).where(FlagRow.suggestion_id == suggestion_id)).all()
        items = session.exec(select(ApprovalItem).where(ApprovalItem.suggestion_id == suggestion_id)).all()
    assert row is not None
    by_id = {c.id: c.rank for c in cands}
    return {
        "suggestion": (row.drafter, row.prompt_name, row.prompt_version, row.fallback_reason, row.stage),
        "candidates": [(c.rank, c.text, c.drafter, c.citations, c.risk, c.requires_approval) for c in cands],
        "flags": sorted((by_id.get(f.candidate_id or "", -1), f.category, f.rule_id, f.span_start, f.span_end)
                        for f in flags),
        "approvals": sorted((by_id[i.source_id], i.text, i.risk) for i in items),
    }


def test_the_stored_suggestion_is_the_same_whichever_route_asked(
    live: str, openai_stub: OpenAIStub, hashing_copilot: Any
) -> None:
    # One LLM draft promises what the law forbids, so approvals are part of what is compared.
    reply = answer_citing_shown(2, extra="这款100%有效，保证治好")
    openai_stub.script(StubReply(respond=reply, chunk_chars=5), StubReply(respond=reply, chunk_chars=5))
    # Two staff members with no history with this customer, so both routes start from the same state.
    with httpx.Client(base_url=live, timeout=30) as client:
        as_json = client.post("/v1/suggestions", headers=HEADERS, json=body("cust_001", "s-json-1", "宝宝红屁屁了怎么办"))
        with client.stream("POST", "/v1/suggestions", headers=STREAM,
                           json=body("cust_001", "s-sse-1", "宝宝红屁屁了怎么办")) as response:
            events = list(read_events(response))
    assert as_json.status_code == 200
    json_answer, done = as_json.json(), events[-1].data
    a, b = stored(hashing_copilot.engine, json_answer["suggestion_id"]), stored(hashing_copilot.engine,
                                                                               done["suggestion_id"])
    assert a == b
    assert a["approvals"] and any(c[2] == "llm" for c in a["candidates"])

    def shape(out: dict[str, Any]) -> list[Any]:
        return [{k: v for k, v in c.items() if k != "id"} for c in out["candidates"]]

    assert shape(json_answer) == shape(done)


def test_without_an_llm_the_stream_carries_the_json_answer(hashing_copilot: Any, tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    settings = Settings(_env_file=None, data_dir=tmp_path, api_keys=[SecretStr(KEY)])
    assert hashing_copilot.llm_drafter is None
    with TestClient(create_app(settings, copilot=hashing_copilot)) as client:
        as_json = client.post("/v1/suggestions", headers=HEADERS, json=body("cust_002", "s-json-2", "宝宝晚上总是哭闹")).json()
        with client.stream("POST", "/v1/suggestions", headers=STREAM,
                           json=body("cust_002", "s-sse-2", "宝宝晚上总是哭闹")) as response:
            events = list(read_events(response))
    assert [e.kind for e in events] == ["analysis", *["candidate"] * len(as_json["candidates"]), "done"]
    done = events[-1].data
    strip = lambda out: [{k: v for k, v in c.items() if k != "id"} for c in out["candidates"]]  # noqa: E731
    assert strip(done) == strip(as_json)
    assert {k: done[k] for k in ("stage", "intent", "customer_message_flags", "drafter_note")} == {
        k: as_json[k] for k in ("stage", "intent", "customer_message_flags", "drafter_note")}


def test_stream_errors_before_the_first_event_are_http_errors(hashing_copilot: Any, tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    settings = Settings(_env_file=None, data_dir=tmp_path, api_keys=[SecretStr(KEY)])
    with TestClient(create_app(settings, copilot=hashing_copilot)) as client:
        missing = client.post("/v1/suggestions", headers=STREAM, json=body("cust_nobody", "s1", "在吗"))
    assert missing.status_code == 404 and "cust_nobody" in missing.json()["detail"]
