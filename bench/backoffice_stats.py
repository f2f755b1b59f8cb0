"""Back-office scale: import a generated chat archive of 1,000 staff × 30 days (≥ 1M records), then time the
statistics (target: under 2 s).

    python bench/backoffice_stats.py                                  # 1,000 staff, 30 days, ~35 records a day each
    python bench/backoffice_stats.py --staff 100 --days 7             # smaller
    python bench/backoffice_stats.py --database-url postgresql+psycopg://user:pass@127.0.0.1/bench

The archive is generated deterministically (seed 7) as a JSONL file: 1v1 chats where customers write one or two
messages and staff answer after seconds to hours (some never), day and night, with non-text messages, risky
staff texts, recalls and repeated deliveries. Staff (10 teams), a library folder with `inspection.yaml`, five
library customers per staff member with orders, and the copilot in use (10 suggestions per staff member and day,
three in five with feedback, one held draft decided per day, three revisit items per day) are set up first. It
prints the import rate (`copilot archive import`'s path: validate, store, inspect) and the time of each
statistics query, through `BackOffice` and through the HTTP route, in wall-clock and CPU seconds (the machine may
be shared), and what summing the daily rollups from scratch costs; figures only, nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import func, insert, text
from sqlmodel import Session, select

from copilot.backoffice import BackOffice
from copilot.backoffice.rollup import roll_up, roll_up_suggestions
from copilot.compliance import ComplianceChecker
from copilot.compliance.tenants import TenantCompliance
from copilot.persistence.engine import make_engine
from copilot.persistence.repository import Repository
from copilot.persistence.schema import create_schema
from copilot.persistence.tables.approvals import ApprovalItem
from copilot.persistence.tables.backoffice import MARK_ALL_SUGGESTIONS, ChatDaily, ChatTurn, InspectionHit
from copilot.persistence.tables.conversations import MessageRow, SidebarFeedback, SuggestionRow
from copilot.persistence.tables.library import CustomerRow, StaffRow, Tenant
from copilot.persistence.tables.revisits import RevisitItem

TENANT = "bench"
START = dt.date(2026, 10, 1)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
RULES = Path(__file__).resolve().parent.parent / "knowledge" / "inspection.yaml"
ASKS = ["这个多少钱？", "有货吗", "怎么下单呀", "再看看吧", "宝宝最近睡得不好", "收到了谢谢", "在吗", "能便宜点吗",
        "什么时候发货", "奶粉怎么冲比较好", "纸尿裤L码还有吗", "优惠券怎么用"]
ANSWERS = ["您好，有货的，今天下单明天发", "这款现在活动价 129 元一包", "可以的，我帮您备注一下", "宝宝几个月啦？",
           "好的，有问题随时找我~", "优惠券在下单页自动抵扣", "L码有现货，需要几包？", "建议 70 度以下温水冲调"]
RISKY = ["加我个人微信聊，给你好评返现5元", "加我私人微信，下单更方便", "这个奶粉保证宝宝不生病", "内部价给你，别告诉别人"]
OTHER_TYPES = ["image", "voice", "emotion", "file", "link", "weapp"]


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _record(msgid: str, sender: str, to: str, moment: dt.datetime, rng: random.Random, text: str) -> dict[str, Any]:
    record: dict[str, Any] = {"msgid": msgid, "action": "send", "from": sender, "tolist": [to], "roomid": "",
                              "msgtime": _ms(moment)}
    if rng.random() < 0.08:
        kind = rng.choice(OTHER_TYPES)
        record["msgtype"] = kind
        record[kind] = {"md5sum": "0" * 32, "sdkfileid": f"f{msgid}"}
    else:
        record["msgtype"] = "text"
        record["text"] = {"content": text}
    return record


def generate(path: Path, *, staff: int, days: int, per_day: int, seed: int = 7) -> int:
    """Write the archive, day by day in time order; returns how many records it holds."""
    rng = random.Random(seed)
    written = 0
    serial = 0
    with path.open("w", encoding="utf-8") as out:
        for offset in range(days):
            day = START + dt.timedelta(days=offset)
            records: list[dict[str, Any]] = []
            for s in range(staff):
                user = f"u{s:04d}"
                count = 0
                while count < per_day:
                    customer = f"wm{s:04d}c{rng.randrange(40):02d}"
                    minute = rng.randrange(8 * 60, 22 * 60 + 30)
                    moment = dt.datetime.combine(day, dt.time(), SHANGHAI) + dt.timedelta(minutes=minute,
                                                                                          seconds=rng.randrange(60))
                    for _ in range(rng.choice((1, 1, 2, 3))):
                        serial += 1
                        records.append(_record(f"m{serial}", customer, user, moment, rng, rng.choice(ASKS)))
                        moment += dt.timedelta(seconds=rng.randrange(5, 90))
                        count += 1
                    roll = rng.random()
                    if roll < 0.05:
                        continue  # never answered
                    wait = (rng.randrange(10, 170) if roll < 0.7 else rng.randrange(180, 1200) if roll < 0.9
                            else rng.randrange(1200, 7200))
                    moment += dt.timedelta(seconds=wait)
                    for _ in range(rng.choice((1, 1, 2))):
                        serial += 1
                        text = rng.choice(RISKY) if rng.random() < 0.02 else rng.choice(ANSWERS)
                        records.append(_record(f"m{serial}", user, customer, moment, rng, text))
                        count += 1
                        if rng.random() < 0.01:
                            records.append({"msgid": f"r{serial}", "action": "recall", "from": user,
                                            "tolist": [customer], "roomid": "", "msgtype": "revoke",
                                            "msgtime": _ms(moment + dt.timedelta(seconds=30)),
                                            "revoke": {"pre_msgid": f"m{serial}"}})
                        moment += dt.timedelta(seconds=rng.randrange(5, 60))
            records.sort(key=lambda r: r["msgtime"])
            for record in records:
                line = json.dumps(record, ensure_ascii=False)
                out.write(line + "\n")
                written += 1
                if rng.random() < 0.005:  # the relay delivered it again
                    out.write(line + "\n")
                    written += 1
    return written


def setup(engine: Any, library: Path, *, staff: int, days: int, suggestions_per_day: int, seed: int = 7) -> None:
    """Staff in ten teams, the tenant's library folder, customers with orders and suggestions with feedback."""
    rng = random.Random(seed)
    library.mkdir(parents=True, exist_ok=True)
    (library / "inspection.yaml").write_text(RULES.read_text(encoding="utf-8"), encoding="utf-8")
    with Session(engine) as session:
        session.add(Tenant(id=TENANT, name=TENANT))
        session.commit()
    Repository(engine).set_library_path(TENANT, library)
    people = [{"tenant_id": TENANT, "id": f"staff{s:04d}", "name": f"员工{s:04d}", "wecom_userid": f"u{s:04d}",
               "timezone": "Asia/Shanghai", "content_hash": ""} for s in range(staff)]
    for person, s in zip(people, range(staff), strict=True):
        if "team" in StaffRow.model_fields:
            person["team"] = f"team{s % 10}"
    customers, suggestions, feedback = [], [], []
    for s in range(staff):
        for c in range(0, 40, 8):  # five of each staff member's forty customers are in the library
            cid = f"lib{s:04d}c{c:02d}"
            orders = [{"id": f"{cid}-o{n}", "date": (START + dt.timedelta(days=rng.randrange(days + 7))).isoformat(),
                       "status": "delivered", "items": [{"sku": "DP-L", "name": "纸尿裤 L码", "price": 129}]}
                      for n in range(rng.choice((0, 1, 2)))]
            customers.append({"tenant_id": TENANT, "id": cid, "name": f"客户{cid}", "staff_id": f"staff{s:04d}",
                              "segment": "default", "source": "library", "content_hash": "", "source_file": "",
                              "source_line": 0, "updated_at": dt.datetime.now(dt.UTC),
                              "profile": {"id": cid, "name": f"客户{cid}", "orders": orders,
                                          "attributes": {"external_userid": f"wm{s:04d}c{c:02d}"}}})
    # The copilot in use: suggestions with feedback, held drafts decided by a supervisor, revisit items.
    approvals, revisits = [], []
    for s in range(staff):
        for day in range(days):
            base = dt.datetime.combine(START + dt.timedelta(days=day), dt.time(1), dt.UTC)
            for n in range(suggestions_per_day):
                sid = f"sg{s:04d}d{day:02d}n{n:02d}"
                cid = f"lib{s:04d}c{rng.randrange(0, 40, 8):02d}"
                created = base + dt.timedelta(minutes=rng.randrange(12 * 60))
                suggestions.append({"id": sid, "tenant_id": TENANT, "customer_id": cid, "staff_id": f"staff{s:04d}",
                                    "stage": "recommend", "stage_confidence": 0.8, "stage_reasons": [],
                                    "intent_score": 50, "intent_level": rng.choice(("high", "medium", "low")),
                                    "intent_factors": [], "drafter": "script", "rules_version": "",
                                    "latency_ms": 1.0, "created_at": created})
                action = rng.choice(("used", "used", "edited", None, None))
                if action:
                    feedback.append({"tenant_id": TENANT, "suggestion_id": sid, "candidate_id": "c", "action": action,
                                     "created_at": created + dt.timedelta(seconds=rng.randrange(5, 120))})
                if n == 0:
                    approvals.append({"id": f"ap{sid}", "tenant_id": TENANT, "status": "approved",
                                      "source_kind": "candidate", "source_id": sid, "suggestion_id": sid,
                                      "customer_id": cid, "staff_id": f"staff{s:04d}", "text": "内部价给你",
                                      "final_text": "内部价给你", "risk": "high", "categories": [], "flags": [],
                                      "reviewer": "sup", "created_at": created,
                                      "decided_at": created + dt.timedelta(seconds=rng.randrange(30, 3600))})
            for n in range(3):
                revisits.append({"id": f"rv{s:04d}d{day:02d}n{n}", "tenant_id": TENANT,
                                 "day": START + dt.timedelta(days=day), "staff_id": f"staff{s:04d}",
                                 "customer_id": f"lib{s:04d}c{n * 8:02d}", "rule_id": "r", "kind": "care",
                                 "stage": "after_sale", "priority": 1.0, "reasons": [], "evidence": [], "draft": {},
                                 "status": rng.choice(("done", "done", "open", "dismissed"))})
    with engine.begin() as connection:
        connection.execute(insert(StaffRow), people)
        connection.execute(insert(CustomerRow), customers)
        connection.execute(insert(SuggestionRow), suggestions)
        if feedback:
            connection.execute(insert(SidebarFeedback), feedback)
        connection.execute(insert(ApprovalItem), approvals)
        connection.execute(insert(RevisitItem), revisits)


