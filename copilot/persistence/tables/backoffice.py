"""The back office's derived rows: customer turns and daily message counts per conversation (rebuilt from
`messages` whenever a conversation changes, so statistics are sums over small tables), inspection hits,
and contact events (a staff member deleting a customer) that inspection rules watch.

`day` columns are local dates in the tenant's calendar (Asia/Shanghai unless its inspection rules say
otherwise); every other time is UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Column, Connection, Index, UniqueConstraint, event, inspect
from sqlalchemy import Date as SADate
from sqlmodel import Field, SQLModel

from copilot.clock import utcnow
from copilot.persistence.tables.base import json_dict, new_id
from copilot.persistence.tables.conversations import SidebarFeedback, SuggestionRow

__all__ = [
    "MARK_ALL_SUGGESTIONS", "SUGGESTION_TRIGGERS", "ChatDaily", "ChatTurn", "ContactEvent", "InspectionHit", "InspectionQueue", "StaffDaily",
    "StaffSuggestionsDaily", "StatsDirty", "SuggestionMark", "drop_suggestion_triggers",
]


class InspectionQueue(SQLModel, table=True):
    """A conversation whose turns and daily rows must be rebuilt, marked in the transaction that changed its
    messages; `first_message_id` is the lowest id of its new messages the content rules have not read yet
    (None when only times or recalls changed). One row per conversation: a new mark lowers
    `first_message_id` and bumps `version`, and the back office removes a row only at the version it read,
    so message rows are written once and never flagged afterwards."""

    __tablename__ = "inspection_queue"
    __table_args__ = (UniqueConstraint("tenant_id", "conversation_id", name="uq_inspection_queue_conversation"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    conversation_id: str
    first_message_id: int | None = None
    version: int = 1


class ChatTurn(SQLModel, table=True):
    """A customer turn: the customer's messages after the staff side's last message (or the chat's first
    message), and the staff message that answered it, if any."""

    __tablename__ = "chat_turns"
    __table_args__ = (
        UniqueConstraint("conversation_id", "started_at", name="uq_chat_turns_start"),
        Index("ix_chat_turns_day", "tenant_id", "day", "staff_id"),
        Index("ix_chat_turns_open", "tenant_id", "answered_at", "deadline"),
        # turns of a range still open: equal on two columns, so it wins over ix_chat_turns_day, and covering
        Index("ix_chat_turns_open_day", "tenant_id", "answered_at", "day", "staff_id", "deadline"),
        Index("ix_chat_turns_response", "tenant_id", "staff_id", "response_s"),
    )
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    conversation_id: str = Field(index=True)
    staff_id: str
    customer_id: str
    day: dt.date = Field(sa_column=Column(SADate, nullable=False))
    started_at: dt.datetime
    first_message_id: int
    customer_messages: int = 1
    answered_at: dt.datetime | None = None
    answered_by: str | None = None
    answer_message_id: int | None = None
    response_s: float | None = None  # working seconds when the rule counts working time, else wall-clock
    answered_same_day: bool = False
    deadline: dt.datetime | None = None  # when the reply-timeout rule's limit runs out; None: no rule
    rule_id: str = ""
    is_group: bool = False


class ChatDaily(SQLModel, table=True):
    """Messages per conversation, staff member, local day and customer (the sender, in a group chat)."""

    __tablename__ = "chat_daily"
    __table_args__ = (
        Index("ix_chat_daily_day", "tenant_id", "day", "staff_id"),
        Index("ix_chat_daily_customer", "tenant_id", "customer_id", "day", "staff_id"),  # orders after chats
    )
    conversation_id: str = Field(primary_key=True)
    staff_id: str = Field(primary_key=True)
    day: dt.date = Field(sa_column=Column(SADate, primary_key=True))
    customer_id: str = Field(primary_key=True)
    tenant_id: str
    customer_messages: int = 0
    staff_messages: int = 0


class StaffDaily(SQLModel, table=True):
    """The additive figures of one staff member's local day, summed from `chat_daily` and `chat_turns`
    whenever one of its conversations changes (see `StatsDirty`), so a month of a thousand staff members
    is thirty thousand rows. The two range figures that do not add up over days keep their parts here:
    the day's distinct customers and its sorted response times (JSON lists), so the customers and the
    exact median of a range are a union and a merge of these rows, never a pass over the turns."""

    __tablename__ = "staff_daily"
    __table_args__ = (Index("ix_staff_daily_day", "tenant_id", "day"),)
    tenant_id: str = Field(primary_key=True)
    staff_id: str = Field(primary_key=True)
    day: dt.date = Field(sa_column=Column(SADate, primary_key=True))
    customer_messages: int = 0
    messages_sent: int = 0
    customers: int = 0
    turns: int = 0
    answered: int = 0  # the same day
    within_3min: int = 0
    responses: int = 0
    response_sum_s: float = 0.0
    response_median_s: float | None = None
    late: int = 0  # answered after the deadline (turns still open past it are counted when asked)
    customer_ids: str = "[]"  # JSON list of the customers who wrote that day, sorted
    response_values: str = "[]"  # JSON list of the day's response times in seconds, ascending


class StatsDirty(SQLModel, table=True):
    """A staff member's day whose `staff_daily` row must be summed again; marked in the transaction that
    changed its conversations (a new mark of a marked day bumps `version`), removed at the version read by
    the transaction that sums it."""

    __tablename__ = "stats_dirty"
    tenant_id: str = Field(primary_key=True)
    staff_id: str = Field(primary_key=True)
    day: dt.date = Field(sa_column=Column(SADate, primary_key=True))
    version: int = 1


class StaffSuggestionsDaily(SQLModel, table=True):
    """Suggestions drafted for a staff member on a local day (`zone` names the calendar it was counted in) and
    what the sidebar feedback says became of them; summed again for the days `SuggestionMark` names."""

    __tablename__ = "staff_suggestions_daily"
    __table_args__ = (Index("ix_staff_suggestions_daily_day", "tenant_id", "day"),)
    tenant_id: str = Field(primary_key=True)
    staff_id: str = Field(primary_key=True)
    day: dt.date = Field(sa_column=Column(SADate, primary_key=True))
    zone: str
    shown: int = 0
    used: int = 0
    edited: int = 0
    ignored: int = 0


class SuggestionMark(SQLModel, table=True):
    """A staff member's UTC date whose suggestions or their feedback changed, written by database triggers on
    `suggestions` and `sidebar_feedback` (so every writer marks, whatever code path it takes); a new mark of
    a marked date bumps `version`, and the rollup removes a mark only at the version it read."""

    __tablename__ = "suggestion_marks"
    tenant_id: str = Field(primary_key=True)
    staff_id: str = Field(primary_key=True)
    day: dt.date = Field(sa_column=Column(SADate, primary_key=True))  # UTC
    version: int = 1


class InspectionHit(SQLModel, table=True):
    """One finding of an inspection rule; `subject` names what it is about (a message, a turn or a contact
    event) so the same finding is stored once however often it is found."""

    __tablename__ = "inspection_hits"
    __table_args__ = (
        UniqueConstraint("tenant_id", "rule_id", "subject", name="uq_inspection_hits_subject"),
        Index("ix_inspection_hits_day", "tenant_id", "day", "staff_id"),
        Index("ix_inspection_hits_escalate", "status", "escalate_at"),
    )
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str
    rule_id: str
    kind: str  # reply_timeout | compliance | sensitive_words | behaviour
    category: str
    severity: str  # warn | review | block
    subject: str
    staff_id: str
    customer_id: str | None = None
    conversation_id: str | None = None
    message_id: int | None = None
    day: dt.date = Field(sa_column=Column(SADate, nullable=False))
    at: dt.datetime
    detail: dict[str, Any] = json_dict()
    status: str = "open"  # open | handled
    handled_by: str | None = None
    handled_at: dt.datetime | None = None
    note: str | None = None
    notified_at: dt.datetime | None = None
    escalate_at: dt.datetime | None = None  # unhandled by then: the supervisor is told
    escalated_at: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class ContactEvent(SQLModel, table=True):
    """A change of a staff member's customer relation that inspection watches, e.g. a deleted customer."""

    __tablename__ = "contact_events"
    __table_args__ = (UniqueConstraint("tenant_id", "dedupe_key"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    kind: str  # del_external_contact (the staff member deleted the customer) | del_follow_user
    staff_id: str
    customer_id: str
    at: dt.datetime
    dedupe_key: str
    inspected: bool = False


# What the statistics read from the copilot's own tables, made index-driven: suggestions of a range by time
# (with the staff member, so the scan needs no table rows), the latest suggestion of a staff member for a
# customer up to a day, and a suggestion's feedback actions. Declared beside the statistics tables that read
# them; the tables themselves belong to their own modules.
_suggestions = SuggestionRow.__table__  # type: ignore[attr-defined]
_feedback = SidebarFeedback.__table__  # type: ignore[attr-defined]
Index("ix_suggestions_stats_time", _suggestions.c.tenant_id, _suggestions.c.created_at, _suggestions.c.staff_id,
      _suggestions.c.id)
Index("ix_suggestions_stats_customer", _suggestions.c.tenant_id, _suggestions.c.staff_id,
      _suggestions.c.customer_id, _suggestions.c.created_at)
Index("ix_sidebar_feedback_stats", _feedback.c.suggestion_id, _feedback.c.action)

# The triggers that write `suggestion_marks`: per dialect, statements to create them. SQLite's date() and
# PostgreSQL's UTC date of a timestamptz give the same UTC date.
_UPSERT = ("ON CONFLICT (tenant_id, staff_id, day) DO UPDATE SET version = suggestion_marks.version + 1")
_SQLITE_MARK = ("INSERT INTO suggestion_marks (tenant_id, staff_id, day, version) "
                "SELECT tenant_id, staff_id, date(created_at), 1 FROM suggestions WHERE id = {row}.{key} "
                f"AND staff_id IS NOT NULL {_UPSERT};")
_SQLITE = [
    *(f"CREATE TRIGGER IF NOT EXISTS suggestions_marks_{when.split()[0].lower()} AFTER {when} ON suggestions "
      f"FOR EACH ROW WHEN {row}.staff_id IS NOT NULL BEGIN INSERT INTO suggestion_marks "
      f"(tenant_id, staff_id, day, version) VALUES ({row}.tenant_id, {row}.staff_id, date({row}.created_at), 1) "
      f"{_UPSERT}; END"
      for when, row in (("INSERT", "NEW"), ("DELETE", "OLD"))),
    "CREATE TRIGGER IF NOT EXISTS suggestions_marks_update AFTER UPDATE OF tenant_id, staff_id, created_at "
    "ON suggestions FOR EACH ROW BEGIN "
    + "INSERT INTO suggestion_marks (tenant_id, staff_id, day, version) SELECT OLD.tenant_id, OLD.staff_id, "
      f"date(OLD.created_at), 1 WHERE OLD.staff_id IS NOT NULL {_UPSERT}; "
    + "INSERT INTO suggestion_marks (tenant_id, staff_id, day, version) SELECT NEW.tenant_id, NEW.staff_id, "
      f"date(NEW.created_at), 1 WHERE NEW.staff_id IS NOT NULL {_UPSERT}; END",
    *(f"CREATE TRIGGER IF NOT EXISTS sidebar_feedback_marks_{when.split()[0].lower()} AFTER {when} "
      f"ON sidebar_feedback FOR EACH ROW BEGIN {_SQLITE_MARK.format(row=row, key='suggestion_id')} END"
      for when, row in (("INSERT", "NEW"), ("DELETE", "OLD"), ("UPDATE OF suggestion_id, action", "OLD"))),
    "CREATE TRIGGER IF NOT EXISTS sidebar_feedback_marks_moved AFTER UPDATE OF suggestion_id ON sidebar_feedback "
    f"FOR EACH ROW BEGIN {_SQLITE_MARK.format(row='NEW', key='suggestion_id')} END",
]
_PG_MARK = ("INSERT INTO suggestion_marks (tenant_id, staff_id, day, version) "
            "SELECT tenant_id, staff_id, (created_at AT TIME ZONE 'UTC')::date, 1 FROM suggestions "
            f"WHERE id = {{row}}.suggestion_id AND staff_id IS NOT NULL {_UPSERT};")
_PG_ROW = ("IF {row}.staff_id IS NOT NULL THEN INSERT INTO suggestion_marks (tenant_id, staff_id, day, version) "
           "VALUES ({row}.tenant_id, {row}.staff_id, ({row}.created_at AT TIME ZONE 'UTC')::date, 1) "
           f"{_UPSERT}; END IF;")
_POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION suggestions_marks() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"IF TG_OP <> 'INSERT' THEN {_PG_ROW.format(row='OLD')} END IF; "
    f"IF TG_OP <> 'DELETE' THEN {_PG_ROW.format(row='NEW')} END IF; RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION sidebar_feedback_marks() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"IF TG_OP <> 'INSERT' THEN {_PG_MARK.format(row='OLD')} END IF; "
    f"IF TG_OP <> 'DELETE' THEN {_PG_MARK.format(row='NEW')} END IF; RETURN NULL; END $$",
    "CREATE OR REPLACE TRIGGER suggestions_marks AFTER INSERT OR DELETE OR UPDATE OF tenant_id, staff_id, created_at "
    "ON suggestions FOR EACH ROW EXECUTE FUNCTION suggestions_marks()",
    "CREATE OR REPLACE TRIGGER sidebar_feedback_marks AFTER INSERT OR DELETE OR UPDATE OF suggestion_id, action "
    "ON sidebar_feedback FOR EACH ROW EXECUTE FUNCTION sidebar_feedback_marks()",
]
SUGGESTION_TRIGGERS = {"sqlite": _SQLITE, "postgresql": _POSTGRESQL}

# Every staff member's UTC dates with suggestions, marked (a calendar change, or a new database).
MARK_ALL_SUGGESTIONS = {
    "sqlite": "INSERT INTO suggestion_marks (tenant_id, staff_id, day, version) SELECT DISTINCT tenant_id, "
              "staff_id, date(created_at), 1 FROM suggestions WHERE tenant_id = :tenant AND staff_id IS NOT NULL "
              "ON CONFLICT (tenant_id, staff_id, day) DO UPDATE SET version = suggestion_marks.version + 1",
    "postgresql": "INSERT INTO suggestion_marks (tenant_id, staff_id, day, version) SELECT DISTINCT tenant_id, "
                  "staff_id, (created_at AT TIME ZONE 'UTC')::date, 1 FROM suggestions WHERE tenant_id = :tenant "
                  "AND staff_id IS NOT NULL ON CONFLICT (tenant_id, staff_id, day) "
                  "DO UPDATE SET version = suggestion_marks.version + 1",
}


def drop_suggestion_triggers(dialect: str) -> list[str]:
    """The statements that remove what `SUGGESTION_TRIGGERS` creates (for a downgrade)."""
    if dialect == "postgresql":
        return ["DROP TRIGGER IF EXISTS suggestions_marks ON suggestions",
                "DROP TRIGGER IF EXISTS sidebar_feedback_marks ON sidebar_feedback",
                "DROP FUNCTION IF EXISTS suggestions_marks()", "DROP FUNCTION IF EXISTS sidebar_feedback_marks()"]
    names = ["suggestions_marks_insert", "suggestions_marks_delete", "suggestions_marks_update",
             "sidebar_feedback_marks_insert", "sidebar_feedback_marks_delete", "sidebar_feedback_marks_update",
             "sidebar_feedback_marks_moved"]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in names]


def _create_triggers(target: Any, connection: Connection, **_: Any) -> None:
    """Tables made with `create_all` (tests, throwaway databases) get the triggers too, once all exist."""
    statements = SUGGESTION_TRIGGERS.get(connection.dialect.name)
    names = {"suggestions", "sidebar_feedback", "suggestion_marks"}
    if statements and names <= set(inspect(connection).get_table_names()):
        for statement in statements:
            connection.exec_driver_sql(statement)


event.listen(SQLModel.metadata, "after_create", _create_triggers)
