"""Inspection rules are library data: edits apply without a restart, and a broken file is refused with
file:line while the rules in force stay."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from copilot.backoffice.rules import RuleBook
from copilot.config import Settings
from copilot.errors import LibraryError
from copilot.knowledge.loader import load_library
from copilot.persistence.repository import Repository
from tests.backoffice_support import ARCHIVE, INSPECTION_YAML, NOW, TENANT, backoffice_copilot

KEY = "bo:test-key-rules-0123456789"
HEADERS = {"X-API-Key": KEY.split(":", 1)[1]}


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    copilot = backoffice_copilot(tmp_path, lambda: NOW)
    settings = Settings(data_dir=tmp_path / "data", api_keys=[SecretStr(KEY)], default_tenant=TENANT)
    with TestClient(create_app(settings, copilot=copilot)) as client:
        yield client, copilot


def _write(path: Path, text: str) -> None:
    """Write and move the modification time on, so a change within the same second is still seen."""
    before = path.stat().st_mtime if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, (before + 5, before + 5))


def _limit(client: TestClient) -> float:
    rules = client.get("/v1/inspection/rules", headers=HEADERS).json()["rules"]
    return next(r["minutes"] for r in rules if r["id"] == "reply_timeout")


def _timeouts(client: TestClient) -> int:
    items = client.get("/v1/stats/staff", params={"from": "2026-03-02", "to": "2026-03-02"},
                       headers=HEADERS).json()["items"]
    return sum(r["timeouts"] for r in items)


def test_an_edited_rule_file_applies_on_reload_without_a_restart(app: tuple[TestClient, Any],
                                                                  tmp_path: Path) -> None:
    client, _ = app
    rules = tmp_path / "library" / "inspection.yaml"
    assert _limit(client) == 10
    _write(rules, INSPECTION_YAML.replace("minutes: 10", "minutes: 20"))
    response = client.post("/v1/inspection/reload", headers=HEADERS)
    assert response.status_code == 200, response.text
    assert _limit(client) == 20
    # Turn 2 of the fixture took 15 working minutes: within a 20-minute limit, so only b3 times out.
    client.post("/v1/archive/records", json=ARCHIVE, headers=HEADERS)
    assert _timeouts(client) == 1


def test_a_broken_rule_file_is_refused_with_file_and_line_and_the_old_rules_stay(
        app: tuple[TestClient, Any], tmp_path: Path) -> None:
    client, _ = app
    rules = tmp_path / "library" / "inspection.yaml"
    assert _limit(client) == 10
    broken = INSPECTION_YAML.replace("minutes: 10", "minutes: -5")
    line = broken.splitlines().index("    minutes: -5") + 1
    _write(rules, broken)
    response = client.post("/v1/inspection/reload", headers=HEADERS)
    assert response.status_code == 422
    assert f"inspection.yaml:{line}:rules.0.reply_timeout.minutes: Input should be greater than 0 (got -5)" in \
        response.json()["problems"]
    assert _limit(client) == 10
    status = client.get("/v1/inspection/rules", headers=HEADERS).json()
    assert f"inspection.yaml:{line}" in status["error"]

    _write(rules, INSPECTION_YAML + "  - id: [unclosed\n")
    response = client.post("/v1/inspection/reload", headers=HEADERS)
    assert response.status_code == 422
    assert any(p.startswith("inspection.yaml:") and "YAML syntax" in p for p in response.json()["problems"])
    # The rules in force still judge new messages: turn 2 (15 working minutes) and b3 time out after 10.
    client.post("/v1/archive/records", json=ARCHIVE, headers=HEADERS)
    assert _timeouts(client) == 2


def test_the_rule_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    copilot = backoffice_copilot(tmp_path, lambda: NOW)
    book = RuleBook(Repository(copilot.engine), check_every_s=0)
    rules = tmp_path / "library" / "inspection.yaml"
    assert book.for_tenant(TENANT).timeout_for("staff_a", None).minutes == 10  # type: ignore[union-attr]
    _write(rules, INSPECTION_YAML.replace("minutes: 10", "minutes: 3"))
    assert book.for_tenant(TENANT).timeout_for("staff_a", None).minutes == 3  # type: ignore[union-attr]
    _write(rules, "rules:\n  - id: x\n    kind: nonsense\n")
    assert book.for_tenant(TENANT).timeout_for("staff_a", None).minutes == 3  # type: ignore[union-attr]
    assert "inspection.yaml:2" in (book.status(TENANT).error or "")


def test_ingest_refuses_a_library_whose_rule_file_is_broken(tmp_path: Path) -> None:
    from tests.backoffice_support import write_library

    library = write_library(tmp_path / "lib", inspection=INSPECTION_YAML.replace("severity: warn", "severity: loud"))
    line = INSPECTION_YAML.splitlines().index("    severity: warn") + 1
    with pytest.raises(LibraryError) as caught:
        load_library(library)
    assert [str(p).split(": ")[0] for p in caught.value.problems] == [
        f"inspection.yaml:{line}:rules.0.reply_timeout.severity"]
