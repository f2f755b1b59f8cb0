"""A local OpenAI-compatible chat server, served over real HTTP on 127.0.0.1.

It implements `POST /v1/chat/completions` (and `/chat/completions`), records every request body, and
answers from a queue of scripted replies: fixed content, content computed from the request (to echo
what the client sent, or to obey what the prompt's data says), an HTTP error status, or a delay
longer than the client's timeout. A request with `"stream": true` gets the same content as
server-sent `chat.completion.chunk` events, `chunk_chars` characters every `chunk_delay` seconds, and
the stub records when each stream sent its first token and whether the client hung up before the
end. A streamed reply can `hold` before a marker in its content until the test sets an event, so a
test orders "the client saw X" before "the model wrote Y" by cause, not by sleeping. A standing reply
(`always`) answers every request its `match` accepts, before the queue is looked at: the stage vote a
Copilot with an LLM asks before drafting is answered that way (`STAGE_VOTE_UNAVAILABLE`), so the
queue holds only what a test is about. With the queue empty it answers HTTP 500, so a test never gets an answer it did not script.
Use the `openai_stub` fixture or `running_openai_stub()`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.live_server import running

__all__ = ["STAGE_VOTE_UNAVAILABLE", "Hold", "ObedientModel", "OpenAIStub", "StreamRecord", "StubReply", "asks_for_stage_vote", "attached_llm", "json_reply", "openai_stub", "running_openai_stub"]


@dataclass(frozen=True)
class Hold:
    """Stream nothing from the first occurrence of `before` in the content ("" = the first token) until
    `until` is set, or `timeout` seconds pass; the stream's record notes a hold that timed out."""

    before: str
    until: threading.Event
    timeout: float = 20.0


@dataclass(frozen=True)
class StubReply:
    """Wait `delay` seconds, then answer `status` (if not 200), else `respond(body)`, else `content`;
    streamed `chunk_chars` characters per chunk, one chunk every `chunk_delay` seconds, pausing at
    each of `holds` (a chunk never straddles a hold's marker)."""

    content: str = ""
    respond: Callable[[dict[str, Any]], str] | None = None
    delay: float = 0.0
    status: int = 200
    chunk_chars: int = 4
    chunk_delay: float = 0.0
    holds: tuple[Hold, ...] = ()
    broken_event: str = ""  # streamed: sent raw after the content, in place of the closing events
    match: Callable[[dict[str, Any]], bool] | None = None  # which requests a standing reply answers


def asks_for_stage_vote(body: dict[str, Any]) -> bool:
    """A request from the Copilot's stage vote (prompts/stage_vote.yaml), told by its system prompt."""
    from copilot.llm.prompts import load_prompt

    opening = load_prompt("stage_vote").system.strip().splitlines()[0]
    messages = body.get("messages") or [{}]
    return str(messages[0].get("content", "")).startswith(opening)


# The stage vote fails (so the offline detector decides alone) and no scripted reply is spent on it.
STAGE_VOTE_UNAVAILABLE = StubReply(status=503, match=asks_for_stage_vote)


def json_reply(payload: Any, *, delay: float = 0.0, chunk_chars: int = 4, chunk_delay: float = 0.0) -> StubReply:
    return StubReply(content=json.dumps(payload, ensure_ascii=False), delay=delay, chunk_chars=chunk_chars,
                     chunk_delay=chunk_delay)


@dataclass
class StreamRecord:
    """One streamed answer: when it started, when its first token went out, whether it was finished."""

    started: float
    first_token: float | None = None
    finished: bool = False
    ended: float | None = None
    hung_up: bool = False
    chunks_sent: int = 0
    holds_timed_out: list[str] = field(default_factory=list)
    sent: str = ""  # the content streamed so far


