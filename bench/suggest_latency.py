"""Suggestion latency (no LLM) and ingest throughput, on the demo library and a generated 10k-script one.

    .venv/bin/python bench/suggest_latency.py [--requests 200] [--scripts 10000] [--embedding-model NAME]

Prints p50/p95/p99 of `Copilot.suggest` and items embedded per second during ingest.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from copilot.compliance import ComplianceChecker
from copilot.config import Settings
from copilot.knowledge.loader import load_library
from copilot.persistence.engine import make_engine
from copilot.persistence.schema import upgrade
from copilot.retrieval.vectorstore import ChromaStore
from copilot.service import Copilot, build_embedder
from copilot.suggestion import MessageIn, SuggestRequest

REPO = Path(__file__).resolve().parent.parent
MESSAGES = [
    "宝宝最近红屁屁了怎么办", "纸尿裤多少钱？有活动吗", "奶粉快喝完了，还是之前那款", "在吗", "上次买的收到了，挺好用",
    "有点贵，别家便宜些", "宝宝8个月了要换几段奶粉", "什么时候发货呀", "会员有什么优惠", "晚上总是漏尿",
]


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return f"p50 {q[49]:.1f} ms · p95 {q[94]:.1f} ms · p99 {q[98]:.1f} ms (n={len(samples)})"


def run_requests(copilot: Copilot, customers: list[str], requests: int, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    timings = []
    for i in range(requests):
        messages = [] if i % 5 == 0 else [MessageIn(role="customer", text=rng.choice(MESSAGES))]
        request = SuggestRequest(customer_id=rng.choice(customers), staff_id="bench", messages=messages)
        started = time.perf_counter()
        copilot.suggest("default", request)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def generate_library(source: Path, target: Path, scripts: int, seed: int = 11) -> None:
    """A larger library of the same schema: the demo scripts recombined with varied wording."""
    shutil.copytree(source, target)
    library = load_library(source)
    rng = random.Random(seed)
    openers = ["", "亲，", "跟您说一下，", "打扰啦，", "小提醒：", "顺便说一句，"]
    endings = ["", "～", "，有问题随时找我哈", "，您看看合适不", "。"]
    items = []
    for i in range(scripts):
        base = rng.choice(library.scripts)
        text = f"{rng.choice(openers)}{base.text}{rng.choice(endings)}"[:900]
        items.append({
            "id": f"GEN-{i:05d}", "stage": base.stage.value, "scenario": base.scenario, "text": text,
            "tags": list(base.tags), "segments": list(base.segments), "triggers": list(base.triggers),
        })
    (target / "scripts" / "generated.yaml").write_text(yaml.safe_dump(items, allow_unicode=True), encoding="utf-8")


def build(root: Path, settings: Settings) -> Copilot:
    embedder = build_embedder(settings)
    engine = make_engine(f"sqlite:///{root / 'bench.db'}")
    upgrade(engine)
    return Copilot(
        engine=engine,
        embedder=embedder,
        store=ChromaStore(embedder, root / "chroma"),
        compliance=ComplianceChecker(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--scripts", type=int, default=10_000)
    parser.add_argument("--embedding-model", default=None)
    args = parser.parse_args()
    settings = Settings()
    if args.embedding_model:
        settings = settings.model_copy(update={"embedding_model": args.embedding_model})

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        copilot = build(root / "demo", settings)
        started = time.perf_counter()
        report = copilot.ingest(REPO / "knowledge", tenant="default")
        took = time.perf_counter() - started
        customers = [c.id for c in load_library(REPO / "knowledge").customers]
        print(f"embedder: {copilot.embedder.name}")
        print(f"demo ingest: {report.embedded} items embedded in {took:.1f}s ({report.embedded / took:.0f} items/s)")
        run_requests(copilot, customers, 10)  # warm-up
        print("demo library suggest latency:", percentiles(run_requests(copilot, customers, args.requests)))

        generate_library(REPO / "knowledge", root / "big-lib", args.scripts)
        big = build(root / "big", settings)
        started = time.perf_counter()
        report = big.ingest(root / "big-lib", tenant="default")
        took = time.perf_counter() - started
        print(f"{args.scripts}-script ingest: {report.embedded} items embedded in {took:.1f}s "
              f"({report.embedded / took:.0f} items/s)")
        started = time.perf_counter()
        again = big.ingest(root / "big-lib", tenant="default")
        print(f"re-ingest unchanged: {again.embedded} embedded in {time.perf_counter() - started:.1f}s")
        run_requests(big, customers, 10)
        print(f"{args.scripts}-script library suggest latency:", percentiles(run_requests(big, customers, args.requests)))


if __name__ == "__main__":
    main()
