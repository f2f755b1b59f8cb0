"""`make stack`: the production topology on one machine, from the project's own files.

PostgreSQL (a cluster in `<root>/postgres`, kept between runs), a Chroma server (`chroma run`, data in
`<root>/chroma`), the schema migrated (`copilot db upgrade`) and the demo library ingested, then N API
processes (`copilot serve`) and M workers (`copilot worker`), each on a loopback port it prints. Every line
a process writes is printed with its name in front. Ctrl-C (or SIGTERM) stops everything.

    python -m devtools.stack [--apis 2] [--workers 2] [--root data/stack]

Settings come from the environment and `.env` as usual (e.g. COPILOT_EMBEDDING_MODEL=hashing for a quick
look); the stack sets only what connects the pieces: COPILOT_DATABASE_URL and COPILOT_CHROMA_URL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

from devtools.services import ChromaServer, PgServer, free_port

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
COPILOT = str(Path(sys.executable).with_name("copilot"))


def _pump(name: str, stream: IO[bytes]) -> None:
    for raw in iter(stream.readline, b""):
        sys.stdout.write(f"[{name}] {raw.decode(errors='replace')}")
        sys.stdout.flush()


def _start(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([COPILOT, *args], env=env, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    assert process.stdout is not None
    threading.Thread(target=_pump, args=(name, process.stdout), daemon=True).start()
    return process


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited with {process.returncode}; see its lines above")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f}s")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apis", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", type=Path, default=REPO / "data" / "stack")
    parser.add_argument("--base-port", type=int, default=0, help="first API port (default: free ports)")
    args = parser.parse_args(argv)

    root = args.root.resolve()
    pg = PgServer(root / "postgres", durable=True)
    chroma = ChromaServer(root / "chroma")
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        pg.init()
        pg.start()
        database_url = pg.create_database("copilot")
        chroma.start()
        env = {**os.environ, "COPILOT_DATABASE_URL": database_url, "COPILOT_CHROMA_URL": chroma.url,
               "PYTHONUNBUFFERED": "1"}
        print(f"PostgreSQL  {database_url}\nChroma      {chroma.url}", flush=True)
        for step in (["db", "upgrade"], ["ingest"]):
            print(f"$ copilot {' '.join(step)}", flush=True)
            if subprocess.call([COPILOT, *step], env=env, cwd=REPO) != 0:
                return 2
        urls = []
        for i in range(args.apis):
            port = args.base_port + i if args.base_port else free_port()
            name = f"api{i + 1}"
            process = _start(name, ["serve", "--host", "127.0.0.1", "--port", str(port)], env)
            processes.append((name, process))
            urls.append((name, f"http://127.0.0.1:{port}", process))
        for i in range(args.workers):
            processes.append((f"worker{i + 1}", _start(f"worker{i + 1}", ["worker"], env)))
        for _name, url, process in urls:
            _wait_healthy(url, process)
        print("\nThe stack is up:", flush=True)
        print(f"  PostgreSQL  127.0.0.1:{pg.port}  ({database_url})")
        print(f"  Chroma      {chroma.url}")
        for name, url, _ in urls:
            print(f"  {name:<10}  {url}   (docs: {url}/docs)")
        print(f"  workers     {args.workers} × copilot worker")
        print("Ctrl-C stops everything.\n", flush=True)
        while not stopping.is_set():
            for name, process in processes:
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; stopping the stack", flush=True)
                    stopping.set()
            stopping.wait(0.5)
        return 0
    finally:
        for _, process in processes:
            if process.poll() is None:
                process.terminate()
        for _, process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        chroma.stop()
        with contextlib.suppress(RuntimeError):
            pg.stop()
        print("stack stopped", flush=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
