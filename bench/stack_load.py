"""The production topology under load: PostgreSQL, a Chroma server, API processes and workers, all on
this machine's loopback (throwaway servers from devtools/services.py, a stub WeCom, the hashing embedder).

Prints three figures:
1. webhook ack p50/p99 at `--rate` callbacks/s spread over 2 API processes (open loop, h11 load generator,
   encrypted add_external_contact callbacks with 10 % WeCom retries; no worker running);
2. worker events/s with 1 and with 2 workers (customer messages that each get a keyword reply through the
   outbox; measured from the first to the last event a worker finished, so process start-up is excluded);
3. suggestions/s with 1 and with 2 API processes (closed loop, `--clients` concurrent callers).

    .venv/bin/python bench/stack_load.py --rate 200 --seconds 10

Every figure shares the machine's cores with PostgreSQL, Chroma and the load generator itself.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from webhook_load import callbacks, load, percentile

from copilot.persistence.engine import make_engine
from copilot.persistence.tables.webhooks import InboxEvent
from devtools.services import ChromaServer, PgServer
from tests.cluster import API_KEY, Cluster, cluster_env, message, run_cli
from tests.wecom_stub import running_stub

SUGGEST = {"customer_id": "cust_003", "staff_id": "staff_xiaoya",
           "messages": [{"role": "customer", "text": "宝宝红屁屁了，纸尿裤有什么推荐的吗？多少钱"}]}


async def acks(ports: list[int], rate: float, seconds: float, warmup: int) -> tuple[list[float], int]:
    """Round-robin the callbacks over the API processes, each at its share of the rate."""
    total = int(rate * seconds)
    start = time.time()
    for port in ports:  # unmeasured: first requests pay for imports and connection set-up
        await load(port, callbacks(warmup, 0.0, rate, start, prefix=f"WARM{port}"), rate, 60.0)
    requests = callbacks(total, 0.1, rate, start)
    shares = [requests[i::len(ports)] for i in range(len(ports))]
    results = await asyncio.gather(*(load(port, share, rate / len(ports), seconds + 30.0)
                                     for port, share in zip(ports, shares, strict=True)))
    return [x for latencies, _ in results for x in latencies], sum(failed for _, failed in results)


def post_messages(bases: list[str], prefix: str, count: int) -> None:
    with httpx.Client(timeout=30) as client:
        for i in range(count):
            body, headers = message(f"{prefix}-{i}", f"{prefix}-cust-{i}")
            response = client.post(f"{bases[i % len(bases)]}/webhooks/messages/default", content=body,
                                   headers=headers)
            response.raise_for_status()


def worker_rate(cluster: Cluster, url: str, prefix: str, count: int, workers: int, limit_s: float) -> float:
    post_messages([cluster.url("api1"), cluster.url("api2")], prefix, count)
    names = [f"{prefix}-worker{i + 1}" for i in range(workers)]
    for name in names:
        cluster.start_worker(name)
    engine = make_engine(url)
    mine = col(InboxEvent.dedupe_key).like(f"msg:{prefix}-%")
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            with Session(engine) as session:
                done = session.exec(select(func.count()).select_from(InboxEvent)
                                    .where(mine, col(InboxEvent.status) == "done")).one()
            if done >= count:
                break
            time.sleep(0.5)
        else:
            raise SystemExit(f"{workers} worker(s) did not finish {count} events in {limit_s:.0f}s")
        with Session(engine) as session:
            first, last = session.exec(select(func.min(InboxEvent.processed_at), func.max(InboxEvent.processed_at))
                                       .where(mine)).one()
    finally:
        engine.dispose()
        for name in names:
            process = cluster.workers.pop(name)
            process.terminate()
            process.wait(timeout=60)
    assert isinstance(first, dt.datetime) and isinstance(last, dt.datetime)
    return (count - 1) / max((last - first).total_seconds(), 1e-6)


def clear_inbox(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(delete(InboxEvent))
    finally:
        engine.dispose()


async def suggestions_per_s(bases: list[str], clients: int, seconds: float) -> float:
    done = 0
    failed = 0
    end = time.monotonic() + seconds

    async def caller(i: int) -> None:
        nonlocal done, failed
        async with httpx.AsyncClient(timeout=60, headers={"X-API-Key": API_KEY}) as client:
            while time.monotonic() < end:
                response = await client.post(f"{bases[i % len(bases)]}/v1/suggestions", json=SUGGEST)
                if response.status_code == 200:
                    done += 1
                else:
                    failed += 1

    for base in bases:  # warm each process up, unmeasured
        async with httpx.AsyncClient(timeout=120, headers={"X-API-Key": API_KEY}) as client:
            for _ in range(3):
                (await client.post(f"{base}/v1/suggestions", json=SUGGEST)).raise_for_status()
    started = time.monotonic()
    await asyncio.gather(*(caller(i) for i in range(clients)))
    if failed:
        print(f"  ({failed} suggestion requests failed)")
    return done / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="callbacks per second over both API processes")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to send callbacks (at most 30)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--events", type=int, default=400, help="customer messages per worker run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent suggestion callers")
    parser.add_argument("--suggest-seconds", type=float, default=20.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stack-bench-") as scratch, running_stub() as stub:
        root = Path(scratch)
        with PgServer(durable=True) as pg, ChromaServer(root / "chroma") as chroma:
            url = pg.create_database("copilot")
            env = cluster_env(root, url, stub.base_url, COPILOT_CHROMA_URL=chroma.url)
            run_cli(env, "db", "upgrade")
            run_cli(env, "ingest")
            cluster = Cluster(env=env, root=root)
            try:
                cluster.start_api("api1")
                cluster.start_api("api2")
                ports = [cluster.ports["api1"], cluster.ports["api2"]]
                latencies, failed = asyncio.run(acks(ports, args.rate, min(args.seconds, 30.0), args.warmup))
                print(f"webhook acks at {args.rate:.0f}/s over 2 API processes (PostgreSQL): "
                      f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
                      f"{len(latencies)} answered, {failed} failed", flush=True)

                clear_inbox(url)  # the welcome callbacks above are not the workload measured next
                one = worker_rate(cluster, url, "w1", args.events, 1, 600)
                two = worker_rate(cluster, url, "w2", args.events, 2, 600)
                print(f"worker events/s: 1 worker {one:.1f}, 2 workers {two:.1f} (×{two / one:.2f})", flush=True)

                single = asyncio.run(suggestions_per_s([cluster.url("api1")], args.clients, args.suggest_seconds))
                double = asyncio.run(suggestions_per_s([cluster.url("api1"), cluster.url("api2")], args.clients,
                                                       args.suggest_seconds))
                print(f"suggestions/s ({args.clients} callers): 1 API process {single:.1f}, "
                      f"2 API processes {double:.1f} (×{double / single:.2f})", flush=True)
            finally:
                cluster.stop()


if __name__ == "__main__":
    main()
