"""Serve an app on a loopback port in a thread and drive it with the system Chromium (Playwright).

Used by the sidebar browser tests and by `bench/sidebar_screenshot.py`. Chromium comes from the
distribution (`apt-get install chromium`), never from `playwright install`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "WX_STUB",
    "LiveServer",
    "chromium_missing_reason",
    "launch_chromium",
    "serve",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# A stand-in for the WeCom client's `wx`: it records every call in `window.__wx` and answers like the
# client does. `window.__wxOptions` (set before it) picks the open chat's contact and whether
# agentConfig succeeds.
WX_STUB = """
(() => {
  const options = Object.assign({ contactId: "", agentConfigOk: true }, window.__wxOptions || {});
  const record = { agentConfig: [], invoked: [], sent: [] };
  window.__wx = record;
  window.wx = {
    agentConfig(config) {
      record.agentConfig.push({ corpid: config.corpid, agentid: config.agentid, timestamp: config.timestamp,
        nonceStr: config.nonceStr, signature: config.signature, jsApiList: config.jsApiList,
        url: location.href.split("#")[0] });
      setTimeout(() => options.agentConfigOk ? config.success({ errMsg: "agentConfig:ok" })
        : config.fail({ errMsg: "agentConfig:fail" }), 0);
    },
    invoke(name, args, callback) {
      record.invoked.push({ name, args });
      if (name === "sendChatMessage") {
        record.sent.push(args.text.content);
        setTimeout(() => callback({ err_msg: "sendChatMessage:ok" }), 0);
      } else if (name === "getCurExternalContact") {
        setTimeout(() => callback(options.contactId
          ? { err_msg: "getCurExternalContact:ok", userId: options.contactId }
          : { err_msg: "getCurExternalContact:fail no permission" }), 0);
      } else {
        setTimeout(() => callback({ err_msg: name + ":fail not supported by the stub" }), 0);
      }
    },
  };
})();
"""


def chromium_missing_reason() -> str | None:
    if CHROMIUM.exists():
        return None
    return f"Chromium is not installed at {CHROMIUM}; install it with `apt-get install -y chromium`"


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


class LiveServer:
    """A uvicorn server on 127.0.0.1 and a free port, run in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="sidebar-live-server",
            daemon=True,
        )

    def start(self, wait_s: float = 60.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + wait_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the live server stopped while starting; see the log above")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the live server did not start within {wait_s:.0f} s")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()


@contextmanager
def serve(app: Any) -> Iterator[LiveServer]:
    server = LiveServer(app)
    server.start()
    try:
        yield server
    finally:
        server.stop()
