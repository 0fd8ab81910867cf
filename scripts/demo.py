"""
Quick start: run the whole demo (Django, the WebSocket server, Redis) at once.

    python3 scripts/demo.py [--http-port 8000] [--ws-port 8001]

Create .venv on first use, migrate the database, create the demo users, then
run both servers until Ctrl-C. When no Redis answers at REDIS_URL a private
one is started, so nothing beyond Python needs installing.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bootstrap import REPO_ROOT, ensure_venv
from scripts.processes import stop_processes
from scripts.services import accepts_connections, use_redis

POLL_INTERVAL = 0.2
#: A WebSocket server that dies is started again (so a person can try the
#: page's reconnecting by killing it), unless it dies this often: then
#: something is wrong with it and the demo stops.
RESTARTS_ALLOWED = 3
RESTART_WINDOW = 30.0


class StopRequest:
    """A signal handler that only records that a stop was asked for.

    The main loop polls it, so shutdown runs in ordinary code, in order, and a
    second Ctrl-C cannot interrupt it halfway.
    """

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def main() -> int:
    """Set up, serve until asked to stop, and return the exit status."""
    args = parse_args()
    ensure_venv()
    # Until the servers run, let SIGTERM unwind like Ctrl-C so that the
    # ``with`` block still stops a private Redis.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with use_redis():
            run_manage("migrate", "--noinput")
            run_manage("demo_users")
            return serve(args.http_port, args.ws_port)
    except KeyboardInterrupt:
        print("Interrupted before the servers started; stopped.")
        return 0
    except RuntimeError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--http-port", type=int, default=8000, help="Django's port")
    parser.add_argument(
        "--ws-port",
        type=int,
        default=int(os.environ.get("NOTIFICATIONS_WS_PORT", "8001")),
        help="WebSocket port (default: NOTIFICATIONS_WS_PORT, else 8001)",
    )
    return parser.parse_args()


def run_manage(*arguments: str) -> None:
    """Run a management command to completion, its output going to the terminal."""
    code = subprocess.run(manage_command(*arguments), cwd=REPO_ROOT).returncode
    if code != 0:
        raise RuntimeError(f"manage.py {arguments[0]} failed with exit code {code}")


def manage_command(*arguments: str) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "manage.py"), *arguments]


def serve(http_port: int, ws_port: int) -> int:
    """Run both servers until a signal asks to stop or one of them exits."""
    os.environ.setdefault(
        "NOTIFICATIONS_WS_ORIGINS",
        f"http://127.0.0.1:{http_port},http://localhost:{http_port}",
    )
    # Where runwsserver listens and pages connect (on their own host).
    os.environ["NOTIFICATIONS_WS_PORT"] = str(ws_port)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")  # keep the logs interleaved
    stop = StopRequest()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    servers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        servers["runserver"] = start_server(
            "runserver", f"127.0.0.1:{http_port}", "--noreload"
        )
        servers["runwsserver"] = start_ws_server(ws_port)
        return watch(servers, (http_port, ws_port), stop)
    finally:
        stop_processes(list(servers.values()))


def start_ws_server(port: int) -> subprocess.Popen[bytes]:
    return start_server("runwsserver", "--host", "127.0.0.1", "--port", str(port))


def start_server(*arguments: str) -> subprocess.Popen[bytes]:
    """Start a long-running management command in a session of its own.

    Its own session keeps a terminal's Ctrl-C from reaching it directly: this
    process stops it instead, so a requested stop never looks like a crash.
    """
    return subprocess.Popen(
        manage_command(*arguments),
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def watch(
    servers: dict[str, subprocess.Popen[bytes]],
    ports: tuple[int, int],
    stop: StopRequest,
) -> int:
    """
    Announce the URLs once both ports listen; restart a WebSocket server that
    died; return on a stop, or when Django dies (or the WebSocket server
    keeps dying).
    """
    announced = False
    restarts: list[float] = []
    while not stop.requested:
        for name, process in servers.items():
            if process.poll() is None:
                continue
            now = time.monotonic()
            restarts = [at for at in restarts if now - at < RESTART_WINDOW]
            if name == "runwsserver" and len(restarts) < RESTARTS_ALLOWED:
                print(
                    f"demo: runwsserver exited with code {process.returncode}; "
                    "starting it again (open pages reconnect and resume).",
                    file=sys.stderr,
                )
                restarts.append(now)
                servers[name] = start_ws_server(ports[1])
                break
            print(
                f"demo: {name} exited on its own with code {process.returncode}; "
                "stopping the rest.",
                file=sys.stderr,
            )
            return 1
        if not announced and all(accepts_connections("127.0.0.1", p) for p in ports):
            print_instructions(*ports)
            announced = True
        time.sleep(POLL_INTERVAL)
    print("Stopping ...", flush=True)
    return 0


def print_instructions(http_port: int, ws_port: int) -> None:
    print(
        "\nThe demo is running:\n"
        f"  users:     http://127.0.0.1:{http_port}/\n"
        f"  admin:     http://127.0.0.1:{http_port}/admin/\n"
        f"  WebSocket: ws://127.0.0.1:{ws_port}/ws\n"
        "Log in as a user in one window and as the admin in a private window, "
        "send an event from the admin, and watch it arrive.\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
