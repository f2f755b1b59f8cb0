"""The proactive revisit queue: who each staff member should message today, why, and what to say.

`rules` (rules as data) → `evaluate` (one customer) → `generate` (the daily job) → `store` (the queue
table, staff actions, outcomes) → `queue` (the facade with lazily drafted openers) → `schedule`.
"""

from __future__ import annotations

from copilot.persistence.tables.revisits import RevisitItem
from copilot.revisits.generate import FrequencyCheck, GenerationReport, generate
from copilot.revisits.queue import QueueOut, RevisitOut, Revisits, StaffOut
from copilot.revisits.rules import RuleSet, RuleStore, parse_rule_sets
from copilot.revisits.schedule import RevisitScheduler

__all__ = [
    "FrequencyCheck",
    "GenerationReport",
    "QueueOut",
    "RevisitItem",
    "RevisitOut",
    "RevisitScheduler",
    "Revisits",
    "RuleSet",
    "RuleStore",
    "StaffOut",
    "generate",
    "parse_rule_sets",
]
