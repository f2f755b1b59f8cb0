"""Revisit generation time for many synthetic customers (target: 100k customers in ≤ 60 s).

    python bench/revisit_generate.py                    # 100,000 customers, 50 staff
    python bench/revisit_generate.py --customers 20000  # smaller
    python bench/revisit_generate.py --no-guard         # without the frequency guard's per-item check

Customers are written straight into a temporary SQLite database (no library, no embeddings): a mix of
order histories with consumption cycles, coupons, baby birthdays, stored chats and nothing at all, so every
rule kind has work to do. It times the first run (which queues the day's items) and a second run on the
same day (which must create nothing), and prints figures only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import insert

from copilot.compliance.frequency import FrequencyGuard
from copilot.persistence.engine import make_engine
from copilot.persistence.schema import upgrade
from copilot.persistence.tables.conversations import Conversation, MessageRow
from copilot.persistence.tables.library import CustomerRow, StaffRow, Tenant
from copilot.revisits import RuleSet, generate
from copilot.revisits.rules import parse_rule_sets

RULES = Path(__file__).resolve().parent.parent / "knowledge" / "revisit_rules.yaml"
TODAY = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)
TENANT = "bench"
PRODUCTS = [("FM2", "2段奶粉 800g", 258, 20), ("DP-L", "纸尿裤 L码", 339, 27), ("WP", "湿巾 6包", 49, 30),
            ("RC", "米粉 250g", 58, 20), ("TOY", "牙胶", 39, None)]
ASKS = ["这个多少钱？", "有货吗", "怎么下单呀", "再看看吧", "宝宝最近睡得不好", "收到了谢谢"]


def _profile(rng: random.Random, cid: str, staff: str) -> dict[str, Any]:
    profile: dict[str, Any] = {"id": cid, "name": f"客户{cid}", "staff_id": staff, "segment": "活跃"}
    orders: list[dict[str, Any]] = []
    for n in range(rng.choice([0, 0, 1, 2, 3, 5])):
        sku, name, price, cycle = rng.choice(PRODUCTS)
        day = TODAY - dt.timedelta(days=rng.randint(1, 120))
        orders.append({"id": f"{cid}-o{n}", "date": day.isoformat(), "status": "delivered",
                       "delivered_on": (day + dt.timedelta(days=2)).isoformat(),
                       "items": [{"sku": sku, "name": name, "qty": rng.randint(1, 2), "price": price,
                                  "cycle_days": cycle}]})
    profile["orders"] = orders
    profile["rfm"] = {"frequency": len(orders), "monetary": sum(o["items"][0]["price"] for o in orders)}
    if rng.random() < 0.6:
        profile["attributes"] = {"宝宝生日": (TODAY - dt.timedelta(days=rng.randint(0, 700))).isoformat()}
    if rng.random() < 0.2:
        profile["coupons"] = [{"name": "满299减30", "amount": 30,
                               "expires_on": (TODAY + dt.timedelta(days=rng.randint(-3, 30))).isoformat()}]
    if rng.random() < 0.3:
        at = NOW - dt.timedelta(hours=rng.randint(1, 24 * 20))
        profile["chat"] = [{"ts": at.isoformat(), "role": "customer", "text": rng.choice(ASKS)}]
    return profile


def build(path: Path, customers: int, staff: int, stored_chats: int, seed: int) -> Any:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    rng = random.Random(seed)
    staff_ids = [f"staff_{i:03d}" for i in range(staff)]
    with engine.begin() as conn:
        conn.execute(insert(Tenant), [{"id": TENANT, "name": TENANT}])
        conn.execute(insert(StaffRow), [{"tenant_id": TENANT, "id": s, "name": s} for s in staff_ids])
        batch: list[dict[str, Any]] = []
        for i in range(customers):
            cid = f"c{i:06d}"
            staff_id = staff_ids[i % staff]
            batch.append({"tenant_id": TENANT, "id": cid, "name": cid, "staff_id": staff_id, "segment": "活跃",
                          "profile": _profile(rng, cid, staff_id), "source": "bench"})
            if len(batch) == 5000:
                conn.execute(insert(CustomerRow), batch)
                batch = []
        if batch:
            conn.execute(insert(CustomerRow), batch)
        conversations, messages = [], []
        for i in rng.sample(range(customers), min(stored_chats, customers)):
            conv = f"conv{i}"
            conversations.append({"id": conv, "tenant_id": TENANT, "customer_id": f"c{i:06d}",
                                  "staff_id": staff_ids[i % staff], "created_at": NOW, "updated_at": NOW})
            for n in range(3):
                at = NOW - dt.timedelta(hours=rng.randint(1, 24 * 10))
                messages.append({"tenant_id": TENANT, "conversation_id": conv, "role": rng.choice(["customer", "staff"]),
                                 "text": rng.choice(ASKS), "ts": at, "source": "bench", "dedupe_key": f"{conv}-{n}"})
        conn.execute(insert(Conversation), conversations)
        conn.execute(insert(MessageRow), messages)
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--staff", type=int, default=50)
    parser.add_argument("--stored-chats", type=int, default=10_000, help="customers with stored messages")
    parser.add_argument("--no-guard", action="store_true", help="skip the frequency guard check")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rules: RuleSet = parse_rule_sets(yaml.safe_load(RULES.read_text(encoding="utf-8")))[None]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        engine = build(Path(tmp) / "bench.db", args.customers, args.staff, args.stored_chats, args.seed)
        print(f"built {args.customers:,} customers ({args.stored_chats:,} with stored chats) "
              f"in {time.perf_counter() - started:.1f} s")
        guard = None if args.no_guard else FrequencyGuard(engine)
        for label in ("first run", "second run (same day)"):
            cpu = time.process_time()
            report = generate(engine, TENANT, TODAY, rules, now=NOW, guard=guard)
            cpu = time.process_time() - cpu
            print(f"{label}: {report.seconds:.1f} s wall, {cpu:.1f} s CPU — customers {report.customers:,}, matched {report.matched:,}, "
                  f"created {report.created:,}, already queued {report.already_queued:,}, "
                  f"guard {'on' if guard else 'off'}")
        print("target: 100k customers ≤ 60 s (wall time depends on what else the machine runs; CPU does not)")


if __name__ == "__main__":
    main()
