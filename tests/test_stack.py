"""`make stack` as the README describes it: PostgreSQL, a Chroma server, two API processes and two workers.
A WeCom callback sent to each API process with the same MsgId is one event; an ingest through one API
process is searchable through the other within 5 seconds; Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.cluster import API_KEY, cluster_env
from tests.conftest import KNOWLEDGE, REPO
from tests.wecom_stub import CORP_ID, encrypted_callback, event_xml, running_stub

pytestmark = pytest.mark.cluster
HEADERS = {"X-API-Key": API_KEY}


def test_make_stack_serves_one_truth_from_two_api_processes(tmp_path: Path) -> None:
    library = tmp_path / "library"
    shutil.copytree(KNOWLEDGE, library)
    with running_stub() as stub:
        env = cluster_env(tmp_path, "unused", stub.base_url, COPILOT_KNOWLEDGE_DIR=str(library))
        del env["COPILOT_DATABASE_URL"]  # the stack brings its own PostgreSQL and Chroma server
        # Not under pytest's private temporary folders: the stack's PostgreSQL runs as `postgres`.
        stack_root = Path(tempfile.mkdtemp(prefix="copilot-stack-"))
        stack = subprocess.Popen([sys.executable, "-m", "devtools.stack", "--root", str(stack_root)],
                                 cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        up = threading.Event()

        def read() -> None:
            assert stack.stdout is not None
            for line in stack.stdout:
                lines.append(line)
                if line.startswith("Ctrl-C stops everything"):
                    up.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            assert up.wait(600), "".join(lines[-80:])
            output = "".join(lines)
            apis = re.findall(r"^  api\d\s+(http://127\.0\.0\.1:\d+)", output, re.MULTILINE)
            database = re.search(r"^PostgreSQL  (\S+)", output, re.MULTILINE)
            assert len(apis) == 2 and database is not None, output

            params, body = encrypted_callback(event_xml(
                ToUserName=CORP_ID, FromUserName="wmStackCustomer", CreateTime=int(time.time()), MsgType="text",
                Content="你好", MsgId="stack-msg-1", AgentID=1000002))
            for base in apis:
                answer = httpx.post(f"{base}/webhooks/wecom/default", params=params, content=body, timeout=10)
                assert answer.status_code == 200, answer.text
            engine = create_engine(database.group(1))
            with engine.connect() as connection:
                count = connection.execute(text(
                    "SELECT count(*) FROM webhook_inbox WHERE dedupe_key LIKE '%stack-msg-1%'")).scalar_one()
            engine.dispose()
            assert count == 1

            scripts = sorted((library / "scripts").glob("*.yaml"))[0]
            items = yaml.safe_load(scripts.read_text(encoding="utf-8"))
            items.append({**items[0], "id": "S-STACK-001", "text": "全新话术：蓝莓味磨牙棒今天到货啦"})
            scripts.write_text(yaml.safe_dump(items, allow_unicode=True), encoding="utf-8")

            def found(base: str) -> bool:
                response = httpx.get(f"{base}/v1/knowledge/search", headers=HEADERS,
                                     params={"q": "蓝莓味磨牙棒", "k": 3}, timeout=10)
                assert response.status_code == 200, response.text
                return any(r["id"] == "S-STACK-001" for r in response.json()["results"])

            assert not found(apis[1])
            ingest = httpx.post(f"{apis[0]}/v1/knowledge/ingest", headers=HEADERS, timeout=120)
            assert ingest.status_code == 200, ingest.text
            started = time.monotonic()
            while not found(apis[1]):
                assert time.monotonic() - started < 5, "the other API process did not serve the ingest within 5 s"
                time.sleep(0.1)
        finally:
            stack.send_signal(signal.SIGINT)
            try:
                stack.wait(timeout=90)
            except subprocess.TimeoutExpired:
                stack.kill()
                stack.wait()
            shutil.rmtree(stack_root, ignore_errors=True)
        assert "stack stopped" in "".join(lines)
        assert not [p for p in _children_named("copilot serve") if str(tmp_path) in p]


def _children_named(needle: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if needle.split()[-1] in cmdline and "copilot" in cmdline:
                found.append(environ)
    return found