def timed(fn: Any, repeat: int = 3) -> tuple[float, float, float, Any]:
    """Wall seconds of the first run, the median wall and median CPU seconds of the next ones, and the first
    result (CPU time says what the query costs when other processes share the machine)."""
    started = time.perf_counter()
    result = fn()
    first = time.perf_counter() - started
    walls, cpus = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return first, statistics.median(walls), statistics.median(cpus), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--staff", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=35, help="records per staff member and day (about)")
    parser.add_argument("--suggestions", type=int, default=10, help="suggestions per staff member and day")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary folder")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    parser.add_argument("--reuse", action="store_true",
                        help="the --keep folder (or --database-url) already holds an imported run of the same size: "
                             "only time the rollups and the statistics again")
    args = parser.parse_args()
    if args.reuse and args.keep is None:
        parser.error("--reuse needs --keep FOLDER of an earlier run")

    folder = args.keep or Path(tempfile.mkdtemp(prefix="backoffice-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / "archive.jsonl"
    engine = make_engine(args.database_url or f"sqlite:///{folder / 'bench.db'}")
    end = START + dt.timedelta(days=args.days - 1)
    now = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(12), SHANGHAI)
    backoffice = BackOffice(engine=engine, compliance=TenantCompliance(ComplianceChecker(packs=["general"])),
                            clock=lambda: now)
    if not args.reuse:
        started = time.perf_counter()
        records = generate(archive, staff=args.staff, days=args.days, per_day=args.per_day)
        size_mb = archive.stat().st_size / 1e6
        print(f"archive: {records:,} records, {size_mb:,.0f} MB, written in {time.perf_counter() - started:.1f} s")
        create_schema(engine)
        setup(engine, folder / "library", staff=args.staff, days=args.days, suggestions_per_day=args.suggestions)
        started, cpu = time.perf_counter(), time.process_time()
        result = backoffice.import_file(archive, tenant=TENANT)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        report = result.archive
        print(f"import: {report.records:,} records in {seconds:.1f} s = {report.records / seconds:,.0f} records/s "
              f"(CPU {cpu:.1f} s = {report.records / cpu:,.0f} records per CPU second; "
              f"{report.messages:,} messages, {report.duplicates:,} duplicates, {report.recalled:,} recalled, "
              f"{result.inspection.hits:,} hits)")
    with Session(engine) as session:
        counts = {name: session.exec(select(func.count()).select_from(model)).one()
                  for name, model in (("messages", MessageRow), ("chat_turns", ChatTurn), ("chat_daily", ChatDaily),
                                      ("inspection_hits", InspectionHit))}
    print("rows: " + ", ".join(f"{name} {n:,}" for name, n in counts.items()))

    # The rollups from scratch (what a migration that empties them costs): every staff day marked again.
    zone = backoffice.rules_for(TENANT).calendar.zone
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO stats_dirty (tenant_id, staff_id, day, version) "
                                "SELECT tenant_id, staff_id, day, 1 FROM staff_daily WHERE tenant_id = :t "
                                "ON CONFLICT (tenant_id, staff_id, day) DO UPDATE SET version = stats_dirty.version + 1"),
                           {"t": TENANT})
        connection.execute(text(MARK_ALL_SUGGESTIONS[engine.dialect.name]), {"tenant": TENANT})
    started, cpu = time.perf_counter(), time.process_time()
    days = roll_up(engine, TENANT)
    chat_wall, chat_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    suggestion_days = roll_up_suggestions(engine, TENANT, zone)
    print(f"rollups from scratch: {days:,} staff days of chats in {chat_wall:.1f} s (CPU {chat_cpu:.1f} s), "
          f"{suggestion_days:,} of suggestions in {time.perf_counter() - started:.1f} s "
          f"(CPU {time.process_time() - cpu:.1f} s)")

    team = (frozenset(backoffice.directory(TENANT).members("team0")) if "team" in StaffRow.model_fields else
            frozenset(f"staff{s:04d}" for s in range(0, args.staff, 10)))
    queries = {
        f"all staff, {args.days} days": dict(staff=None, by_day=False),
        f"all staff × day, {args.days} days": dict(staff=None, by_day=True),
        f"one team ({len(team)} staff), {args.days} days": dict(staff=team, by_day=False),
        f"one team ({len(team)} staff) × day": dict(staff=team, by_day=True),
        f"ten staff of a team, {args.days} days": dict(staff=frozenset(sorted(team)[:10]), by_day=False),
    }
    for name, options in queries.items():
        first, median, cpu, rows = timed(lambda o=options: backoffice.staff_stats(TENANT, start=START, end=end, **o))
        print(f"stats {name}: {len(rows):,} rows, first {first:.2f} s, then median {median:.2f} s "
              f"(CPU {cpu:.2f} s)")

    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.routes.backoffice import backoffice_for_app
    from copilot.config import Settings

    app = create_app(Settings(data_dir=folder / "data", api_keys=[SecretStr(f"{TENANT}:bench-key")],
                              default_tenant=TENANT), copilot=_NoCopilot(engine))  # type: ignore[arg-type]
    app.state.backoffice = backoffice
    assert backoffice_for_app(app) is backoffice
    with TestClient(app) as client:
        for group_by in ("staff", "day"):
            def call(g: str = group_by) -> Any:
                response = client.get("/v1/stats/staff", headers={"X-API-Key": "bench-key"},
                                      params={"from": START.isoformat(), "to": end.isoformat(), "group_by": g})
                response.raise_for_status()
                return response
            first, median, cpu, response = timed(call)
            print(f"GET /v1/stats/staff group_by={group_by}: {len(response.json()['items']):,} items, "
                  f"{len(response.content) / 1e6:.1f} MB, first {first:.2f} s, then median {median:.2f} s "
                  f"(CPU {cpu:.2f} s)")
    print(f"work folder: {folder}" + ("" if args.keep else " (temporary)"))
    return 0


class _NoCopilot:
    """Only what the app's lifespan and the back-office routes touch: the routes use the BackOffice above."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.clock = dt.datetime.now

    def refresh_libraries(self) -> list[str]:  # the app's library watcher asks every few seconds
        return []


if __name__ == "__main__":
    raise SystemExit(main())
