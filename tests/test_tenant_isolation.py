"""Tenants whose ids are the same once cut down to Chroma's alphabet (`acme.cn`/`acme-cn`, any two Chinese
ids) keep their own vector collections: one tenant's ingest never deletes another's vectors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from copilot.compliance import ComplianceChecker
from copilot.embedding.embedders import HashingEmbedder
from copilot.errors import ConfigurationError
from copilot.persistence.engine import make_engine
from copilot.persistence.schema import create_schema
from copilot.retrieval.vectorstore import ChromaStore, VectorDoc
from copilot.service import Copilot
from tests.conftest import KNOWLEDGE, fixed_clock

TENANTS = ["acme.cn", "acme-cn", "暖芽母婴", "沐颜护肤"]


def test_each_tenant_gets_its_own_collection_and_deletes_only_its_own_vectors(tmp_path: Path) -> None:
    store = ChromaStore(HashingEmbedder(), tmp_path / "chroma")
    assert len({store.collection_name(t) for t in TENANTS}) == len(TENANTS)
    assert all(len(store.collection_name(t)) <= 63 for t in TENANTS)
    for tenant in TENANTS:
        store.upsert(tenant, [VectorDoc("script:shared", f"{tenant} 的话术", {"kind": "script"}),
                              VectorDoc(f"script:{tenant}", f"{tenant} 独有", {"kind": "script"})])
    store.delete("acme.cn", ["script:shared", "script:acme.cn"])
    store.delete("暖芽母婴", ["script:shared"])
    assert store.existing_keys("acme.cn") == set()
    assert store.existing_keys("暖芽母婴") == {"script:暖芽母婴"}
    for tenant in ("acme-cn", "沐颜护肤"):
        assert store.existing_keys(tenant) == {"script:shared", f"script:{tenant}"}
    again = ChromaStore(HashingEmbedder(), tmp_path / "chroma")  # a restart reads the same collections
    assert again.existing_keys("acme-cn") == {"script:shared", "script:acme-cn"}


def test_a_collection_is_refused_to_another_tenant(tmp_path: Path) -> None:
    store = ChromaStore(HashingEmbedder(), tmp_path / "chroma")
    store.upsert("acme.cn", [VectorDoc("script:a", "话术", {"kind": "script"})])
    forged = ChromaStore(HashingEmbedder(), tmp_path / "chroma")
    forged.collection_name = lambda tenant: store.collection_name("acme.cn")  # type: ignore[method-assign]
    with pytest.raises(ConfigurationError, match=r"belongs to tenant 'acme\.cn'"):
        forged.existing_keys("acme-cn")


def _small_library(root: Path, drop_first_script: bool = False) -> Path:
    """The demo persona and one scripts file (minus its first script when asked)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(KNOWLEDGE / "persona.yaml", root / "persona.yaml")
    (root / "scripts").mkdir(exist_ok=True)
    source = sorted((KNOWLEDGE / "scripts").glob("*.yaml"))[0].read_text(encoding="utf-8")
    if drop_first_script:
        first, second = source.index("\n- id:"), source.index("\n- id:", source.index("\n- id:") + 1)
        source = source[:first] + source[second:]
    (root / "scripts" / "one.yaml").write_text(source, encoding="utf-8")
    return root


def test_one_tenants_ingest_never_removes_another_tenants_vectors(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    create_schema(engine)
    copilot: Any = Copilot(engine=engine, embedder=embedder,
                           store=ChromaStore(embedder, tmp_path / "chroma"), compliance=ComplianceChecker(),
                           clock=fixed_clock)
    full = _small_library(tmp_path / "full")
    for tenant in TENANTS:
        copilot.ingest(full, tenant=tenant)
    before = {t: copilot.store.existing_keys(t) for t in TENANTS}
    assert all(before[t] == before[TENANTS[0]] and before[t] for t in TENANTS)
    report = copilot.ingest(_small_library(tmp_path / "smaller", drop_first_script=True), tenant="acme.cn")
    assert report.vectors_removed == 1
    assert len(copilot.store.existing_keys("acme.cn")) == len(before["acme.cn"]) - 1
    for tenant in TENANTS[1:]:
        assert copilot.store.existing_keys(tenant) == before[tenant]
