"""What retrieval indexes: one document per script or content item, with the fields filters read."""

from __future__ import annotations

from dataclasses import dataclass

from copilot.knowledge.schema import ContentItem, Script
from copilot.retrieval.vectorstore import VectorDoc

__all__ = ["KnowledgeDoc", "doc_for_content", "doc_for_script"]


@dataclass(frozen=True)
class KnowledgeDoc:
    kind: str  # "script" | "content"
    id: str
    text: str  # what is embedded and indexed
    body: str = ""  # the item's own words: a script's reply text, a content item's summary
    title: str = ""
    stages: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    season: tuple[str, str] | None = None
    requires: tuple[str, ...] = ()
    content_kind: str = ""  # article, product, event, ... for content items

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"

    def vector_doc(self) -> VectorDoc:
        meta: dict[str, str | int | float | bool] = {"kind": self.kind, "id": self.id}
        if len(self.stages) == 1:
            meta["stage"] = self.stages[0]
        return VectorDoc(self.key, self.text, meta)


def doc_for_script(script: Script) -> KnowledgeDoc:
    parts = [script.scenario, script.text, " ".join(script.triggers), " ".join(script.tags)]
    return KnowledgeDoc(
        kind="script", id=script.id, text="\n".join(p for p in parts if p), body=script.text,
        title=script.scenario,
        stages=(script.stage.value,), scenarios=(script.scenario,), tags=script.tags,
        segments=script.segments, triggers=script.triggers, season=script.season, requires=script.requires,
    )


def doc_for_content(item: ContentItem) -> KnowledgeDoc:
    parts = [item.title, item.summary, " ".join(item.tags)]
    return KnowledgeDoc(
        kind="content", id=item.id, text="\n".join(p for p in parts if p), body=item.summary,
        title=item.title,
        stages=tuple(s.value for s in item.stages), scenarios=item.scenarios, tags=item.tags,
        segments=item.segments, content_kind=item.kind,
    )
