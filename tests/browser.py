"""
Headless Chromium for the browser tests: the browser, a runwsserver for the
live server's origins, and logging in through Django's login form.

Importing this module skips the importing test module when Chromium or
Playwright is missing (and fails under CI, which installs both).
"""

import functools
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from tests.servers import WebSocketServerProcess

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"browser tests need Chromium; not found at {CHROMIUM}")
    pytest.skip(
        "Chromium is not installed (set CHROMIUM=/path)", allow_module_level=True
    )

# Playwright's sync API keeps an event loop in this thread; the ORM calls
# these tests make between browser steps are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
sync_api = pytest.importorskip("playwright.sync_api")
#: Waits for a locator's text or attributes (they pierce the bell's shadow root).
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_ws_server(live_server, redis_prefix):
    """A runwsserver that accepts the live server's origins."""
    port = live_server.url.rsplit(":", 1)[1]
    origins = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    with (
        WebSocketServerProcess(redis_prefix=redis_prefix, origins=origins) as server,
        override_settings(NOTIFICATIONS_WS_URL=server.url),
    ):
        yield server


@pytest.fixture
def killable_ws_server(live_server, redis_prefix):
    """A runwsserver for the live server's pages that the test may kill and
    start again on its port (``server.start(port=...)``); killed at the end."""
    port = live_server.url.rsplit(":", 1)[1]
    server = WebSocketServerProcess(
        redis_prefix=redis_prefix, origins=[f"http://127.0.0.1:{port}"]
    )
    server.start()
    try:
        with override_settings(NOTIFICATIONS_WS_URL=server.url):
            yield server
    finally:
        server.kill()


#: The page's host decides its credential: the same host as the WebSocket
#: server sends the session cookie, another one fetches a ticket.
both_credentials = pytest.mark.parametrize(
    "hostname",
    [
        pytest.param("127.0.0.1", id="same-site-cookie"),
        pytest.param("localhost", id="cross-host-ticket"),
    ],
)


def log_in(page, base_url: str, username: str):
    page.goto(f"{base_url}/accounts/login/?next=/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#connection-state[data-state=live]", timeout=10_000)


def open_bell(page, url: str):
    """Go to ``url`` and return its bell once it is live."""
    page.goto(url)
    bell = page.locator("[data-notifications=bell]")
    bell.locator("[data-role=state][data-state=live]").wait_for(
        state="attached", timeout=10_000
    )
    return bell


def serious_axe_violations(page) -> list:
    """Run axe-core (from the npm cache) on ``page``: its serious and critical
    violations, each as (rule, help, targets)."""
    page.add_script_tag(path=str(npm_file(AXE_CORE, "axe.min.js")))
    results = page.evaluate("axe.run(document, { resultTypes: ['violations'] })")
    return [
        (
            violation["id"],
            violation["help"],
            [node["target"] for node in violation["nodes"]],
        )
        for violation in results["violations"]
        if violation["impact"] in {"serious", "critical"}
    ]


def base_url(live_server, hostname: str) -> str:
    return f"http://{hostname}:{live_server.url.rsplit(':', 1)[1]}"


def count_sockets(page) -> list:
    """The WebSockets ``page`` opens from now on, as Playwright reports them."""
    sockets: list = []
    page.on("websocket", lambda socket: sockets.append(socket))
    return sockets


class _QuietFiles(SimpleHTTPRequestHandler):
    """Static files and nothing else: no CORS headers, no request log."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def static_origin(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on another origin (a port of its own) the way a
    CDN or a plain static host does, with no CORS headers; yield its URL."""
    handler = functools.partial(_QuietFiles, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def collect_static() -> Path:
    """Run the real ``collectstatic`` with the current settings (STATIC_ROOT,
    STORAGES) and return STATIC_ROOT."""
    call_command("collectstatic", interactive=False, verbosity=0)
    return Path(settings.STATIC_ROOT)


#: Front-end packages from the npm registry, never committed: axe-core for
#: the accessibility audit; htmx, Turbo, Bootstrap and Tailwind for host pages.
AXE_CORE = "axe-core@4.14.1"
HTMX = "htmx.org@2.0.4"
TURBO = "@hotwired/turbo@8.0.12"
BOOTSTRAP = "bootstrap@5.3.3"
TAILWIND = "tailwindcss@2.2.19"
#: Outside the repository, shared by every checkout of it.
NPM_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "django-live-notifications-tests"
    / "npm"
)


def npm_file(spec: str, path: str) -> Path:
    """The file ``path`` of the npm package ``spec`` (``name@version``),
    installed with npm into NPM_CACHE on first use. Skips the test when the
    registry can't be reached (fails under CI, which must run it)."""
    name = spec.rsplit("@", 1)[0]
    prefix = NPM_CACHE / spec  # one prefix each: npm prunes what it didn't install
    file = prefix / "node_modules" / name / path
    if file.exists():
        return file
    npm = shutil.which("npm")
    if npm is not None:
        prefix.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", spec],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if file.exists():
            return file
        reason = f"npm install {spec} failed: {result.stderr[-500:]}"
    else:
        reason = "npm is not installed"
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"a browser test needs {spec}: {reason}")
    pytest.skip(reason)