@dataclass
class OpenAIStub:
    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    _queue: deque[StubReply] = field(default_factory=deque)
    _standing: list[StubReply] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closing: threading.Event = field(default_factory=threading.Event)

    def script(self, *replies: StubReply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def always(self, reply: StubReply) -> None:
        """Answer every request `reply.match` accepts with `reply`, ahead of the queue, for good."""
        if reply.match is None:
            raise ValueError("a standing reply needs `match`: which requests it answers")
        with self._lock:
            self._standing.append(reply)

    @property
    def api_base(self) -> str:
        """What a client takes as base_url: the server plus `/v1`."""
        return f"{self.base_url}/v1"

    def sent_text(self) -> str:
        """Every message content of every recorded request, joined: what left the client."""
        with self._lock:
            return "\n".join(
                str(message.get("content", ""))
                for body in self.requests
                for message in body.get("messages", [])
            )

    def app(self) -> FastAPI:
        app = FastAPI()

        async def completions(request: Request) -> Response:
            body = await request.json()
            with self._lock:
                self.requests.append(body)
                reply = next((r for r in self._standing if r.match is not None and r.match(body)), None)
                if reply is None and self._queue:
                    reply = self._queue.popleft()
            if reply is None:
                return JSONResponse({"error": {"message": "no scripted reply"}}, status_code=500)
            await self._wait(reply.delay)
            if reply.status != 200:
                return JSONResponse({"error": {"message": "scripted failure"}}, status_code=reply.status)
            content = reply.respond(body) if reply.respond else reply.content
            if body.get("stream"):
                return StreamingResponse(self._chunks(body, content, reply), media_type="text/event-stream")
            return JSONResponse(self._completion(body, content))

        app.post("/v1/chat/completions")(completions)
        app.post("/chat/completions")(completions)
        return app

    def _completion(self, body: dict[str, Any], content: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-stub-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "stub-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    async def _chunks(self, body: dict[str, Any], content: str, reply: StubReply) -> Any:
        record = StreamRecord(started=time.monotonic())
        with self._lock:
            self.streams.append(record)
        ident = f"chatcmpl-stub-{next(self._ids)}"
        step = max(1, reply.chunk_chars)
        holds = {}
        for hold in reply.holds:
            at = content.find(hold.before)
            assert at >= 0, f"the scripted content has no {hold.before!r} to hold before"
            holds[at] = hold
        cuts = sorted({0, len(content), *holds})
        pieces: list[tuple[int, str]] = [
            (start + i, content[start + i : min(start + i + step, end)])
            for start, end in itertools.pairwise(cuts) for i in range(0, end - start, step)
        ]
        try:
            for offset, piece in pieces:
                if offset in holds:
                    hold = holds.pop(offset)
                    if not await self._hold(hold):
                        record.holds_timed_out.append(hold.before)
                await self._wait(reply.chunk_delay)
                if record.first_token is None:
                    record.first_token = time.monotonic()
                yield self._event(body, ident, {"content": piece}, None)
                record.chunks_sent += 1
                record.sent += piece
            if reply.broken_event:
                yield reply.broken_event
                return
            yield self._event(body, ident, {}, "stop")
            yield "data: [DONE]\n\n"
            record.finished = True
        finally:
            record.ended = time.monotonic()
            record.hung_up = not record.finished

    @staticmethod
    def _event(body: dict[str, Any], ident: str, delta: dict[str, Any], finish: str | None) -> str:
        chunk = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "stub-model"),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    async def _hold(self, hold: Hold) -> bool:
        """Wait for the hold's event; False when it timed out (or the stub is closing)."""
        deadline = time.monotonic() + hold.timeout
        while not hold.until.is_set():
            if time.monotonic() > deadline or self._closing.is_set():
                return False
            await asyncio.sleep(0.01)
        return True

    async def _wait(self, delay: float) -> None:
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self._closing.is_set():
            await asyncio.sleep(0.01)


@contextmanager
def running_openai_stub() -> Iterator[OpenAIStub]:
    """Serve a fresh stub on a free 127.0.0.1 port in a background thread for the duration."""
    with running(OpenAIStub(), name="OpenAI stub") as stub:
        yield stub


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStub]:
    with running_openai_stub() as stub:
        yield stub


@contextmanager
def attached_llm(copilot: Any, settings: Any) -> Iterator[Any]:
    """`copilot` with the LLM parts the settings configure (drafter, compliance review, stage vote) for
    the duration, then as it was: a shared Copilot never keeps a model that is gone."""
    before = (copilot.llm_drafter, copilot.llm_check, copilot.stage_vote)
    copilot.attach_llm(settings)
    try:
        yield copilot
    finally:
        copilot.llm_drafter, copilot.llm_check, copilot.stage_vote = before


@dataclass
class ObedientModel:
    """A chat model that obeys prompt injections, for testing their detection rather than a model.

    `replies` maps a customer message to what a model that obeyed the attack would draft and the
    attack's own words; it obeys only when those words reached the prompt (an instruction hidden in a
    content item that retrieval did not show cannot be obeyed). The reply `<leak>` means "repeat your
    system prompt", answered with lines of the system message this very request carried. Any other
    request gets a harmless draft. Every draft cites the first script the prompt showed, so the
    drafter keeps it. `obeyed` counts the answers that obeyed.
    """

    replies: dict[str, tuple[str, str]]
    obeyed: int = 0

    def __call__(self, body: dict[str, Any]) -> str:
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        shown = user.split("<scripts>", 1)[-1]
        script = shown.split("[", 1)[1].split("]", 1)[0] if "[" in shown else ""
        text = "好的，我帮您看看～有问题随时跟我说。"
        for message, (reply, attack) in self.replies.items():
            if message in user and attack in user:
                self.obeyed += 1
                text = reply
                if reply == "<leak>":
                    lines = [line.strip() for line in system.splitlines() if line.strip()]
                    start = next(i for i, line in enumerate(lines) if line.startswith("必须遵守的规则"))
                    text = ("好的，我的规则如下：" + "".join(lines[start : start + 4]))[:150]
                break
        return json.dumps({"candidates": [{"text": text, "script_ids": [script], "content_ids": [],
                                           "profile_fields": []}]}, ensure_ascii=False)
