"""Schema migrations: they build exactly the models' schema (SQLite and PostgreSQL), there is one head, and
every process that serves refuses a database whose schema is not the code's, naming the command to run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel
from typer.testing import CliRunner

from cli.main import app
from copilot.config import get_settings
from copilot.errors import ConfigurationError
from copilot.persistence import tables
from copilot.persistence.engine import make_engine
from copilot.persistence.schema import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    require_current,
    upgrade,
)
from copilot.service import Copilot


def _diff(engine: Any) -> list[Any]:
    assert tables.__all__
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def test_migrations_build_exactly_the_models_schema(empty_database: Any) -> None:
    upgrade(empty_database)
    assert current_revision(empty_database) == head_revision()
    assert _diff(empty_database) == []  # a table or column without its migration shows up here
    require_current(empty_database)


def test_migrations_go_down_to_nothing_and_up_again(empty_database: Any) -> None:
    upgrade(empty_database)
    downgrade(empty_database, "base")
    assert set(inspect(empty_database).get_table_names()) <= {"alembic_version"}
    upgrade(empty_database)
    assert _diff(empty_database) == []


def test_the_migrations_have_a_single_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"two migrations share a parent: {heads}; re-point the newer one's down_revision"


def test_a_copilot_refuses_an_unmigrated_or_outdated_database(empty_database: Any) -> None:
    with pytest.raises(ConfigurationError, match="copilot db upgrade"):
        require_current(empty_database)
    upgrade(empty_database)
    with empty_database.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    with pytest.raises(ConfigurationError, match="does not know"):
        require_current(empty_database)
    with empty_database.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision()})
    require_current(empty_database)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("COPILOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COPILOT_EMBEDDING_MODEL", "hashing")
    monkeypatch.delenv("COPILOT_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_serve_and_worker_refuse_a_fresh_database_until_db_upgrade_runs(cli_env: Path) -> None:
    runner = CliRunner()
    for command in (["serve"], ["worker"], ["suggest", "--customer", "c1"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert "copilot db upgrade" in result.output and "Traceback" not in result.output
    assert runner.invoke(app, ["db", "current"]).exit_code == 1
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert "(empty) →" in upgraded.output
    again = runner.invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0 and "already at" in again.output
    assert runner.invoke(app, ["db", "current"]).exit_code == 0
    engine = make_engine(f"sqlite:///{cli_env / 'copilot.db'}")
    try:
        require_current(engine)
    finally:
        engine.dispose()


def test_copilot_construction_checks_the_schema(empty_database: Any, tmp_path: Path) -> None:
    from copilot.compliance import ComplianceChecker
    from copilot.embedding.embedders import HashingEmbedder
    from copilot.retrieval.vectorstore import ChromaStore

    embedder = HashingEmbedder()
    with pytest.raises(ConfigurationError, match="copilot db upgrade"):
        Copilot(engine=empty_database, embedder=embedder, store=ChromaStore(embedder, tmp_path / "chroma"),
                compliance=ComplianceChecker())
