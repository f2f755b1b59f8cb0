"""The schema of the main database: the one place tables come from.

Production databases (SQLite or PostgreSQL) get their tables only from the Alembic migrations in
`migrations/`: `upgrade` applies them (`copilot db upgrade`, and `copilot run` as a dev convenience), and
`require_current` refuses to work on a database whose revision is not the code's head, with a message
that names the command. `create_schema` is the fast path for tests and throwaway benchmark databases: it
creates the models' tables and stamps the head revision; `tests/test_migrations.py` proves the
migrations give exactly the same schema on SQLite and on PostgreSQL.

The callback spool is a SQLite side file that only caches acknowledged callbacks until a worker moves
them into the inbox; `create_spool_schema` creates its one table and it has no migrations.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from copilot.errors import ConfigurationError
from copilot.persistence import tables
from copilot.persistence.tables.webhooks import SpooledEvent

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "create_schema",
    "create_spool_schema",
    "current_revision",
    "downgrade",
    "head_revision",
    "require_current",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
UPGRADE_HINT = "run `copilot db upgrade` (with the same COPILOT_DATABASE_URL) first"


def alembic_config() -> Config:
    """Alembic's configuration for the project's migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def head_revision() -> str:
    """The revision this code expects; a second head (two migrations on one parent) is an error to fix."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise ConfigurationError(
            f"the migrations have {len(heads)} heads ({', '.join(sorted(heads))}); point the newer "
            "revision's down_revision at the other head")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None for a database no migration has touched."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations up to `revision`, in one transaction where the database allows it."""
    _run(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, lambda config: command.downgrade(config, revision))


def require_current(engine: Engine) -> None:
    """Refuse a database whose schema is not the code's: older, newer, or never migrated."""
    expected = head_revision()
    found = current_revision(engine)
    if found == expected:
        return
    where = engine.url.render_as_string(hide_password=True)
    if found is None:
        raise ConfigurationError(f"the database {where} has no copilot schema yet; {UPGRADE_HINT}")
    if not _known(found):
        raise ConfigurationError(
            f"the database {where} is at schema revision {found}, which this code does not know (a newer "
            "release migrated it); run the release that matches the database")
    raise ConfigurationError(
        f"the database {where} is at schema revision {found} but this code needs {expected}; {UPGRADE_HINT}")


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def create_schema(engine: Engine) -> None:
    """Tests' and benchmarks' fast path: create the models' tables at once and stamp the head revision.
    Production code migrates (`upgrade`) instead."""
    assert tables.__all__  # the import registers the tables; this keeps it from looking unused
    SQLModel.metadata.create_all(engine)
    _run(engine, lambda config: command.stamp(config, "head"))


def create_spool_schema(engine: Engine) -> None:
    """Create the spool file's table; it never lives in the main database."""
    SpooledEvent.metadata.create_all(engine)


def _run(engine: Engine, action: Callable[[Config], None]) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config)
