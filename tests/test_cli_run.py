"""`copilot run` (what `make run` calls): the default library and every extra demo library, each a tenant
reached with its own dev key, served by the app it builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from copilot.config import Settings, get_settings

REPO = Path(__file__).resolve().parent.parent


def test_run_ingests_the_skincare_library_as_its_own_tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from cli import main

    monkeypatch.setenv("COPILOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COPILOT_EMBEDDING_MODEL", "hashing")
    monkeypatch.delenv("COPILOT_DEMO_LIBRARIES", raising=False)
    monkeypatch.delenv("COPILOT_API_KEYS", raising=False)
    get_settings.cache_clear()
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    try:
        result = CliRunner().invoke(main.app, ["run"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "skincare" in result.output
    keys = dict(line.split(": ", 1) for line in result.output.splitlines() if line.startswith("dev API key"))
    default_key = keys["dev API key"].split()[0]
    skincare_key = keys["dev API key of tenant skincare"].strip()

    with TestClient(served["app"]) as client:
        copilot = served["app"].state.copilot
        assert set(copilot.repo.tenants()) == {"default", "skincare"}
        body = {"customer_id": "cust_101", "messages": [{"role": "customer", "text": "最近脸干起皮，有推荐的面霜吗"}]}
        skincare = client.post("/v1/suggestions", json=body, headers={"X-API-Key": skincare_key})
        assert skincare.status_code == 200, skincare.text
        assert any("沐颜" in c["text"] or c["citations"] for c in skincare.json()["candidates"])
        # The same customer id is not the default tenant's: tenants do not see each other's customers.
        default = client.post("/v1/suggestions", json=body, headers={"X-API-Key": default_key})
        assert default.status_code == 404


def test_demo_libraries_setting_reads_tenant_path_pairs_and_says_what_is_wrong() -> None:
    settings = Settings(demo_libraries="skincare=libraries/skincare, edu=/srv/edu")  # type: ignore[arg-type]
    assert settings.demo_libraries == {"skincare": Path("libraries/skincare"), "edu": Path("/srv/edu")}
    assert Settings(demo_libraries="").demo_libraries == {}  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tenant=path"):
        Settings(demo_libraries="libraries/skincare")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="default tenant"):
        Settings(demo_libraries="default=libraries/skincare")  # type: ignore[arg-type]
