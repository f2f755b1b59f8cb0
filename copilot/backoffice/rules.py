"""Each tenant's inspection rules: `inspection.yaml` in the folder its library was ingested from.

The file is re-read when it changes (checked at most once a second), so an edit applies without a
restart; `reload` does the same on demand and raises the file's problems as file:line. A broken file never
replaces working rules: the tenant keeps the rules it had, and the problem is logged and kept in `status`.
A tenant without a file gets `DEFAULT_RULES`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from copilot.errors import LibraryError
from copilot.knowledge.inspection import ComplianceRule, InspectionRules, ReplyTimeoutRule
from copilot.knowledge.loader import INSPECTION_FILE, load_inspection
from copilot.persistence.repository import Repository

__all__ = ["DEFAULT_RULES", "RuleBook", "RuleStatus"]

log = logging.getLogger(__name__)

DEFAULT_RULES = InspectionRules(rules=(
    ReplyTimeoutRule(id="reply_timeout", kind="reply_timeout", name="客户消息超时未回复", minutes=30),
    ComplianceRule(id="compliance", kind="compliance", name="员工消息合规"),
))
_CHECK_EVERY_S = 1.0


@dataclass(frozen=True)
class RuleStatus:
    tenant: str
    path: str | None
    rules: int
    loaded_mtime: float | None
    error: str | None  # the last problem of a file that was refused; the previous rules stayed


@dataclass
class _Entry:
    path: Path | None
    mtime: float | None
    rules: InspectionRules
    checked: float
    error: str | None = None


class RuleBook:
    def __init__(self, repo: Repository, *, check_every_s: float = _CHECK_EVERY_S) -> None:
        self._repo = repo
        self._check_every_s = check_every_s
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def for_tenant(self, tenant: str) -> InspectionRules:
        with self._lock:
            entry = self._entries.get(tenant)
            if entry is None or time.monotonic() - entry.checked >= self._check_every_s:
                entry = self._refresh(tenant, entry, strict=False)
            return entry.rules

    def reload(self, tenant: str) -> InspectionRules:
        """Re-read the tenant's file now; a broken file raises LibraryError (file:line) and changes nothing."""
        with self._lock:
            return self._refresh(tenant, self._entries.get(tenant), strict=True, force=True).rules

    def status(self, tenant: str) -> RuleStatus:
        with self._lock:
            entry = self._entries.get(tenant) or self._refresh(tenant, None, strict=False)
            return RuleStatus(tenant, str(entry.path) if entry.path else None, len(entry.rules.rules), entry.mtime,
                              entry.error)

    def _path(self, tenant: str) -> Path | None:
        library = self._repo.library_path(tenant)
        return library / INSPECTION_FILE if library is not None else None

    def _refresh(self, tenant: str, entry: _Entry | None, *, strict: bool, force: bool = False) -> _Entry:
        path = self._path(tenant)
        now = time.monotonic()
        if path is None or not path.is_file():
            fresh = _Entry(path, None, DEFAULT_RULES, now)
            self._entries[tenant] = fresh
            return fresh
        mtime = path.stat().st_mtime
        if entry is not None and not force and entry.path == path and entry.mtime == mtime:
            entry.checked = now
            return entry
        try:
            rules = load_inspection(path)
        except LibraryError as exc:
            message = "; ".join(str(p) for p in exc.problems)
            log.error("inspection rules of tenant %s refused, previous rules stay: %s", tenant, message)
            kept = entry or _Entry(path, None, DEFAULT_RULES, now)
            # Remember the refused version so an unchanged broken file is not re-parsed every second.
            self._entries[tenant] = _Entry(kept.path, mtime, kept.rules, now, error=message)
            if strict:
                raise
            return self._entries[tenant]
        fresh = _Entry(path, mtime, rules, now)
        self._entries[tenant] = fresh
        return fresh
