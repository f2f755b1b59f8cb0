"""Real processes for multi-process tests: `copilot serve` and `copilot worker` started from the command
line with the settings an operator would set, against one database, one WeCom stub and (optionally) one
Chroma server."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devtools.services import free_port
from tests.conftest import KNOWLEDGE, REPO
from tests.wecom_stub import CALLBACK_AES_KEY, CALLBACK_TOKEN, CORP_ID, CORP_SECRET

API_KEY = "cluster-key-0123456789"
SECRET = "cluster-message-secret"
COPILOT = str(Path(sys.executable).with_name("copilot"))
# Replies at any hour, by keyword only: what a message gets back does not depend on when the test runs.
POLICY = """version: 1
schedule: {timezone: Asia/Shanghai, days: [mon, tue, wed, thu, fri, sat, sun], hours: ["00:00-23:59"]}
off_hours: {enabled: false, text: "-"}
keywords:
  - {id: store_hours, match: contains, patterns: ["营业时间"], reply: "门店营业时间是每天 10:00-22:00~", priority: 10}
ai: {enabled: false}
external_delivery: group_send_task
pause_after_human_s: 1800
approval_ttl_s: 86400
"""


def cluster_env(root: Path, database_url: str, stub_url: str, **extra: str) -> dict[str, str]:
    """The environment every process of one cluster shares (nothing inherited from the caller's COPILOT_*
    but the prepared models every process loads)."""
    policy = root / "autoreply.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_") or k == "COPILOT_MODELS_PATH"}
    env.update({
        "COPILOT_DATA_DIR": str(root), "COPILOT_DATABASE_URL": database_url, "COPILOT_EMBEDDING_MODEL": "hashing",
        "COPILOT_API_KEYS": API_KEY, "COPILOT_WEBHOOK_SECRET": SECRET, "COPILOT_KNOWLEDGE_DIR": str(KNOWLEDGE),
        "COPILOT_WECOM_BASE_URL": stub_url, "COPILOT_WECOM_CORP_ID": CORP_ID, "COPILOT_WECOM_SECRET": CORP_SECRET,
        "COPILOT_WECOM_TOKEN": CALLBACK_TOKEN, "COPILOT_WECOM_AES_KEY": CALLBACK_AES_KEY,
        "COPILOT_AUTOREPLY_PATH": str(policy), "COPILOT_WORKER_LEASE_S": "3", "COPILOT_WORKER_POLL_S": "0.05",
        "COPILOT_WORKER_NICE": "0", "COPILOT_LIBRARY_POLL_S": "0.5", "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def run_cli(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run([COPILOT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"copilot {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class Cluster:
    env: dict[str, str]
    root: Path
    apis: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_api(self, name: str, port: int | None = None, timeout_s: float = 600) -> str:
        port = port or free_port()
        log = (self.root / f"{name}.log").open("ab")
        self.apis[name] = subprocess.Popen([COPILOT, "serve", "--port", str(port)], env=self.env, cwd=REPO,
                                           stdout=log, stderr=subprocess.STDOUT)
        self.ports[name] = port
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.apis[name].poll() is not None:
                raise AssertionError(f"{name} exited: {(self.root / f'{name}.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url(name)}/healthz", timeout=5).status_code == 200:
                    return self.url(name)
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"{name} did not answer in {timeout_s:.0f}s")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start_worker(self, name: str) -> None:
        log = (self.root / f"{name}.log").open("ab")
        self.workers[name] = subprocess.Popen([COPILOT, "worker"], env=self.env, cwd=REPO, stdout=log,
                                              stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown code runs, as when a host dies."""
        process = self.apis.get(name) or self.workers[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        for process in [*self.apis.values(), *self.workers.values()]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.apis.values(), *self.workers.values()]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in self.root.glob("*.log"))


@contextmanager
def cluster(root: Path, env: dict[str, str]) -> Iterator[Cluster]:
    """Migrate and ingest once (as an operator would), then yield; every process is stopped afterwards."""
    run_cli(env, "db", "upgrade")
    run_cli(env, "ingest")
    running = Cluster(env=env, root=root)
    try:
        yield running
    finally:
        running.stop()


def message(message_id: str, customer: str, text: str = "请问营业时间是几点") -> tuple[bytes, dict[str, str]]:
    """A signed call of the generic message webhook, as the default tenant's source sends it."""
    body = json.dumps({"id": message_id, "role": "customer", "customer_id": customer, "staff_id": "staff_xiaoya",
                       "text": text}, ensure_ascii=False).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return body, {"X-Copilot-Timestamp": stamp, "X-Copilot-Signature": signature, "content-type": "application/json"}


def post_message(client: httpx.Client, base: str, message_id: str, customer: str) -> int | None:
    """The status the API answered, or None when it could not be reached (a dead process)."""
    body, headers = message(message_id, customer)
    try:
        return client.post(f"{base}/webhooks/messages/default", content=body, headers=headers, timeout=10).status_code
    except httpx.HTTPError:
        return None


def wait_until(condition: Any, what: str, limit_s: float = 120.0, every_s: float = 0.25) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(every_s)
