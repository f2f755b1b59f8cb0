"""Per-tenant compliance settings: the demo file, one checker per tenant, reload that keeps the old rules on error."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.errors import install_error_handlers
from api.routes import compliance_admin
from copilot.compliance import ComplianceChecker
from copilot.compliance.frequency import FrequencyGuard
from copilot.compliance.tenants import TenantCompliance, load_config
from copilot.errors import ValidationError
from copilot.identity.keys import KeyRing

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "knowledge" / "compliance.yaml"
PROMISE = "这款奶粉喝了保证不过敏"
HOTLINE = "有问题可以打客服电话021-62345678"
EXTRA_RULE = """\
pack: tenant_extra
rules:
  - id: tenant.cheap
    category: ad_absolute
    severity: review
    basis: 品牌规定
    message: 不要说厂家直销价
    terms: [厂家直销价]
"""


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "lib"
    folder.mkdir()
    shutil.copy(DEMO, folder / "compliance.yaml")
    return folder


def test_demo_file_enables_general_and_mother_baby_with_the_brand_hotline_allowed() -> None:
    config = load_config(DEMO)
    assert config.packs == ("general", "mother_baby")
    assert config.proactive_daily_cap == 3 and config.mask_pii
    checker = TenantCompliance(ComplianceChecker(), libraries={"demo": DEMO.parent}).for_tenant("demo")
    assert checker.check(HOTLINE).risk == "none"
    assert ComplianceChecker(packs=("general", "mother_baby")).check(HOTLINE).categories == {"pii_phone"}


def test_each_tenant_gets_its_own_checker_and_unknown_tenants_the_default(library: Path) -> None:
    default = ComplianceChecker(packs=("general",))
    registry = TenantCompliance(default, libraries={"baby": library})
    assert registry.for_tenant("someone-else") is default
    assert registry.for_tenant("baby") is not default
    assert registry.tenants() == ["baby"]
    assert registry.config("someone-else") is None
    mother_baby_only = {r.id for r in registry.for_tenant("baby").rules} - {r.id for r in default.rules}
    assert mother_baby_only


def test_a_library_without_a_settings_file_uses_the_default(tmp_path: Path) -> None:
    default = ComplianceChecker()
    registry = TenantCompliance(default)
    assert registry.register("t", tmp_path) is default
    assert registry.proactive_daily_cap("t") is None


def test_reload_applies_an_edited_file_without_a_restart(library: Path) -> None:
    registry = TenantCompliance(ComplianceChecker(), libraries={"t": library})
    assert registry.for_tenant("t").check("这是厂家直销价").risk == "none"
    (library / "rules").mkdir()
    (library / "rules" / "extra.yaml").write_text(EXTRA_RULE, encoding="utf-8")
    text = (library / "compliance.yaml").read_text(encoding="utf-8")
    text = text.replace("extra_rule_files: []", "extra_rule_files: [rules/extra.yaml]")
    text = text.replace("proactive_daily_cap: 3", "proactive_daily_cap: 1")
    (library / "compliance.yaml").write_text(text, encoding="utf-8")
    registry.reload("t")
    result = registry.for_tenant("t").check("这是厂家直销价")
    assert [f.rule_id for f in result.flags] == ["tenant.cheap"]
    assert registry.proactive_daily_cap("t") == 1


def test_a_broken_file_is_reported_and_the_previous_rules_stay(library: Path) -> None:
    registry = TenantCompliance(ComplianceChecker(), libraries={"t": library})
    before = registry.for_tenant("t")
    (library / "compliance.yaml").write_text("packs: [general, no_such_pack]\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="no_such_pack"):
        registry.reload("t")
    assert registry.for_tenant("t") is before
    assert before.check(PROMISE).requires_approval


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("packs: [general]\nallow_phrase: [x]\n", "allow_phrase"),
        ("packs: [general]\nproactive_daily_cap: -1\n", "proactive_daily_cap"),
        ("packs: [general]\nextra_rule_files: [../outside.yaml]\n", "outside the library"),
        ("packs: [general]\nextra_rule_files: [missing.yaml]\n", "does not exist"),
        ("packs: [general\n", "not valid YAML"),
    ],
    ids=["typo", "negative-cap", "escape", "missing-file", "bad-yaml"],
)
def test_invalid_settings_name_the_problem(library: Path, body: str, message: str) -> None:
    (library.parent / "outside.yaml").write_text(EXTRA_RULE, encoding="utf-8")
    (library / "compliance.yaml").write_text(body, encoding="utf-8")
    with pytest.raises(ValidationError, match=message):
        TenantCompliance(ComplianceChecker(), libraries={"t": library})


def test_tenant_cap_feeds_the_frequency_guard(library: Path, fresh_engine: Any) -> None:
    text = (library / "compliance.yaml").read_text(encoding="utf-8")
    (library / "compliance.yaml").write_text(text.replace("proactive_daily_cap: 3", "proactive_daily_cap: 1"))
    registry = TenantCompliance(ComplianceChecker(), libraries={"t": library})
    now = dt.datetime(2026, 11, 22, 2, tzinfo=dt.UTC)
    guard = FrequencyGuard(
        fresh_engine, cap_for=registry.proactive_daily_cap
    )
    guard.record_send("t", "s", "c", "wecom", "proactive", now)
    guard.record_send("other", "s", "c", "wecom", "proactive", now)
    assert guard.check("t", "s", "c", "wecom", "proactive", now) is not None
    assert guard.check("other", "s", "c", "wecom", "proactive", now) is None  # default cap 3


def _admin_client(copilot: object) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    # A configured key of tenant `baby` (configured keys act as their tenant's admin; no stored keys here).
    app.state.keyring = KeyRing(None, ["baby:k-baby"], default_tenant="default")  # type: ignore[arg-type]
    app.state.copilot = copilot
    app.include_router(compliance_admin.router)
    return TestClient(app)


def test_reload_route_applies_the_callers_file_and_refuses_a_broken_one(library: Path) -> None:
    registry = TenantCompliance(ComplianceChecker(), libraries={"baby": library})
    client = _admin_client(SimpleNamespace(tenant_compliance=registry))
    headers = {"X-API-Key": "k-baby"}
    assert client.post("/v1/compliance/reload").status_code == 401
    ok = client.post("/v1/compliance/reload", headers=headers)
    assert ok.status_code == 200
    assert ok.json()["source"] == "tenant" and ok.json()["packs"] == ["general", "mother_baby"]
    before = registry.for_tenant("baby")
    (library / "compliance.yaml").write_text("packs: [nope]\n", encoding="utf-8")
    broken = client.post("/v1/compliance/reload", headers=headers)
    assert broken.status_code == 422 and "nope" in broken.text
    assert registry.for_tenant("baby") is before

