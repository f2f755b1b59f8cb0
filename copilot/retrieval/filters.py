"""Exact filters over retrieved documents (kind, stage, scenario, tags, segment, season, customer
conditions), and the part Chroma can apply itself."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from copilot.knowledge.schema import in_season
from copilot.retrieval.documents import KnowledgeDoc

__all__ = ["Filters"]


@dataclass(frozen=True)
class Filters:
    kinds: tuple[str, ...] = ()
    stage: str | None = None
    scenario: str | None = None
    tags: tuple[str, ...] = ()
    segment: str | None = None
    today: dt.date | None = None  # drop scripts out of season
    has_orders: bool | None = None  # drop scripts whose customer conditions do not hold

    def admits(self, doc: KnowledgeDoc) -> bool:
        if self.kinds and doc.kind not in self.kinds:
            return False
        if self.stage and doc.stages and self.stage not in doc.stages:
            return False
        if self.scenario and self.scenario not in doc.scenarios:
            return False
        if self.tags and not set(self.tags) & set(doc.tags):
            return False
        if self.today is not None and not in_season(doc.season, self.today):
            return False
        if self.has_orders is not None and doc.requires:
            if "orders" in doc.requires and not self.has_orders:
                return False
            if "no_orders" in doc.requires and self.has_orders:
                return False
        return not (self.segment and doc.segments and self.segment not in doc.segments)

    def chroma_where(self) -> dict[str, object] | None:
        clauses: list[dict[str, object]] = []
        if len(self.kinds) == 1:
            clauses.append({"kind": self.kinds[0]})
        if self.stage and self.kinds == ("script",):
            clauses.append({"stage": self.stage})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}
