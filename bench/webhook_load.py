"""Load the WeCom callback endpoint and report ack latency and worker throughput.

Starts the app with uvicorn on 127.0.0.1 (hashing embedder, throwaway database), a stub WeCom server and
one worker; sends encrypted `add_external_contact` callbacks (each with a WelcomeCode, some delivered
twice as WeCom retries do) at a fixed rate, open loop, then waits for the worker to finish. Prints p50/p99
ack latency, events processed per second and the callback-to-welcome latency against the 20 s limit.

    .venv/bin/python bench/webhook_load.py --rate 200 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import h11
import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from copilot.clock import utcnow
from tests.wecom_stub import CORP_ID, encrypted_callback, event_xml, running_stub, webhook_config

REPO = Path(__file__).resolve().parent.parent


def build_copilot(root: Path) -> Any:
    from copilot.compliance import ComplianceChecker
    from copilot.embedding.embedders import HashingEmbedder
    from copilot.persistence.engine import make_engine
    from copilot.persistence.schema import upgrade
    from copilot.retrieval.vectorstore import ChromaStore
    from copilot.service import Copilot

    embedder = HashingEmbedder()
    engine = make_engine(f"sqlite:///{root / 'bench.db'}")
    upgrade(engine)
    copilot = Copilot(engine=engine, embedder=embedder,
                      store=ChromaStore(embedder, root / "chroma"), compliance=ComplianceChecker())
    copilot.ingest(REPO / "knowledge", tenant="default")
    return copilot


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_copilot(root: Path, role: str) -> Any:
    """A Copilot over the bench database; each process gets its own (empty) vector store directory."""
    from copilot.compliance import ComplianceChecker
    from copilot.embedding.embedders import HashingEmbedder
    from copilot.persistence.engine import make_engine
    from copilot.retrieval.vectorstore import ChromaStore
    from copilot.service import Copilot

    embedder = HashingEmbedder()
    return Copilot(engine=make_engine(f"sqlite:///{root / 'bench.db'}"), embedder=embedder,
                   store=ChromaStore(embedder, root / f"chroma-{role}"), compliance=ComplianceChecker())


def run_server(root: Path, port: int, stub_url: str) -> None:
    from api.app import create_app, settle_heap
    from copilot.config import Settings

    app = create_app(Settings(data_dir=root), copilot=child_copilot(root, "server"))
    app.state.webhook_config = webhook_config(stub_url)
    settle_heap()  # as a deployed app does once its Copilot is built
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def run_worker(root: Path, stub_url: str) -> None:
    from copilot.config import Settings
    from copilot.wecom.automation.worker import Worker, yield_cpu

    config = webhook_config(stub_url, autoreply_path=REPO / "knowledge" / "autoreply.yaml")
    yield_cpu(Settings(data_dir=root))  # as `copilot worker` does
    worker = Worker(child_copilot(root, "worker"), config, batch=50)
    asyncio.run(worker.run_forever(asyncio.Event()))  # ended by the parent's SIGTERM


def spawn(role: str, root: Path, stub_url: str, port: int = 0) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--role", role, "--root", str(root), "--stub", stub_url,
                             "--port", str(port)], cwd=REPO)


def wait_ready(base_url: str, child: subprocess.Popen[bytes], limit_s: float = 180.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit("the app process exited during start-up")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the app did not start in time")


def callbacks(count: int, duplicates: float, rate: float, start: float,
              prefix: str = "BENCH") -> list[tuple[dict[str, str], str]]:
    """Pre-encrypted requests, so the load generator spends no time on crypto; CreateTime is the planned
    send time, as WeCom stamps an event when it happens."""
    out: list[tuple[dict[str, str], str]] = []
    for i in range(count):
        if out and random.random() < duplicates:
            out.append(random.choice(out[-20:]))  # a WeCom retry of a recent callback
            continue
        plain = event_xml(ToUserName=CORP_ID, FromUserName="sys", CreateTime=int(start + i / rate),
                          MsgType="event", Event="change_external_contact", ChangeType="add_external_contact",
                          UserID="LinXiaoYa", ExternalUserID=f"wm{prefix}{i:06d}", State="spring-campaign",
                          WelcomeCode=f"{prefix}-{i:06d}")
        out.append(encrypted_callback(plain, nonce=f"n{i}"))
    return out


class Connection:
    """One keep-alive HTTP/1.1 connection driven with h11. The load generator shares two cores with the
    server, the worker and the stub, so it must cost far less per request than the server does; an
    httpx client spent more CPU per request than the callback itself and capped the rate near 60/s."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.http = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, target: str, body: bytes) -> int:
        headers = [("host", "127.0.0.1"), ("content-type", "text/xml"), ("content-length", str(len(body)))]
        self.writer.write(self.http.send(h11.Request(method="POST", target=target, headers=headers)))
        self.writer.write(self.http.send(h11.Data(data=body)) + self.http.send(h11.EndOfMessage()))
        await self.writer.drain()
        status = 0
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                self.http.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                self.http.start_next_cycle()
                return status

    def close(self) -> None:
        self.writer.close()


