"""Creating the schema: the one place tables are created.

`create_schema` creates every table of `copilot.persistence.tables` that is missing in the main
database; `create_spool_schema` does the same for the callback spool, a SQLite file of its own.
"""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from copilot.persistence import tables
from copilot.persistence.tables.webhooks import SpooledEvent

__all__ = ["create_schema", "create_spool_schema"]


def create_schema(engine: Engine) -> None:
    """Create the main database's missing tables (every module of `tables` is registered by importing it)."""
    assert tables.__all__  # the import registers the tables; this keeps it from looking unused
    SQLModel.metadata.create_all(engine)
    _add_staff_access_columns(engine)


# Columns added to an existing table after databases were already made with it. `create_all` only makes
# missing tables, so a database from before staff roles gets them here, with the defaults every existing
# member had: an active library member with the staff role and no team.
_STAFF_ACCESS_COLUMNS = {
    "role": "VARCHAR NOT NULL DEFAULT 'staff'",
    "team": "VARCHAR",
    "source": "VARCHAR NOT NULL DEFAULT 'library'",
    "active": "BOOLEAN NOT NULL DEFAULT '1'",
}


def _add_staff_access_columns(engine: Engine) -> None:
    present = {column["name"] for column in inspect(engine).get_columns("staff")}
    missing = [name for name in _STAFF_ACCESS_COLUMNS if name not in present]
    if not missing:
        return
    with engine.begin() as connection:
        for name in missing:
            connection.execute(text(f"ALTER TABLE staff ADD COLUMN {name} {_STAFF_ACCESS_COLUMNS[name]}"))


def create_spool_schema(engine: Engine) -> None:
    """Create the spool file's table; it never lives in the main database."""
    SpooledEvent.metadata.create_all(engine)
