"""`BackOffice`: the one object the API, the CLI and the scheduler use for archive import, inspection and
statistics. It needs the database, each tenant's compliance checker and a clock: the API builds it on its
`Copilot` (`from_copilot`, sharing them); the CLI builds it from settings without loading any model."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from copilot.backoffice.alerts import AlertApp, Alerts
from copilot.backoffice.archive import (
    ArchiveImporter,
    ArchiveRecord,
    ImportReport,
    check_records,
    parse_record,
    read_jsonl,
    validate_records,
)
from copilot.backoffice.inspection import Inspector, ProcessReport
from copilot.backoffice.rules import RuleBook, RuleStatus
from copilot.backoffice.staff import StaffDirectory
from copilot.backoffice.stats import StatsQuery, staff_stats
from copilot.clock import Clock, as_utc, utcnow
from copilot.compliance import ComplianceChecker
from copilot.compliance.tenants import TenantCompliance
from copilot.config import Settings
from copilot.errors import ValidationError
from copilot.knowledge.inspection import InspectionRules
from copilot.persistence.engine import make_engine, session_scope
from copilot.persistence.repository import Repository
from copilot.persistence.schema import create_schema
from copilot.persistence.tables.backoffice import InspectionHit
from copilot.persistence.tables.conversations import MessageRow
from copilot.persistence.tables.library import Tenant

if TYPE_CHECKING:
    from copilot.service import Copilot

__all__ = ["SEVERITIES", "BackOffice", "HitQuery", "ImportResult"]

SEVERITIES = ("warn", "review", "block")
MAX_DAYS = 92
CONTEXT = 3  # messages shown before and after a hit's message


@dataclass(frozen=True)
class ImportResult:
    archive: ImportReport
    inspection: ProcessReport

    def as_dict(self) -> dict[str, Any]:
        return {**self.archive.as_dict(), "inspection": self.inspection.as_dict()}


@dataclass(frozen=True)
class HitQuery:
    tenant: str
    start: dt.date
    end: dt.date
    staff: frozenset[str] | None = None  # whom the caller may see; None: everyone
    staff_id: str | None = None
    severity: str | None = None
    status: str | None = None
    limit: int = 500


class BackOffice:
    def __init__(self, *, engine: Engine, compliance: TenantCompliance, clock: Clock,
                 alert_app: Callable[[str], AlertApp | None] | None = None) -> None:
        self.engine = engine
        self.repo = Repository(engine)
        self.clock = clock
        self.rules = RuleBook(self.repo)
        self.alerts = Alerts(alert_app)
        self.inspector = Inspector(engine, rules=self.rules, clock=clock, alerts=self.alerts,
                                   checker_for=compliance.for_tenant)
        self._scanned: dict[str, dt.datetime] = {}

    @classmethod
    def from_copilot(cls, copilot: Copilot, *, clock: Clock | None = None,
                     alert_app: Callable[[str], AlertApp | None] | None = None) -> BackOffice:
        """Sharing the Copilot's database, tenant compliance (reloads apply to both) and clock; `alert_app`
        names each tenant's WeCom app for alerts (see `copilot.backoffice.alerts`)."""
        return cls(engine=copilot.engine, compliance=copilot.tenant_compliance, clock=clock or copilot.clock,
                   alert_app=alert_app)

    @classmethod
    def from_settings(cls, settings: Settings, *,
                      alert_apps: Callable[[Engine, Settings], Callable[[str], AlertApp | None]] | None = None
                      ) -> BackOffice:
        """For the command line: the database and each tenant's compliance rules, no models; `alert_apps`
        makes the tenant → WeCom app lookup for alerts from the database and the settings."""
        engine = make_engine(settings.sqlalchemy_url)
        create_schema(engine)
        compliance = TenantCompliance(ComplianceChecker(packs=settings.compliance_packs,
                                                        lexicon_dir=settings.lexicon_dir),
                                      lexicon_dir=settings.lexicon_dir)
        repo = Repository(engine)
        for tenant in repo.tenants():
            library = repo.library_path(tenant)
            if library is not None and library.is_dir():
                compliance.register(tenant, library)
        return cls(engine=engine, compliance=compliance, clock=utcnow,
                   alert_app=alert_apps(engine, settings) if alert_apps is not None else None)

    # ---- archive ---------------------------------------------------------------------------------------
    def import_file(self, path: Path, *, tenant: str, batch: int = 5000,
                    progress: Callable[[int], None] | None = None) -> ImportResult:
        """Validate the whole JSONL file (nothing is stored if any record is bad), then store it in batches
        and inspect what it brought."""
        if not path.is_file():
            raise ValidationError(f"archive file {str(path)!r} does not exist")
        check_records(read_jsonl(path))
        records = (parsed for where, raw in read_jsonl(path)
                   if isinstance(parsed := parse_record(where, raw), ArchiveRecord))
        return self._import(tenant, records, batch=batch, progress=progress)

    def import_records(self, tenant: str, items: list[Any]) -> ImportResult:
        """Records as the relay posts them (a JSON list); every problem is named by its index."""
        records = validate_records((f"records[{i}]", raw) for i, raw in enumerate(items))
        return self._import(tenant, iter(records), batch=2000, progress=None)

    def _import(self, tenant: str, records: Iterator[ArchiveRecord], *, batch: int,
                progress: Callable[[int], None] | None) -> ImportResult:
        self._ensure_tenant(tenant)
        importer = ArchiveImporter(self.engine, tenant)
        report = ImportReport()
        while chunk := list(islice(records, batch)):
            importer.store(chunk, report)
            if progress is not None:
                progress(report.records)
        return ImportResult(report, self.inspector.process_pending(tenant))

    def _ensure_tenant(self, tenant: str) -> None:
        with session_scope(self.engine) as session:
            if session.get(Tenant, tenant) is None:
                session.add(Tenant(id=tenant, name=tenant))

    # ---- the periodic job ------------------------------------------------------------------------------
    def tick(self) -> dict[str, Any]:
        """Inspect new messages of every tenant, find turns that just ran out of time, escalate open hits."""
        now = self.clock()
        done: dict[str, Any] = {}
        for tenant in self.repo.tenants():
            processed = self.inspector.process_pending(tenant)
            since = self._scanned.get(tenant, now - dt.timedelta(days=7))
            timeouts = self.inspector.scan_timeouts(tenant, since, now)
            self._scanned[tenant] = now
            escalated = self.inspector.escalate(tenant, now)
            if processed.messages or processed.hits or timeouts or escalated:
                done[tenant] = {**processed.as_dict(), "timeouts": timeouts, "escalated": escalated}
        return done

    # ---- rules -----------------------------------------------------------------------------------------
    def rules_for(self, tenant: str) -> InspectionRules:
        return self.rules.for_tenant(tenant)

    def reload_rules(self, tenant: str) -> RuleStatus:
        self.rules.reload(tenant)
        return self.rules.status(tenant)

    # ---- reading ---------------------------------------------------------------------------------------
    def directory(self, tenant: str) -> StaffDirectory:
        return StaffDirectory.load(self.engine, tenant)

    def staff_stats(self, tenant: str, *, start: dt.date, end: dt.date, staff: frozenset[str] | None,
                    by_day: bool) -> list[dict[str, Any]]:
        _check_range(start, end)
        directory = self.directory(tenant)
        people = {p.id: (p.name, p.team) for p in directory.people()}
        return staff_stats(self.engine, StatsQuery(tenant, start, end, staff, by_day), now=self.clock(),
                           zone=self.rules.for_tenant(tenant).calendar.zone, people=people)

    def hits(self, query: HitQuery) -> list[dict[str, Any]]:
        _check_range(query.start, query.end)
        if query.severity is not None and query.severity not in SEVERITIES:
            raise ValidationError(f"severity must be one of {', '.join(SEVERITIES)}, not {query.severity!r}")
        directory = self.directory(query.tenant)
        with Session(self.engine) as session:
            statement = select(InspectionHit).where(
                InspectionHit.tenant_id == query.tenant, col(InspectionHit.day) >= query.start,
                col(InspectionHit.day) <= query.end)
            if query.staff is not None:
                statement = statement.where(col(InspectionHit.staff_id).in_(sorted(query.staff)))
            if query.staff_id:
                statement = statement.where(InspectionHit.staff_id == query.staff_id)
            if query.severity:
                statement = statement.where(InspectionHit.severity == query.severity)
            if query.status:
                statement = statement.where(InspectionHit.status == query.status)
            found = session.exec(statement.order_by(col(InspectionHit.at).desc(), col(InspectionHit.id))
                                 .limit(query.limit)).all()
            context = _context(session, query.tenant, found)
        return [_hit_out(hit, directory, context.get(hit.id, ([], None))) for hit in found]

    def handle(self, tenant: str, hit_id: str, *, actor: str, note: str | None,
               staff: frozenset[str] | None) -> dict[str, Any]:
        hit = self.inspector.handle(tenant, hit_id, actor=actor, note=note, allowed_staff=staff)
        with Session(self.engine) as session:
            context = _context(session, tenant, [hit])
        return _hit_out(hit, self.directory(tenant), context.get(hit.id, ([], None)))