async def load(port: int, requests: list[tuple[dict[str, str], str]], rate: float, bound_s: float,
               connections: int = 32) -> tuple[list[float], int]:
    """Open loop: request i is due at i/rate whatever happened to the others, and its latency counts from
    that moment, so time spent waiting for a free connection is included. Answers later than `bound_s`
    after the start are abandoned and counted as failures, so the bench always ends."""
    latencies: list[float] = []
    ok = 0
    due_queue: asyncio.Queue[tuple[float, str, bytes] | None] = asyncio.Queue()

    async def sender() -> None:
        nonlocal ok
        connection = await Connection.open(port)
        try:
            while (item := await due_queue.get()) is not None:
                due, target, body = item
                try:
                    status = await connection.post(target, body)
                except (ConnectionError, h11.ProtocolError):
                    connection.close()
                    connection = await Connection.open(port)
                    continue
                latencies.append(time.perf_counter() - due)
                ok += status == 200
        finally:
            connection.close()

    senders = [asyncio.create_task(sender()) for _ in range(connections)]
    prepared = [(f"/webhooks/wecom/default?{urlencode(params)}", body.encode()) for params, body in requests]
    t0 = time.perf_counter()
    for i, (target, body) in enumerate(prepared):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due_queue.put_nowait((due, target, body))
    for _ in senders:
        due_queue.put_nowait(None)
    _, late = await asyncio.wait(senders, timeout=max(bound_s - (time.perf_counter() - t0), 1.0))
    for task in late:
        task.cancel()
    return latencies, len(requests) - ok


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="callbacks per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to send (at most 30)")
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of requests that are retries")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured callbacks sent first")
    parser.add_argument("--role", choices=["bench", "server", "worker"], default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stub", default="", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        run_server(args.root, args.port, args.stub)
        return
    if args.role == "worker":
        run_worker(args.root, args.stub)
        return
    bench(args.rate, min(args.seconds, 30.0), args.duplicates, args.drain_timeout, args.warmup)


def bench(rate: float, seconds: float, duplicates: float, drain_timeout: float, warmup: int) -> None:
    from sqlmodel import Session, col, func, select

    from copilot.persistence.tables.webhooks import InboxEvent, OutboxMessage

    with tempfile.TemporaryDirectory() as tmp, running_stub() as stub:
        root = Path(tmp)
        print("building the bench database (hashing embedder) ...", flush=True)
        engine = build_copilot(root).engine
        port = free_port()
        server = spawn("server", root, stub.base_url, port)
        worker = spawn("worker", root, stub.base_url)
        try:
            wait_ready(f"http://127.0.0.1:{port}", server)
            # Connections, caches and first-call paths warm up on traffic that is not measured.
            warm = callbacks(warmup, 0.0, rate, time.time(), prefix="WARM")
            asyncio.run(load(port, warm, rate, bound_s=60))
            time.sleep(2.0)
            requests = callbacks(int(rate * seconds), duplicates, rate, time.time() + 1.0)
            unique = len({body for _, body in requests}) + len(warm)
            print(f"sending {len(requests)} callbacks ({unique - len(warm)} distinct) at {rate:.0f}/s "
                  f"after {len(warm)} to warm up ...", flush=True)
            started = utcnow()
            latencies, failures = asyncio.run(load(port, requests, rate, bound_s=seconds * 2 + 30))
            sending_s = (utcnow() - started).total_seconds()
            deadline = time.monotonic() + drain_timeout
            done = 0
            while time.monotonic() < deadline:
                with Session(engine) as session:
                    done = session.exec(select(func.count()).select_from(InboxEvent)
                                        .where(col(InboxEvent.status).in_(["done", "failed", "dead"]))).one()
                if done >= unique:
                    break
                time.sleep(0.2)
        finally:
            for child in (server, worker):
                child.terminate()
            for child in (server, worker):
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
        with Session(engine) as session:
            events = session.exec(select(InboxEvent)).all()
            sent = session.exec(select(OutboxMessage).where(OutboxMessage.status == "sent")).all()
        received = {e.id: e.received_at for e in events}
        welcome = [(m.sent_at - received[m.event_id]).total_seconds() for m in sent
                   if m.sent_at is not None and m.event_id in received]
        first = min((e.received_at for e in events), default=started)
        last = max((e.processed_at for e in events if e.processed_at), default=first)
        span = max((last - first).total_seconds(), 1e-6)
        print(f"sent for         {sending_s:.1f} s; acked {len(latencies) / sending_s:.1f}/s; "
              f"non-200 or abandoned requests: {failures}")
        if latencies:
            print(f"ack latency      p50 {percentile(latencies, 0.5) * 1000:.1f} ms   "
                  f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms   max {max(latencies) * 1000:.1f} ms")
        print(f"stored events    {len(events)} (distinct callbacks {unique}, warm-up included)")
        print(f"worker           {done} events in {span:.1f} s = {done / span:.1f} events/s")
        attempts = Counter(e.attempts for e in events)
        errors = Counter((e.last_error or "")[:80] for e in events if e.last_error)
        print(f"attempts         {dict(sorted(attempts.items()))}; errors {errors.most_common(3)}")
        print(f"welcomes sent    {len(sent)}   stub send_welcome_msg calls "
              f"{len(stub.calls_to('/cgi-bin/externalcontact/send_welcome_msg'))}")
        if welcome:
            print(f"callback→welcome p50 {statistics.median(welcome):.2f} s   p99 {percentile(welcome, 0.99):.2f} s"
                  f"   over 20 s: {sum(1 for w in welcome if w > 20)}")


if __name__ == "__main__":
    main()
