"""`copilot serve --workers 2`: two API processes share one port, each built from the environment, and both
serve with the dev key `copilot serve` generated (no COPILOT_API_KEYS set)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from devtools.services import free_port
from tests.cluster import COPILOT, cluster_env, run_cli
from tests.conftest import REPO
from tests.wecom_stub import running_stub

pytestmark = pytest.mark.cluster


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_serve_with_two_workers_runs_two_api_processes_on_one_port(tmp_path: Path) -> None:
    with running_stub() as stub:
        env = cluster_env(tmp_path, f"sqlite:///{tmp_path / 'copilot.db'}", stub.base_url)
        del env["COPILOT_API_KEYS"]  # the dev key, generated once into the data dir, serves every process
        run_cli(env, "db", "upgrade")
        run_cli(env, "ingest")
        port = free_port()
        log = (tmp_path / "serve.log").open("wb")
        server = subprocess.Popen([COPILOT, "serve", "--port", str(port), "--workers", "2"], env=env, cwd=REPO,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 600
            key = None
            while time.monotonic() < deadline:
                key_file = tmp_path / "dev_api_key"
                if key_file.exists():
                    key = key_file.read_text().strip()
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                time.sleep(0.3)
            else:
                raise AssertionError((tmp_path / "serve.log").read_text())
            assert key is not None
            assert "2 processes" in " ".join((tmp_path / "serve.log").read_text().split())
            assert len([p for p in _children(server.pid) if Path(f"/proc/{p}/cmdline").exists()]) >= 2
            with httpx.Client(timeout=60) as client:
                for _ in range(6):
                    response = client.get(f"http://127.0.0.1:{port}/v1/knowledge/search",
                                          headers={"X-API-Key": key}, params={"q": "纸尿裤"})
                    assert response.status_code == 200, response.text
                    assert response.json()["results"]
        finally:
            server.terminate()
            server.wait(timeout=60)
