"""`copilot db …`: schema migrations of the main database (Alembic)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from copilot.config import get_settings
from copilot.errors import CopilotError

db_app = typer.Typer(no_args_is_help=True, help="Schema migrations of the database (COPILOT_DATABASE_URL).")
console = Console()
err = Console(stderr=True)


@db_app.command("upgrade")
def upgrade_command(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
) -> None:
    """Bring the database's schema up to this code's migrations (safe to repeat)."""
    from copilot.persistence.engine import make_engine
    from copilot.persistence.schema import current_revision, upgrade

    engine = make_engine(get_settings().sqlalchemy_url)
    try:
        before = current_revision(engine)
        upgrade(engine, revision)
        after = current_revision(engine)
    except CopilotError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from None
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        console.print(f"{where}: schema already at {after}")
    else:
        console.print(f"{where}: schema {before or '(empty)'} → {after}")


@db_app.command("current")
def current_command() -> None:
    """Print the database's schema revision and the one this code needs; exit 1 when they differ."""
    from copilot.persistence.engine import make_engine
    from copilot.persistence.schema import current_revision, head_revision

    engine = make_engine(get_settings().sqlalchemy_url)
    try:
        found, expected = current_revision(engine), head_revision()
    finally:
        engine.dispose()
    console.print(f"database: {found or '(no schema)'}   code: {expected}")
    if found != expected:
        raise typer.Exit(code=1)


@db_app.command("revision")
def revision_command(
    message: Annotated[str, typer.Option("-m", "--message", help="what the revision changes")],
    empty: Annotated[bool, typer.Option(help="write an empty revision instead of the models' difference")] = False,
) -> None:
    """Write a new migration on top of the head: the difference between the models (`copilot.persistence.tables`)
    and the schema the existing migrations build, worked out on a scratch SQLite file. Review it, then
    run `copilot db upgrade`."""
    from alembic import command

    from copilot.persistence.engine import make_engine
    from copilot.persistence.schema import alembic_config, upgrade

    config = alembic_config()
    if empty:
        command.revision(config, message=message)
        return
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'head.db'}")
        try:
            upgrade(engine)
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                script = command.revision(config, message=message, autogenerate=True)
        finally:
            engine.dispose()
    path = getattr(script, "path", None)
    console.print(f"wrote {path}; read it through, then run `copilot db upgrade`")
