"""
The demo script, run as a person runs it: a WebSocket server that dies is
started again, and the demo keeps running.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from scripts.services import accepts_connections
from tests.servers import free_port

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parent.parent


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        time.sleep(0.2)


def runwsserver_pids(port: int) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", f"runwsserver --host 127.0.0.1 --port {port}"],
        capture_output=True,
        text=True,
    )
    return [int(pid) for pid in found.stdout.split()]


def test_demo_restarts_a_websocket_server_that_died(tmp_path):
    """SIGKILL the demo's runwsserver: the demo says so, starts it again on the
    same port, and Django keeps serving."""
    http_port, ws_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "REDIS_URL": settings.REDIS_URL,
        "NOTIFICATIONS_REDIS_PREFIX": f"test-demo-{uuid.uuid4().hex[:8]}",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = (tmp_path / "demo.log").open("w+")
    demo = subprocess.Popen(
        [
            sys.executable,
            "scripts/demo.py",
            "--http-port",
            str(http_port),
            "--ws-port",
            str(ws_port),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: "The demo is running" in Path(log.name).read_text(),
            60,
            "the demo started",
        )
        [pid] = runwsserver_pids(ws_port)
        os.kill(pid, signal.SIGKILL)
        wait_for(
            lambda: "starting it again" in Path(log.name).read_text(),
            5,
            "the death noticed",
        )
        wait_for(
            lambda: (
                runwsserver_pids(ws_port) and accepts_connections("127.0.0.1", ws_port)
            ),
            20,
            "the WebSocket server back",
        )
        assert demo.poll() is None, "the demo stopped"
        assert accepts_connections("127.0.0.1", http_port)
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(timeout=30)
        log.close()
