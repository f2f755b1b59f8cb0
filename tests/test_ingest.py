"""Ingest: content hashes, all-or-nothing validation, deletions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session, func, select

from copilot.compliance import ComplianceChecker
from copilot.embedding.embedders import HashingEmbedder
from copilot.errors import LibraryError
from copilot.persistence.engine import make_engine
from copilot.persistence.tables.library import ScriptRow
from copilot.service import Copilot
from tests.conftest import KNOWLEDGE, Databases, fixed_clock


class CountingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.passages = 0

    def embed_passages(self, texts):  # type: ignore[no-untyped-def]
        self.passages += len(texts)
        return super().embed_passages(texts)


@pytest.fixture
def setup(tmp_path: Path, databases: Databases):
    lib = tmp_path / "lib"
    shutil.copytree(KNOWLEDGE, lib)
    embedder = CountingEmbedder()
    engine = make_engine(databases.url(schema=True))
    copilot = Copilot(engine=engine, embedder=embedder, store=databases.chroma(embedder, tmp_path / "chroma"),
                      compliance=ComplianceChecker(), clock=fixed_clock)
    return lib, embedder, copilot


def _script_count(copilot: Copilot) -> int:
    with Session(copilot.engine) as session:
        return int(session.exec(select(func.count()).select_from(ScriptRow)).one())


def test_reingesting_an_unchanged_library_embeds_nothing(setup) -> None:
    lib, embedder, copilot = setup
    first = copilot.ingest(lib, tenant="t1")
    assert first.embedded > 200
    embedder.passages = 0
    again = copilot.ingest(lib, tenant="t1")
    assert again.embedded == 0
    assert embedder.passages == 0
    assert again.kinds["script"].unchanged == first.kinds["script"].added


def test_editing_one_script_embeds_only_that_script(setup) -> None:
    lib, embedder, copilot = setup
    copilot.ingest(lib, tenant="t1")
    path = sorted((lib / "scripts").glob("*.yaml"))[0]
    items = yaml.safe_load(path.read_text(encoding="utf-8"))
    items[0]["text"] = items[0]["text"] + "（已更新）"
    path.write_text(yaml.safe_dump(items, allow_unicode=True), encoding="utf-8")
    embedder.passages = 0
    report = copilot.ingest(lib, tenant="t1")
    assert report.embedded == 1 and embedder.passages == 1
    assert report.kinds["script"].updated == 1


def test_invalid_library_changes_nothing(setup) -> None:
    lib, _embedder, copilot = setup
    copilot.ingest(lib, tenant="t1")
    before = _script_count(copilot)
    vectors_before = len(copilot.store.existing_keys("t1"))
    path = sorted((lib / "scripts").glob("*.yaml"))[0]
    items = yaml.safe_load(path.read_text(encoding="utf-8"))
    del items[1:]  # a deletion that must not happen ...
    items[0]["stage"] = "closing"  # ... because this makes the library invalid
    text = yaml.safe_dump(items, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    stage_line = next(i for i, line in enumerate(text.splitlines(), 1) if line.strip().startswith("stage:"))
    with pytest.raises(LibraryError) as caught:
        copilot.ingest(lib, tenant="t1")
    assert any(p.field == "stage" and p.line == stage_line for p in caught.value.problems)
    assert _script_count(copilot) == before
    assert len(copilot.store.existing_keys("t1")) == vectors_before


def test_items_deleted_from_files_are_removed_everywhere(setup) -> None:
    lib, _embedder, copilot = setup
    copilot.ingest(lib, tenant="t1")
    path = sorted((lib / "scripts").glob("*.yaml"))[0]
    items = yaml.safe_load(path.read_text(encoding="utf-8"))
    gone = items.pop(0)["id"]
    path.write_text(yaml.safe_dump(items, allow_unicode=True), encoding="utf-8")
    report = copilot.ingest(lib, tenant="t1")
    assert report.kinds["script"].removed == 1
    assert f"script:{gone}" not in copilot.store.existing_keys("t1")
    assert copilot.retriever.get("t1", f"script:{gone}") is None


def test_lost_vectors_are_embedded_again(setup) -> None:
    lib, _embedder, copilot = setup
    copilot.ingest(lib, tenant="t1")
    key = sorted(copilot.store.existing_keys("t1"))[0]
    copilot.store.delete("t1", [key])
    report = copilot.ingest(lib, tenant="t1")
    assert report.embedded == 1
    assert key in copilot.store.existing_keys("t1")
