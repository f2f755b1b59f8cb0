"""Alembic's environment: migrates the connection `copilot.persistence.schema` hands in, or, when run as
plain `alembic …` from the repository root, the database the settings name (COPILOT_DATABASE_URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

from copilot.persistence import tables

assert tables.__all__  # importing the package registers every table on SQLModel.metadata

config = context.config
target_metadata = SQLModel.metadata


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite alters most columns only by copying the table; batch mode does that for it.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    from copilot.config import get_settings
    from copilot.persistence.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or get_settings().sqlalchemy_url)
    try:
        with engine.connect() as connection:
            _migrate(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `copilot db upgrade` against the database")
_run()
