"""`copilot revisits generate` queues the day's items without loading any model, and a rerun adds nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from cli.revisits import revisits_app
from copilot.config import get_settings
from copilot.persistence.engine import make_engine, session_scope
from copilot.persistence.schema import create_schema
from copilot.persistence.tables.library import CustomerRow, StaffRow, Tenant
from copilot.persistence.tables.revisits import RevisitItem

RULES = 'rules:\n  - {id: rep, kind: repurchase_due, priority: 80, lead_days: 3, reason: "「{product}」该复购了"}\n'
ORDER = {"id": "o1", "date": "2026-10-28", "items": [{"sku": "A", "name": "奶粉", "qty": 1, "price": 9, "cycle_days": 25}]}


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("COPILOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("COPILOT_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_generate_command_queues_the_day_once(data_dir: Path) -> None:
    engine = make_engine(f"sqlite:///{data_dir / 'copilot.db'}")
    create_schema(engine)
    with session_scope(engine) as session:
        session.add(Tenant(id="acme"))
        session.add(StaffRow(tenant_id="acme", id="s1", name="甲"))
        for cid, orders in (("due", [ORDER]), ("idle", [])):
            session.add(CustomerRow(tenant_id="acme", id=cid, name=cid, staff_id="s1", source="test",
                                    profile={"id": cid, "name": cid, "orders": orders}))
    rules = data_dir / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    runner = CliRunner()
    args = ["generate", "--date", "2026-11-22", "--rules", str(rules)]
    first = runner.invoke(revisits_app, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(revisits_app, args)
    assert second.exit_code == 0, second.output
    with Session(engine) as session:
        items = session.exec(select(RevisitItem)).all()
    assert [(i.customer_id, i.rule_id, i.reasons) for i in items] == [("due", "rep", ["「奶粉」该复购了"])]
    assert "acme 2026-11-22: created 1 of 2 customers" in first.output
    assert "created 0 of 2 customers (matched 0, already queued 1" in second.output


def test_generate_command_explains_a_bad_date(data_dir: Path) -> None:
    result = CliRunner().invoke(revisits_app, ["generate", "--date", "22/11/2026"])
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output
