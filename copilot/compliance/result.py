"""What a compliance check returns: flags with exact spans and one overall risk.

Callers (drafting, the approval workflow, the API) only see these types, so they stay small and frozen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

__all__ = [
    "CATEGORIES",
    "PII_CATEGORIES",
    "ComplianceResult",
    "Flag",
    "Risk",
    "Severity",
    "as_customer_message",
    "combine",
    "overall_risk",
]


class Severity(StrEnum):
    """How bad one finding is: `warn` informs, `review` needs a manager, `block` must not be sent."""

    warn = "warn"
    review = "review"
    block = "block"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.warn: 1, Severity.review: 2, Severity.block: 3}

Risk = Literal["none", "low", "review", "block"]

# Stable ids that reports, dashboards and the labelled data key on; never rename one.
CATEGORIES: tuple[str, ...] = (
    "ad_absolute",
    "ad_medical",
    "ad_finance",
    "ad_education",
    "false_promise",
    "review_cashback",
    "off_platform",
    "pii_id_number",
    "pii_phone",
    "pii_bank_card",
    "pii_address",
    "pii_other",
    "sensitive_political",
    "sensitive_porn",
    "sensitive_gambling",
    "sensitive_violence",
    "harassment",
    "competitor",
    "frequency",
    "ad_superstition",
    "prize_lure",
    "ad_endorsement",
    "spam_ad",
    "fraud",
)
PII_CATEGORIES = frozenset(c for c in CATEGORIES if c.startswith("pii_"))


@dataclass(frozen=True)
class Flag:
    """One finding; `span` indexes the original text `[start, end)` so a UI can underline it."""

    category: str
    rule_id: str
    severity: Severity
    span: tuple[int, int]
    message: str
    suggestion: str | None = None
    matched: str = ""
    evidence: tuple[str, ...] = ()  # semantic flags: the nearest labelled training examples


@dataclass(frozen=True)
class ComplianceResult:
    """All findings for one text and the overall risk; `rules_version` says which rules produced it."""

    risk: Risk
    flags: tuple[Flag, ...]
    rules_version: str = ""

    @property
    def requires_approval(self) -> bool:
        return self.risk in ("review", "block")

    @property
    def categories(self) -> set[str]:
        return {f.category for f in self.flags}


def overall_risk(flags: Iterable[Flag]) -> Risk:
    """`none` without flags, `low` when only warnings, else the most severe flag's level."""
    top = max((f.severity.rank for f in flags), default=0)
    if top == 0:
        return "none"
    if top == 1:
        return "low"
    return "review" if top == 2 else "block"


def as_customer_message(result: ComplianceResult) -> ComplianceResult:
    """The check of a message a customer sent: every flag a warning to the staff member, never a block.

    Spam ads, review farming, fraud, gambling or porn in what a customer writes (and the personal data they
    share) are not the staff member's words: nothing is sent, so nothing is held. The flags keep their
    category, rule and span, are shown to the staff member as warnings and are stored like any other flag, so
    they count in statistics.
    """
    if not result.flags:
        return result
    flags = tuple(replace(f, severity=Severity.warn) for f in result.flags)
    return replace(result, risk=overall_risk(flags), flags=flags)


def combine(result: ComplianceResult, extra: Iterable[Flag]) -> ComplianceResult:
    """`result` plus flags from another check (the LLM pass, the frequency guard), re-judged as a whole.

    An extra flag that repeats a finding of the same category over an overlapping span adds nothing and is
    dropped, so the UI does not underline one phrase twice.
    """
    flags = list(result.flags)
    for flag in extra:
        if not any(
            f.category == flag.category and flag.span[0] < f.span[1] and f.span[0] < flag.span[1]
            for f in flags
        ):
            flags.append(flag)
    flags.sort(key=lambda f: (f.span[0], f.span[1], f.category))
    return ComplianceResult(overall_risk(flags), tuple(flags), result.rules_version)
