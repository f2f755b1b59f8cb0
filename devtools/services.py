"""Throwaway PostgreSQL and Chroma servers on loopback ports, for tests, benchmarks and `make stack`.

    python -m devtools.services -- COMMAND …   start both, export COPILOT_TEST_DATABASE_URL and
                                               COPILOT_TEST_CHROMA_URL, run COMMAND, stop both

PostgreSQL comes from the machine's binaries (`initdb`, `pg_ctl`; Debian's postgresql-15 package puts them
in /usr/lib/postgresql/15/bin), run as the `postgres` user when we are root. Chroma is `chroma run` from the
chromadb package in this virtualenv.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["ChromaServer", "PgServer", "free_port", "main"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_tool(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise SystemExit(f"{name} not found: install PostgreSQL 15 (apt-get install postgresql-15)")
    return found


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PgServer:
    """A PostgreSQL cluster in `root` on a loopback port; `start`/`stop` may be called again (faults)."""

    def __init__(self, root: Path | None = None, port: int | None = None, *, durable: bool = False) -> None:
        # The server runs as `postgres`, which must reach its folder through every parent; pytest keeps its
        # temporary folders private (and makes them private again whenever a session starts), so a
        # throwaway cluster gets a folder of its own directly in the system's temporary directory.
        self._scratch = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="copilot-pg-"))
        self.port = port or free_port()
        self.data = self.root / "pg"
        self.durable = durable  # fsync on (the stack); tests trade it for speed

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*_as_postgres(), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()}")

    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # the server runs as `postgres`: it must reach and own its folder
            for parent in self.root.parents:
                if parent.stat().st_mode & 0o001 == 0:
                    parent.chmod(parent.stat().st_mode | 0o011)
            shutil.chown(self.root, "postgres")
        self._run(_pg_tool("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", *([] if self.durable else ["--no-sync"]))

    def start(self) -> None:
        fast = "" if self.durable else " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=400"
                   f" -c shared_buffers=64MB{fast}")
        self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "pg.log"),
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server and wait until it is down (raises if it would not stop)."""
        self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "180", "stop")

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text

        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
                if exists is None:
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)

    def __enter__(self) -> PgServer:
        self.init()
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop()
        if self._scratch:
            shutil.rmtree(self.root, ignore_errors=True)


class ChromaServer:
    """`chroma run` on a loopback port, its data in `root`."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> None:
        chroma = Path(sys.executable).with_name("chroma")
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "chroma.log").open("ab")
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        self.process = subprocess.Popen(
            [str(chroma), "run", "--host", "127.0.0.1", "--port", str(self.port), "--path", str(self.root / "data")],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chroma run exited with {self.process.returncode}; see {self.root / 'chroma.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"chroma run did not answer within {timeout_s:.0f}s; see {self.root / 'chroma.log'}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> ChromaServer:
        self.start()
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("usage: python -m devtools.services -- COMMAND …", file=sys.stderr)
        return 2
    command = argv[argv.index("--") + 1 :]
    with tempfile.TemporaryDirectory(prefix="copilot-services-") as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        with PgServer(root / "postgres") as pg, ChromaServer(root / "chroma") as chroma:
            env = {**os.environ, "COPILOT_TEST_DATABASE_URL": pg.admin_url, "COPILOT_TEST_CHROMA_URL": chroma.url}
            print(f"== PostgreSQL on 127.0.0.1:{pg.port}, Chroma server on {chroma.url} "
                  f"(up in {time.perf_counter() - started:.1f}s)", flush=True)
            return _run_forwarding_sigterm(command, env)


def _run_forwarding_sigterm(command: list[str], env: dict[str, str]) -> int:
    """Run `command` to its end. A SIGTERM (a cancelled CI job, `timeout`) is passed on to it, and once it has ended
    the servers are stopped as after any other end; by default SIGTERM would kill this process at once and leave
    PostgreSQL and Chroma running. The exit status of a command ended by a signal is 128 + the signal."""
    child = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
