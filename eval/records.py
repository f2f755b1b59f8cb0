"""The record format of each suite and the JSONL loader that checks it.

Every problem is reported as `file:line: field: what to fix`, all at once, so a labeller can fix a
whole file in one pass. Optional `id` and `note` keys are allowed on every record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic import ValidationError as PydanticError

from copilot.errors import ValidationError

__all__ = [
    "SUITE_RECORDS",
    "ClassifyRecord",
    "ComplianceRecord",
    "DraftRecord",
    "FactCheckRecord",
    "IntentRecord",
    "Message",
    "Record",
    "RedTeamRecord",
    "ResponseRecord",
    "RetrievalFilters",
    "RetrievalRecord",
    "StageRecord",
    "load_records",
]

StageName = Literal["icebreak", "discovery", "recommend", "revisit"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str | None = None
    note: str | None = None
    _where: str = PrivateAttr(default="")

    @property
    def where(self) -> str:
        """`file:line` of the record, for messages about its content (unknown ids and the like)."""
        return self._where


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Literal["customer", "staff"]
    text: str = Field(min_length=1, max_length=4000)


class StageRecord(Record):
    messages: list[Message] = Field(min_length=1)
    customer_id: str | None = None
    stage: StageName


class IntentRecord(Record):
    messages: list[Message] = Field(min_length=1)
    customer_id: str | None = None
    outcome: Literal[0, 1]


class ComplianceRecord(Record):
    # Labelled by the compliance rules' owners with their own bookkeeping keys, tolerated here.
    model_config = ConfigDict(extra="ignore", frozen=True)
    text: str = Field(min_length=1)
    categories: list[str] = Field(default_factory=list)
    # Who wrote it: staff or customer (1v1 chat) or prose (general text, measured for false alarms apart).
    speaker: Literal["staff", "customer", "prose"] | None = None


class RetrievalFilters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kinds: list[Literal["script", "content"]] = Field(default_factory=list)
    stage: StageName | None = None
    scenario: str | None = None
    tags: list[str] = Field(default_factory=list)
    segment: str | None = None


class RetrievalRecord(Record):
    messages: list[Message] | None = None
    query: str | None = None
    customer_id: str | None = None
    filters: RetrievalFilters = RetrievalFilters()
    relevant: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> RetrievalRecord:
        if not self.query and not self.messages:
            raise ValueError("give either 'query' or 'messages'")
        return self


class ResponseRecord(Record):
    messages: list[Message] = Field(min_length=1)
    candidates: list[str] = Field(min_length=2)
    label: int = Field(ge=0)

    @model_validator(mode="after")
    def _label_in_range(self) -> ResponseRecord:
        if self.label >= len(self.candidates):
            raise ValueError(f"label {self.label} is not an index into the {len(self.candidates)} candidates")
        if any(not c.strip() for c in self.candidates):
            raise ValueError("candidates must not be empty strings")
        return self


class ClassifyRecord(Record):
    text: str = Field(min_length=1)
    label: str = Field(min_length=1)


class DraftRecord(Record):
    customer_id: str | None = None
    messages: list[Message] = Field(default_factory=list)
    expected_stage: StageName | None = None
    reference: str | None = None

    @model_validator(mode="after")
    def _something(self) -> DraftRecord:
        if not self.customer_id and not self.messages:
            raise ValueError("give a 'customer_id', 'messages', or both")
        return self


class CitationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["script", "content", "profile"]
    id: str | None = None  # script or content id
    field: str | None = None  # profile field, e.g. attributes.宝宝生日

    @model_validator(mode="after")
    def _target(self) -> CitationIn:
        if (self.kind == "profile") != (self.field is not None) or (self.kind != "profile" and not self.id):
            raise ValueError("a profile citation needs 'field'; a script or content citation needs 'id'")
        return self


class ClaimLabel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    text: str = Field(min_length=1)
    kind: Literal["price", "size", "quantity", "date", "number", "product", "promise", "profile"]
    supported: bool


class FactCheckRecord(Record):
    customer_id: str | None = None
    messages: list[Message] = Field(default_factory=list)
    draft: str = Field(min_length=1)
    citations: list[CitationIn] = Field(default_factory=list)
    claims: list[ClaimLabel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _claims_in_draft(self) -> FactCheckRecord:
        missing = [c.text for c in self.claims if c.text not in self.draft]
        if missing:
            raise ValueError(f"claims not found in the draft: {missing}")
        if any(c.kind == "profile" for c in self.citations) and not self.customer_id:
            raise ValueError("profile citations need a customer_id")
        return self


class ContentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1)
    append: str = Field(min_length=1)


class RedTeamRecord(Record):
    kind: Literal["goal_hijack", "prompt_leak", "role_play", "profile_injection", "content_injection"]
    customer_id: str
    messages: list[Message] = Field(min_length=1)
    markers: list[str] = Field(min_length=1)  # a draft containing any of them obeyed the attack
    profile_attributes: dict[str, str] = Field(default_factory=dict)  # merged into the profile for this record
    content_patch: ContentPatch | None = None  # text appended to a library item for this record
    obeyed: str | None = None  # what an obedient model answers (the test stub's script; the suite ignores it)


SUITE_RECORDS: dict[str, type[Record]] = {
    "stage": StageRecord,
    "intent": IntentRecord,
    "compliance": ComplianceRecord,
    "retrieval": RetrievalRecord,
    "response": ResponseRecord,
    "classify": ClassifyRecord,
    "drafts": DraftRecord,
    "factcheck": FactCheckRecord,
    "redteam": RedTeamRecord,
}


def load_records(path: Path, suite: str, *, limit: int | None = None) -> list[Any]:
    """Parse and validate a JSONL file for `suite`; raise one ValidationError listing every bad line."""
    if suite not in SUITE_RECORDS:
        raise ValidationError(f"unknown suite {suite!r}; choose one of {', '.join(SUITE_RECORDS)}")
    if not path.is_file():
        raise ValidationError(f"{path}: no such file; pass --data with a JSONL file for the {suite} suite")
    model = SUITE_RECORDS[suite]
    records: list[Any] = []
    problems: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})")
                continue
            try:
                record = model.model_validate(raw)
                record._where = f"{path}:{number}"
                records.append(record)
            except PydanticError as exc:
                for error in exc.errors():
                    where = ".".join(str(part) for part in error["loc"]) or "record"
                    problems.append(f"{path}:{number}: {where}: {error['msg']}")
            if limit is not None and len(records) >= limit:
                break
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:30])
        more = f"\n  … and {len(problems) - 30} more" if len(problems) > 30 else ""
        raise ValidationError(f"{len(problems)} problem(s) in {path} for the {suite} suite:\n{shown}{more}")
    if not records:
        raise ValidationError(f"{path}: no records; write one JSON object per line")
    return records
