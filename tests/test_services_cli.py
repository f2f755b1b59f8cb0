"""`python -m devtools.services -- COMMAND`: the throwaway servers go away however the command ends."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time

from tests.conftest import REPO


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_sigterm_ends_the_command_and_stops_both_servers() -> None:
    services = subprocess.Popen(
        [sys.executable, "-m", "devtools.services", "--", sys.executable, "-c", "import time; time.sleep(300)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert services.stdout is not None
        line = services.stdout.readline()
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", line)]
        assert len(ports) == 2, line
        assert not any(map(_refused, ports)), "the servers were not up when the command ran"
        time.sleep(0.5)  # the command has started
        services.send_signal(signal.SIGTERM)
        assert services.wait(timeout=180) == 128 + signal.SIGTERM
        assert all(map(_refused, ports)), "a server outlived `devtools.services`"
    finally:
        if services.poll() is None:
            services.kill()
