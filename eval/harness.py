"""The Copilot an evaluation runs against: the serving class, over a library, in a scratch folder.

Evaluations never touch the deployment's database or index: they ingest the library into a temporary
SQLite file and Chroma folder, with a fixed clock so order recency and "days since" are reproducible.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from copilot.compliance import ComplianceChecker, semantic
from copilot.config import Settings
from copilot.embedding.embedders import Embedder
from copilot.persistence.engine import make_engine
from copilot.persistence.schema import upgrade
from copilot.retrieval.vectorstore import ChromaStore
from copilot.service import Copilot, build_embedder
from copilot.suggestion import MessageIn, SuggestRequest
from eval.records import Message

__all__ = ["EVAL_NOW", "TENANT", "Harness", "build_copilot", "choose_embedder", "request_for", "tenant_of"]

TENANT = "default"
# The demo library's "today" (10:00 in Shanghai); its orders and chats are dated relative to it.
EVAL_NOW = dt.datetime(2026, 11, 22, 2, 0, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Harness:
    copilot: Copilot
    tenant: str
    embedder_name: str
    knowledge: Path

    def library(self, knowledge: Path) -> Harness:
        """The same Copilot over another library, ingested once as a tenant of its own (as `make run`
        ingests the extra demo libraries): `libraries/skincare` becomes tenant `skincare`."""
        if knowledge.resolve() == self.knowledge.resolve():
            return self
        tenant = tenant_of(knowledge)
        if tenant not in self.copilot.repo.tenants():
            self.copilot.ingest(knowledge, tenant=tenant)
        return Harness(copilot=self.copilot, tenant=tenant, embedder_name=self.embedder_name, knowledge=knowledge)


def tenant_of(knowledge: Path) -> str:
    """The tenant an extra library is evaluated as: its folder name."""
    return knowledge.resolve().name


def choose_embedder(name: str | None, settings: Settings, *, cache: bool = True) -> Embedder:
    """`hashing` for fast deterministic runs; otherwise the embedder the settings configure, whose vectors
    are kept in `<data dir>/eval-cache/embeddings.sqlite` (`eval.embedding_cache`) unless `cache` is off. The
    compliance models are kept where the app keeps them (`<models dir>/compliance`, keyed by their training data and
    embedder), so `copilot prepare` or an earlier run spares the next one the minutes the second look trains
    (the hashing embedder takes no second look)."""
    if name == "hashing":
        from copilot.embedding.embedders import HashingEmbedder

        return HashingEmbedder()
    semantic.use_cache_dir(settings.models_dir / "compliance")
    if name:
        settings = settings.model_copy(update={"embedding_model": name})
    embedder = build_embedder(settings)
    if not cache or embedder.name.startswith("hashing"):
        return embedder
    from eval.embedding_cache import CachedEmbedder

    return CachedEmbedder(embedder, settings.data_dir / "eval-cache" / "embeddings.sqlite")


def build_copilot(
    embedder: Embedder,
    knowledge: Path,
    workdir: Path,
    *,
    now: dt.datetime = EVAL_NOW,
    compliance: ComplianceChecker | None = None,
    compliance_tuned: bool = False,
) -> Harness:
    workdir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{workdir / 'eval.db'}")
    upgrade(engine)
    copilot = Copilot(
        engine=engine,
        embedder=embedder,
        store=ChromaStore(embedder, workdir / "chroma"),
        compliance=compliance or ComplianceChecker(),
        clock=lambda: now,
        compliance_tuned=compliance_tuned,
    )
    copilot.ingest(knowledge, tenant=TENANT)
    return Harness(copilot=copilot, tenant=TENANT, embedder_name=embedder.name, knowledge=knowledge)


def request_for(messages: Sequence[Message], customer_id: str | None = None, n: int | None = None) -> SuggestRequest:
    return SuggestRequest(
        customer_id=customer_id,
        messages=[MessageIn(role=m.role, text=m.text) for m in messages][-200:],
        n=n,
    )
