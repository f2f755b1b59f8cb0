"""Ingest a validated library into the database and the vector store.

Each item carries a content hash; an unchanged item is neither rewritten nor re-embedded, and
items deleted from the files are removed from both stores. Vectors are written before the
database commits, so a crash in between only means the next run embeds those items again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from copilot.clock import utcnow
from copilot.knowledge.loader import Library
from copilot.persistence.engine import session_scope
from copilot.persistence.tables.library import (
    ContentRow,
    CustomerRow,
    LibraryDoc,
    ScriptRow,
    StaffRow,
    Tenant,
)
from copilot.retrieval.documents import KnowledgeDoc, doc_for_content, doc_for_script
from copilot.retrieval.vectorstore import ChromaStore

__all__ = ["DOC_FORMAT", "IngestReport", "KindReport", "content_hash", "ingest_library"]

# Bump when the text we embed for an item changes shape, so every item is embedded again.
DOC_FORMAT = "doc-v1"

Progress = Callable[[int, int], None]


def content_hash(data: Any) -> str:
    blob = json.dumps([DOC_FORMAT, data], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class KindReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0


@dataclass
class IngestReport:
    tenant: str
    kinds: dict[str, KindReport] = field(default_factory=dict)
    embedded: int = 0
    vectors_removed: int = 0

    def summary(self) -> str:
        parts = [
            f"{kind}: +{r.added} ~{r.updated} ={r.unchanged} -{r.removed}" for kind, r in self.kinds.items()
        ]
        return f"tenant {self.tenant!r}: " + ", ".join(parts) + f"; embedded {self.embedded}"


def ingest_library(
    library: Library,
    *,
    tenant: str,
    engine: Engine,
    store: ChromaStore,
    progress: Progress | None = None,
) -> IngestReport:
    report = IngestReport(tenant=tenant)
    with Session(engine) as session:
        existing = {
            "script": _hashes(session, ScriptRow, tenant),
            "content": _hashes(session, ContentRow, tenant),
            "customer": _hashes(session, CustomerRow, tenant),
            "staff": _hashes(session, StaffRow, tenant),
        }

    scripts = [(s.id, content_hash(s.model_dump(mode="json")), s) for s in library.scripts]
    content = [(c.id, content_hash(c.model_dump(mode="json")), c) for c in library.content]
    customers = [(c.id, content_hash(c.model_dump(mode="json")), c) for c in library.customers]
    staff = [(s.id, content_hash(s.model_dump(mode="json")), s) for s in library.staff]

    # Vectors first: whatever changed, plus anything the vector store lost.
    in_store = store.existing_keys(tenant)
    to_embed: list[KnowledgeDoc] = []
    for item_id, digest, script in scripts:
        script_doc = doc_for_script(script)
        if existing["script"].get(item_id) != digest or script_doc.key not in in_store:
            to_embed.append(script_doc)
    for item_id, digest, item in content:
        content_doc = doc_for_content(item)
        if existing["content"].get(item_id) != digest or content_doc.key not in in_store:
            to_embed.append(content_doc)
    wanted = {f"script:{i}" for i, _, _ in scripts} | {f"content:{i}" for i, _, _ in content}
    stale = sorted(in_store - wanted)

    done = 0
    batch = 128
    for start in range(0, len(to_embed), batch):
        chunk = to_embed[start : start + batch]
        store.upsert(tenant, [d.vector_doc() for d in chunk])
        done += len(chunk)
        if progress:
            progress(done, len(to_embed))
    store.delete(tenant, stale)
    report.embedded = len(to_embed)
    report.vectors_removed = len(stale)

    with session_scope(engine) as session, session.no_autoflush:
        if session.get(Tenant, tenant) is None:
            session.add(Tenant(id=tenant, name=library.persona.brand))
        report.kinds["script"] = _sync(session, ScriptRow, tenant, existing["script"], scripts, library, "script")
        report.kinds["content"] = _sync(session, ContentRow, tenant, existing["content"], content, library, "content")
        report.kinds["customer"] = _sync(
            session, CustomerRow, tenant, existing["customer"], customers, library, "customer"
        )
        report.kinds["staff"] = _sync(session, StaffRow, tenant, existing["staff"], staff, library, "staff")
        _put_doc(session, tenant, "persona", library.persona.model_dump(mode="json"))
        intents = library.intents.model_dump(mode="json") if library.intents else None
        _put_doc(session, tenant, "intents", intents)
    return report


def _put_doc(session: Session, tenant: str, key: str, data: dict[str, Any] | None) -> None:
    """Write one library document if it changed; None removes it."""
    doc = session.get(LibraryDoc, (tenant, key))
    if data is None:
        if doc is not None:
            session.delete(doc)
        return
    digest = content_hash(data)
    if doc is None:
        session.add(LibraryDoc(tenant_id=tenant, key=key, data=data, content_hash=digest))
    elif doc.content_hash != digest:
        doc.data, doc.content_hash = data, digest
        session.add(doc)


def _hashes(session: Session, table: type[SQLModel], tenant: str) -> dict[str, str]:
    query = select(table.id, table.content_hash).where(table.tenant_id == tenant)  # type: ignore[attr-defined]
    if table is CustomerRow:
        query = query.where(CustomerRow.source == "library")
    if table is StaffRow:  # members added by `copilot staff sync` are not the library's to remove
        query = query.where(StaffRow.source == "library")
    rows = session.exec(query)
    return {row[0]: row[1] for row in rows}


def _sync(
    session: Session,
    table: type[SQLModel],
    tenant: str,
    existing: dict[str, str],
    items: Sequence[tuple[str, str, Any]],
    library: Library,
    kind: str,
) -> KindReport:
    report = KindReport()
    keep = set()
    for item_id, digest, item in items:
        keep.add(item_id)
        old = existing.get(item_id)
        if old == digest:
            report.unchanged += 1
            continue
        origin = library.origin(kind, item_id)
        row = _row(table, tenant, item, digest, origin.file, origin.line)
        if isinstance(row, StaffRow):
            current = session.get(StaffRow, (tenant, item_id))
            row.active = current.active if current is not None and current.source == "library" else True
        session.merge(row)
        if old is None:
            report.added += 1
        else:
            report.updated += 1
    for item_id in set(existing) - keep:
        gone = session.get(table, (tenant, item_id))
        if gone is not None:
            session.delete(gone)
            report.removed += 1
    return report


def _row(table: type[SQLModel], tenant: str, item: Any, digest: str, file: str, line: int) -> SQLModel:
    if table is ScriptRow:
        return ScriptRow(
            tenant_id=tenant, id=item.id, stage=item.stage.value, scenario=item.scenario, text=item.text,
            tags=list(item.tags), segments=list(item.segments), triggers=list(item.triggers),
            conditions=item.model_dump(mode="json", include={"season", "requires"}, exclude_defaults=True),
            content_hash=digest, source_file=file, source_line=line,
        )
    if table is ContentRow:
        return ContentRow(
            tenant_id=tenant, id=item.id, kind=item.kind, title=item.title, summary=item.summary,
            data=item.model_dump(mode="json"), content_hash=digest, source_file=file, source_line=line,
        )
    if table is CustomerRow:
        return CustomerRow(
            tenant_id=tenant, id=item.id, name=item.name, staff_id=item.staff_id, segment=item.segment,
            profile=item.model_dump(mode="json"), content_hash=digest, source_file=file, source_line=line,
            updated_at=utcnow(),
        )
    return StaffRow(
        tenant_id=tenant, id=item.id, name=item.name, wecom_userid=item.wecom_userid,
        timezone=item.timezone, role=item.role, team=item.team, source="library", content_hash=digest,
    )
