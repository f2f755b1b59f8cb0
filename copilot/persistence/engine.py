"""Database engine and sessions (SQLModel over SQLAlchemy)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, case, event, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, create_engine

__all__ = ["insert_ignore", "insert_new", "is_sqlite_file", "make_engine", "mark_rows", "session_scope"]


def make_engine(url: str, *, lock_timeout_s: float = 30.0) -> Engine:
    """An engine for `url`; SQLite files get WAL (readers never block the writer) and wait up to
    `lock_timeout_s` for the write lock (0: fail at once, for callers that wait on their own terms)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        # Columns hold naive UTC times (as SQLite does); a UTC session keeps aware values UTC on the way in.
        return create_engine(url, pool_pre_ping=True, connect_args={"options": "-c timezone=UTC"})
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": lock_timeout_s})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def is_sqlite_file(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")


def insert_new(connection: Connection, model: type[SQLModel], rows: list[dict[str, Any]],
               unique: list[str]) -> list[bool]:
    """Insert `rows` in the caller's transaction, skipping any whose `unique` columns are taken;
    each flag says whether its row was new. No exception on the duplicate path where the database
    can say ON CONFLICT DO NOTHING; elsewhere a savepoint per row keeps a duplicate from aborting."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    dialect = connection.dialect.name
    if dialect == "sqlite":
        return [connection.execute(sqlite.insert(table).values(**row).on_conflict_do_nothing(
            index_elements=unique)).rowcount == 1 for row in rows]
    if dialect == "postgresql":  # psycopg reports no rowcount beside RETURNING: a returned row means new
        return [connection.execute(postgresql.insert(table).values(**row).on_conflict_do_nothing(
            index_elements=unique).returning(*table.primary_key.columns)).first() is not None for row in rows]
    flags: list[bool] = []
    for row in rows:
        try:
            with connection.begin_nested():
                connection.execute(insert(table).values(**row))
            flags.append(True)
        except IntegrityError:
            flags.append(False)
    return flags


def insert_ignore(connection: Connection, model: type[SQLModel], rows: list[dict[str, Any]],
                  unique: list[str]) -> None:
    """Insert `rows` in one statement batch, silently skipping those whose `unique` columns are taken
    (ON CONFLICT DO NOTHING); other databases fall back to `insert_new`, row by row."""
    if not rows:
        return
    table: Table = model.__table__  # type: ignore[attr-defined]
    dialect = connection.dialect.name
    if dialect in ("sqlite", "postgresql"):
        module = sqlite if dialect == "sqlite" else postgresql
        connection.execute(module.insert(table).on_conflict_do_nothing(index_elements=unique), rows)
        return
    insert_new(connection, model, rows, unique)


def mark_rows(connection: Connection, model: type[SQLModel], rows: list[dict[str, Any]], unique: list[str],
              *, lowest: str | None = None) -> None:
    """Upsert work marks keyed by `unique`: a mark that exists gets `version` + 1 (so a reader that removes
    marks at the version it read never loses one written meanwhile) and, with `lowest`, keeps the lower of
    the two non-null values of that column. SQLite and PostgreSQL only (ON CONFLICT DO UPDATE)."""
    if not rows:
        return
    table: Table = model.__table__  # type: ignore[attr-defined]
    dialect = connection.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"work marks need ON CONFLICT DO UPDATE, which {dialect} lacks")
    module = sqlite if dialect == "sqlite" else postgresql
    statement = module.insert(table)
    values: dict[str, Any] = {"version": table.c.version + 1}
    if lowest is not None:
        old, new = table.c[lowest], statement.excluded[lowest]
        values[lowest] = case((new.is_(None), old), (old.is_(None), new), (new < old, new), else_=old)
    connection.execute(statement.on_conflict_do_update(index_elements=unique, set_=values), rows)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: committed when the block ends, rolled back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
