"""The back office supervisors use: chat-archive import, inspection (质检) rules and hits, statistics per
staff member, team and day, and alerts.

`archive` (records in) → `persistence.messages` (the one message store) → `inspection` (turns, daily
counts and hits, rebuilt per conversation) → `stats` (GROUP BY over the derived tables) → `service`
(`BackOffice`, what the API, CLI and `schedule` use). A workflow beside revisits and WeCom automation: it
imports the domain below it and neither of them.
"""

from copilot.backoffice.rules import DEFAULT_RULES, RuleBook
from copilot.backoffice.schedule import BackOfficeScheduler
from copilot.backoffice.service import SEVERITIES, BackOffice, HitQuery, ImportResult

__all__ = ["DEFAULT_RULES", "SEVERITIES", "BackOffice", "BackOfficeScheduler", "HitQuery", "ImportResult", "RuleBook"]
