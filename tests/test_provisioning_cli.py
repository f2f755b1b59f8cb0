"""`copilot tenants|keys|staff …` against a real database and the stub WeCom: what an operator does to set
up a tenant, and the library's own checks of staff roles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from cli.main import app
from copilot.config import get_settings
from copilot.errors import LibraryError
from copilot.identity.keys import KeyRing
from copilot.identity.staff import list_staff
from copilot.knowledge.loader import load_library
from copilot.persistence.engine import make_engine
from copilot.persistence.tables.identity import ApiKeyRow
from copilot.persistence.tables.wecom import WeComApp
from tests.conftest import KNOWLEDGE
from tests.wecom_stub import CALLBACK_AES_KEY, StubWeCom, running_stub


@pytest.fixture
def stub() -> Iterator[StubWeCom]:
    with running_stub() as running:
        yield running


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub: StubWeCom) -> Iterator[Path]:
    monkeypatch.setenv("COPILOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("COPILOT_DATABASE_URL", raising=False)
    monkeypatch.setenv("COPILOT_WECOM_BASE_URL", stub.base_url)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def run(*args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.output
    return result.output


def test_an_operator_sets_up_a_tenant_its_wecom_app_a_key_and_its_staff(env: Path, stub: StubWeCom) -> None:
    run("tenants", "add", "沐颜", "--name", "沐颜护肤")
    run("tenants", "set-wecom", "沐颜", "--corp-id", stub.corp_id, "--agent-id", "1000005",
        "--token", "callback-token", "--aes-key", CALLBACK_AES_KEY, input=f"{stub.corp_secret}\n")
    assert run("tenants", "list").split()[:3] == ["沐颜", "沐颜护肤", "wecom=yes"]
    out = run("keys", "create", "沐颜", "--role", "service", "--label", "crm")
    key = out.strip().splitlines()[-1]
    engine = make_engine(f"sqlite:///{env / 'copilot.db'}")
    with Session(engine) as session:
        app_row = session.get(WeComApp, "沐颜")
        stored = session.exec(select(ApiKeyRow)).one()
    assert app_row is not None and app_row.agent_id == "1000005" and app_row.secret == stub.corp_secret
    assert key not in stored.key_hash and stored.role == "service"
    principal = KeyRing(engine, [], default_tenant="default").principal(key)
    assert principal is not None and principal.tenant == "沐颜" and principal.role == "service"
    assert key not in run("keys", "list", "沐颜")  # shown once, at creation

    stub.members = ["HeXin", "SuMei", "NewHire"]
    assert "+3 added" in run("staff", "sync", "沐颜")
    stub.members = ["HeXin", "NewHire"]
    assert "1 deactivated" in run("staff", "sync", "沐颜")
    run("staff", "set-role", "沐颜", "NewHire", "--role", "supervisor", "--team", "门店组")
    accounts = {a.id: a for a in list_staff(engine, "沐颜")}
    assert not accounts["SuMei"].active and accounts["NewHire"].role == "supervisor"
    assert len(stub.calls_to("/cgi-bin/user/list_id")) == 2


def test_staff_sync_from_a_file_and_clear_errors(env: Path) -> None:
    run("tenants", "add", "acme.cn")
    members = env / "members.txt"
    members.write_text("# exported from the admin console\nalice\nbob\n", encoding="utf-8")
    assert "+2 added" in run("staff", "sync", "acme.cn", "--file", str(members))
    failed = CliRunner().invoke(app, ["keys", "create", "nobody", "--role", "admin"])
    assert failed.exit_code == 2 and "copilot tenants add nobody" in " ".join(failed.output.split())
    wrong = CliRunner().invoke(app, ["keys", "create", "acme.cn", "--role", "staff"])
    assert wrong.exit_code == 2 and "sign in through WeCom" in " ".join(wrong.output.split())
    bad_key = CliRunner().invoke(app, ["tenants", "set-wecom", "acme.cn", "--corp-id", "ww1", "--agent-id", "7",
                                       "--token", "t", "--aes-key", "short"], input="secret\n")
    assert bad_key.exit_code == 2 and "EncodingAESKey" in " ".join(bad_key.output.split())


def test_staff_yaml_roles_are_checked_with_file_and_line(tmp_path: Path) -> None:
    library = tmp_path / "lib"
    (library / "customers").mkdir(parents=True)
    (library / "persona.yaml").write_text((KNOWLEDGE / "persona.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (library / "staff.yaml").write_text(
        "- id: a\n  name: 甲\n  wecom_userid: A\n"
        "- id: b\n  name: 乙\n  wecom_userid: A\n"
        "- id: c\n  name: 丙\n  role: supervisor\n"
        "- id: d\n  name: 丁\n  role: boss\n", encoding="utf-8")
    with pytest.raises(LibraryError) as caught:
        load_library(library)
    problems = {(p.file, p.line, p.field) for p in caught.value.problems}
    assert ("staff.yaml", 4, "wecom_userid") in problems  # the second account with userid A
    assert ("staff.yaml", 7, "-") in problems  # a supervisor without a team
    assert ("staff.yaml", 12, "role") in problems  # no such role, on the line that says it
    demo = load_library(KNOWLEDGE)
    assert {s.role for s in demo.staff} == {"staff", "supervisor", "admin"}
