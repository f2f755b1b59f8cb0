"""Serve an ASGI app on 127.0.0.1 and a free port in a background thread, for tests that need a socket."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import uvicorn

__all__ = ["running", "serve_in_thread"]

# Every server of a test run gets an address no earlier one had: the copilot keys cached WeCom tokens by the
# API's address, and a token cached from an earlier stub on a reused port would be refused by the new one.
_ports_served: set[int] = set()


def _fresh_socket() -> socket.socket:
    """A socket bound to 127.0.0.1 on a port no server of this process was given before."""
    passed_over: list[socket.socket] = []
    try:
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            if port not in _ports_served:
                _ports_served.add(port)
                return sock
            passed_over.append(sock)  # held open while searching, so the system offers another port
    finally:
        for sock in passed_over:
            sock.close()


@contextmanager
def serve_in_thread(app: Any, *, name: str, lifespan: Literal["auto", "on", "off"] = "off", start_s: float = 20.0,
                    access_log: bool = False) -> Iterator[str]:
    """Yield the server's base URL while it runs; stop it and free the port afterwards. Logs go to the
    root logger (no uvicorn log config), where `caplog` sees them."""
    config = uvicorn.Config(app, log_config=None, access_log=access_log, lifespan=lifespan,
                            log_level="debug" if access_log else "warning")
    if access_log:  # a server started before without an access log switched the shared logger off
        logging.getLogger("uvicorn.access").propagate = True
    server = uvicorn.Server(config)
    sock = _fresh_socket()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the {name} server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


S = TypeVar("S", bound=Any)


@contextmanager
def running(stub: S, *, name: str) -> Iterator[S]:
    """Serve `stub` (anything with `app()`, `base_url` and a `_closing` event) on a free port for the
    duration; slow handlers waiting on `_closing` are released before the server stops."""
    with serve_in_thread(stub.app(), name=name) as url:
        stub.base_url = url
        try:
            yield stub
        finally:
            stub._closing.set()