def _check_range(start: dt.date, end: dt.date) -> None:
    if end < start:
        raise ValidationError(f"to ({end}) is before from ({start})")
    if (end - start).days >= MAX_DAYS:
        raise ValidationError(f"ask for at most {MAX_DAYS} days at a time, not {(end - start).days + 1}")


def _message_out(row: MessageRow) -> dict[str, Any]:
    return {"id": row.id, "role": row.role, "sender_id": row.sender_id, "text": row.text, "msgtype": row.msgtype,
            "ts": as_utc(row.ts).isoformat(), "withdrawn": row.withdrawn_at is not None}


def _context(session: Session, tenant: str, hits: Iterable[InspectionHit]
             ) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any] | None]]:
    """For each hit about a message: the message and up to CONTEXT messages on either side of it."""
    out: dict[str, tuple[list[dict[str, Any]], dict[str, Any] | None]] = {}
    for hit in hits:
        if hit.message_id is None or hit.conversation_id is None:
            continue
        message = session.get(MessageRow, hit.message_id)
        if message is None:
            continue
        same = and_(col(MessageRow.tenant_id) == tenant, col(MessageRow.conversation_id) == hit.conversation_id)
        earlier = or_(col(MessageRow.ts) < message.ts,
                      and_(col(MessageRow.ts) == message.ts, col(MessageRow.id) < message.id))
        later = or_(col(MessageRow.ts) > message.ts,
                    and_(col(MessageRow.ts) == message.ts, col(MessageRow.id) > message.id))
        before = session.exec(select(MessageRow).where(same, earlier)
                              .order_by(col(MessageRow.ts).desc(), col(MessageRow.id).desc()).limit(CONTEXT)).all()
        after = session.exec(select(MessageRow).where(same, later)
                             .order_by(col(MessageRow.ts), col(MessageRow.id)).limit(CONTEXT)).all()
        rows = [*reversed(before), message, *after]
        out[hit.id] = ([{**_message_out(r), "hit": r.id == message.id} for r in rows], _message_out(message))
    return out


def _hit_out(hit: InspectionHit, directory: StaffDirectory,
             context: tuple[list[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
    detail = dict(hit.detail or {})
    return {
        "id": hit.id, "day": hit.day.isoformat() if isinstance(hit.day, dt.date) else str(hit.day),
        "at": as_utc(hit.at).isoformat(), "staff_id": hit.staff_id, "name": directory.name(hit.staff_id),
        "customer_id": hit.customer_id, "rule_id": hit.rule_id, "rule_name": detail.pop("rule_name", hit.rule_id),
        "kind": hit.kind, "category": hit.category, "severity": hit.severity, "status": hit.status,
        "handled_by": hit.handled_by, "handled_at": as_utc(hit.handled_at).isoformat() if hit.handled_at else None,
        "note": hit.note, "notified_at": as_utc(hit.notified_at).isoformat() if hit.notified_at else None,
        "escalated_at": as_utc(hit.escalated_at).isoformat() if hit.escalated_at else None,
        "message": context[1], "context": context[0], "detail": detail,
    }
