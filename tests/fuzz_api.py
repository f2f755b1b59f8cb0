"""Property-based fuzzing of the served API (`make fuzz`, part of `make test`).

Builds the app the way a deployment does — from `Settings` (the demo library ingested first, WeCom
configured through settings against the local WeCom stub, the hashing embedder so it is fast and the
same on every machine) — serves it on loopback, and runs schemathesis over the whole OpenAPI document
with `not_a_server_error` and response-schema conformance, a fixed seed and a bounded number of examples
per operation. Any finding fails the run.

    python -m tests.fuzz_api [--max-examples N] [--seed S]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pydantic import SecretStr

from tests.conftest import KNOWLEDGE
from tests.live_server import serve_in_thread
from tests.wecom_stub import (
    CALLBACK_AES_KEY,
    CALLBACK_RECEIVE_ID,
    CALLBACK_TOKEN,
    CORP_ID,
    CORP_SECRET,
    running_stub,
)

API_KEY = "fuzz-admin-key-8c1e0d5a"
CHECKS = "not_a_server_error,response_schema_conformance"


def settings_for(data_dir: Path, wecom_base_url: str) -> object:
    from copilot.config import Settings

    return Settings(
        env="test", data_dir=data_dir, embedding_model="hashing", knowledge_dir=KNOWLEDGE,
        models_path=Settings().models_dir,  # the compliance models `copilot prepare` trained, as a deployment loads them
        api_keys=[SecretStr(API_KEY)], wecom_corp_id=CORP_ID, wecom_secret=SecretStr(CORP_SECRET),
        wecom_agent_id="1000002", wecom_token=SecretStr(CALLBACK_TOKEN),
        wecom_aes_key=SecretStr(CALLBACK_AES_KEY), wecom_receive_id=CALLBACK_RECEIVE_ID,
        wecom_base_url=wecom_base_url, webhook_secret=SecretStr("fuzz-webhook-secret"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=25, help="examples per operation")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--workers", default="1")
    args = parser.parse_args(argv)

    from api.app import create_app
    from copilot.persistence.engine import make_engine
    from copilot.persistence.schema import upgrade
    from copilot.service import Copilot

    root = Path(tempfile.mkdtemp(prefix="copilot-fuzz-"))
    try:
        with running_stub() as stub:
            settings = settings_for(root / "data", stub.base_url)
            upgrade(make_engine(settings.sqlalchemy_url))  # what `copilot db upgrade` does
            Copilot.from_settings(settings).ingest(KNOWLEDGE, tenant="default")  # what `copilot ingest` does
            app = create_app(settings)  # the app builds its own Copilot from the settings, as `copilot serve`
            with serve_in_thread(app, name="copilot under fuzzing", lifespan="on", start_s=120) as url:
                command = [
                    str(Path(sys.executable).with_name("st")), "run", f"{url}/openapi.json",
                    "--checks", CHECKS, "--seed", str(args.seed), "--max-examples", str(args.max_examples),
                    "--workers", args.workers, "--header", f"X-API-Key: {API_KEY}",
                    "--generation-database", "none", "--no-color",
                    "--report", "junit", "--report-dir", str(root / "report"),
                ]
                # cwd: schemathesis keeps a cache folder in its working directory; keep it out of the tree.
                return subprocess.run(command, check=False, cwd=root).returncode
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
