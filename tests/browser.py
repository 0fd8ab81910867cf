"""
Headless Chromium for the browser tests: the browser, a runwsserver for the
live server's origins, and logging in through Django's login form.

Importing this module skips the importing test module when Chromium or
Playwright is missing (and fails under CI, which installs both).
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
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


def base_url(live_server, hostname: str) -> str:
    return f"http://{hostname}:{live_server.url.rsplit(':', 1)[1]}"


#: axe-core from the npm registry, for the accessibility audit.
AXE_CORE = "axe-core@4.14.1"
NPM_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "npm"


def axe_script() -> Path:
    """The path of axe.min.js, installed with npm on first use."""
    script = NPM_CACHE / "node_modules" / "axe-core" / "axe.min.js"
    if script.exists():
        return script
    npm = shutil.which("npm")
    if npm is not None:
        NPM_CACHE.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(NPM_CACHE),
                "--no-audit",
                "--no-fund",
                "--no-save",
                AXE_CORE,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if script.exists():
            return script
        reason = f"npm install {AXE_CORE} failed: {result.stderr[-500:]}"
    else:
        reason = "npm is not installed"
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"the accessibility audit needs {AXE_CORE}: {reason}")
    pytest.skip(reason)
