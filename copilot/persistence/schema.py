"""Creating the schema: the one place tables are created.

`create_schema` creates every table of `copilot.persistence.tables` that is missing in the main
database; `create_spool_schema` does the same for the callback spool, a SQLite file of its own.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from copilot.persistence import tables
from copilot.persistence.tables.webhooks import SpooledEvent

__all__ = ["create_schema", "create_spool_schema"]


def create_schema(engine: Engine) -> None:
    """Create the main database's missing tables (every module of `tables` is registered by importing it)."""
    assert tables.__all__  # the import registers the tables; this keeps it from looking unused
    SQLModel.metadata.create_all(engine)


def create_spool_schema(engine: Engine) -> None:
    """Create the spool file's table; it never lives in the main database."""
    SpooledEvent.metadata.create_all(engine)
