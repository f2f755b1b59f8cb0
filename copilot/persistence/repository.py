"""Reads and writes the suggestion pipeline needs, in one place."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from copilot.conversation.turns import Turn
from copilot.errors import NotFoundError
from copilot.knowledge.schema import ContentItem, CustomerProfile, IntentCatalogue, Persona, Script, Stage
from copilot.persistence.engine import insert_new, session_scope
from copilot.persistence.messages import store_live
from copilot.persistence.tables.conversations import Conversation, MessageRow
from copilot.persistence.tables.library import (
    ContentRow,
    CustomerRow,
    LibraryDoc,
    LibraryVersion,
    ScriptRow,
    Tenant,
    utcnow,
)
from copilot.retrieval.documents import KnowledgeDoc, doc_for_content, doc_for_script

__all__ = ["Repository"]


class Repository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def tenants(self) -> list[str]:
        with Session(self.engine) as session:
            return list(session.exec(select(Tenant.id)))

    def knowledge_docs(self, tenant: str) -> list[KnowledgeDoc]:
        with Session(self.engine) as session:
            scripts = session.exec(select(ScriptRow).where(ScriptRow.tenant_id == tenant).order_by(ScriptRow.id))
            docs = [
                doc_for_script(
                    Script(id=r.id, stage=Stage(r.stage), scenario=r.scenario, text=r.text, tags=tuple(r.tags),
                           segments=tuple(r.segments), triggers=tuple(r.triggers), **r.conditions)
                )
                for r in scripts
            ]
            content = session.exec(select(ContentRow).where(ContentRow.tenant_id == tenant).order_by(ContentRow.id))
            docs.extend(doc_for_content(ContentItem.model_validate(r.data)) for r in content)
        return docs

    def library_path(self, tenant: str) -> Path | None:
        """The folder the tenant's library was last ingested from."""
        with Session(self.engine) as session:
            doc = session.get(LibraryDoc, (tenant, "source"))
        return Path(doc.data["path"]) if doc is not None and doc.data.get("path") else None

    def library_versions(self) -> dict[str, int]:
        """Every tenant's library version (see `LibraryVersion`)."""
        with Session(self.engine) as session:
            return {row.tenant_id: row.version for row in session.exec(select(LibraryVersion))}

    def bump_library_version(self, tenant: str) -> int:
        """Move the tenant's library version on by one (atomically, whoever else ingests) and return it."""
        with self.engine.begin() as connection:
            insert_new(connection, LibraryVersion, [{"tenant_id": tenant, "version": 0, "updated_at": utcnow()}],
                       ["tenant_id"])
            connection.execute(update(LibraryVersion).where(col(LibraryVersion.tenant_id) == tenant)
                               .values(version=col(LibraryVersion.version) + 1, updated_at=utcnow()))
            found = connection.execute(select(LibraryVersion.version)
                                       .where(col(LibraryVersion.tenant_id) == tenant)).scalar_one()
        return int(found)

    def set_library_path(self, tenant: str, path: Path) -> None:
        with session_scope(self.engine) as session:
            doc = session.get(LibraryDoc, (tenant, "source"))
            if doc is None:
                doc = LibraryDoc(tenant_id=tenant, key="source")
            doc.data = {"path": str(path.resolve())}
            session.add(doc)

    def intents(self, tenant: str) -> IntentCatalogue | None:
        with Session(self.engine) as session:
            doc = session.get(LibraryDoc, (tenant, "intents"))
        return IntentCatalogue.model_validate(doc.data) if doc is not None else None

    def persona(self, tenant: str) -> Persona:
        with Session(self.engine) as session:
            doc = session.get(LibraryDoc, (tenant, "persona"))
        if doc is None:
            raise NotFoundError(f"tenant {tenant!r} has no library yet; run `copilot ingest` first")
        return Persona.model_validate(doc.data)

    def customer(self, tenant: str, customer_id: str) -> CustomerProfile:
        with Session(self.engine) as session:
            row = session.get(CustomerRow, (tenant, customer_id))
        if row is None:
            raise NotFoundError(f"customer {customer_id!r} not found for tenant {tenant!r}")
        return CustomerProfile.model_validate(row.profile)

    def customers(self, tenant: str, *, limit: int, offset: int,
                  staff_ids: Collection[str] | None = None) -> tuple[list[dict[str, Any]], int]:
        """A page of the tenant's customers; only those of `staff_ids` when given."""
        where: list[Any] = [CustomerRow.tenant_id == tenant]
        if staff_ids is not None:
            where.append(col(CustomerRow.staff_id).in_(list(staff_ids)))
        with Session(self.engine) as session:
            total = session.exec(select(func.count()).select_from(CustomerRow).where(*where)).one()
            rows = session.exec(
                select(CustomerRow).where(*where).order_by(CustomerRow.id).offset(offset).limit(limit)
            )
            items = [
                {"id": r.id, "name": r.name, "segment": r.segment, "staff_id": r.staff_id} for r in rows
            ]
        return items, int(total)

    def script(self, tenant: str, script_id: str) -> ScriptRow:
        with Session(self.engine) as session:
            row = session.get(ScriptRow, (tenant, script_id))
        if row is None:
            raise NotFoundError(f"script {script_id!r} not found")
        return row

    def content(self, tenant: str, content_id: str) -> ContentRow:
        with Session(self.engine) as session:
            row = session.get(ContentRow, (tenant, content_id))
        if row is None:
            raise NotFoundError(f"content item {content_id!r} not found")
        return row

    def conversation(self, session: Session, tenant: str, customer_id: str, staff_id: str) -> Conversation:
        found = session.exec(
            select(Conversation).where(
                Conversation.tenant_id == tenant,
                Conversation.customer_id == customer_id,
                Conversation.staff_id == staff_id,
            )
        ).first()
        if found is None:
            found = Conversation(tenant_id=tenant, customer_id=customer_id, staff_id=staff_id)
            session.add(found)
            session.flush()
        return found

    def last_stage(self, tenant: str, customer_id: str, staff_id: str) -> str | None:
        with Session(self.engine) as session:
            found = session.exec(
                select(Conversation.last_stage).where(
                    Conversation.tenant_id == tenant,
                    Conversation.customer_id == customer_id,
                    Conversation.staff_id == staff_id,
                )
            ).first()
        return found

    def recent_turns(self, tenant: str, customer_id: str, limit: int = 10) -> list[Turn]:
        """Stored messages with this customer across staff, oldest first."""
        with Session(self.engine) as session:
            conv_ids = select(Conversation.id).where(
                Conversation.tenant_id == tenant, Conversation.customer_id == customer_id
            )
            rows = session.exec(
                select(MessageRow).where(
                    MessageRow.tenant_id == tenant, col(MessageRow.conversation_id).in_(conv_ids),
                    col(MessageRow.withdrawn_at).is_(None),
                ).order_by(col(MessageRow.ts).desc()).limit(limit)
            ).all()
        return [Turn(r.role, r.text, r.ts) for r in reversed(rows)]  # type: ignore[arg-type]

    def store_messages(
        self, session: Session, tenant: str, conversation_id: str, turns: Sequence[Turn], source: str = "api",
        now: dt.datetime | None = None,
    ) -> int:
        """Store turns not seen before in this conversation (by any source); returns how many were new."""
        return store_live(session, tenant, conversation_id, turns, source=source, now=now)

    def unit_of_work(self) -> Any:
        return session_scope(self.engine)


