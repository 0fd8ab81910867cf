"""
End to end through a real nginx running the committed site configuration
(docs/deploy/nginx.conf): Django and two runwsserver processes behind one
https origin. A user logs in with a real HTTP client, opens the WebSocket
URL the page names with the session cookie, and keeps receiving when the
process the socket is on is stopped.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from websockets.exceptions import InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from notifications import services
from notifications.broker import get_redis, presence_registry_key
from notifications.models import Audience
from tests.clients import close_of, receive, send_json
from tests.factories import make_user
from tests.nginx import (
    NginxProcess,
    install_nginx,
    render_site,
    self_signed_certificate,
)
from tests.servers import BASE_DIR, WebSocketServerProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"  # tests.factories.make_user's
STATIC_FILE = "notifications/live.js"
PRESENCE_INTERVAL = 0.1


@dataclass
class Site:
    """One https origin served by nginx, and what a client needs to trust it."""

    origin: str
    tls: ssl.SSLContext
    proxy: NginxProcess
    http_port: int
    servers: Sequence[WebSocketServerProcess] = ()


@dataclass
class Page:
    status: int
    url: str
    headers: Any
    text: str


class Browser:
    """A real HTTP client with a cookie jar, sending what a browser sends."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=site.tls),
            urllib.request.HTTPCookieProcessor(self.cookies),
        )

    def get(self, path: str) -> Page:
        return self._open(urllib.request.Request(self.site.origin + path))

    def log_in(self, username: str) -> Page:
        """Post Django's login form with its CSRF token; return the page after."""
        form = self.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, form.text
        fields = {
            "csrfmiddlewaretoken": token.group(1),
            "username": username,
            "password": PASSWORD,
            "next": "/",
        }
        request = urllib.request.Request(
            form.url,
            data=urllib.parse.urlencode(fields).encode(),
            headers={"Origin": self.site.origin, "Referer": form.url},
        )
        return self._open(request)

    def cookie_header(self) -> str:
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.cookies)

    def _open(self, request: urllib.request.Request) -> Page:
        try:
            response = self.opener.open(request, timeout=5)
        except urllib.error.HTTPError as error:
            response = error
        with response:
            text = response.read().decode()
            return Page(response.status, response.url, response.headers, text)


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    return install_nginx()


@contextmanager
def serve_site(
    nginx_binary: str,
    directory: Path,
    *,
    django: str,
    https_port: int,
    websocket_ports: Sequence[int],
) -> Iterator[Site]:
    """
    Run docs/deploy/nginx.conf on 127.0.0.1 with a self-signed certificate,
    in front of ``django`` (host:port) and the WebSocket servers, with
    Django configured as docs/deployment.md says for a site behind TLS.
    """
    origin = f"https://127.0.0.1:{https_port}"
    http_port = free_port()
    certificate, key = self_signed_certificate(directory)
    first, second = websocket_ports
    site = render_site(
        {
            "listen 80;": f"listen 127.0.0.1:{http_port};",
            "listen [::]:80;": None,
            "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
            "listen [::]:443 ssl;": None,
            "ssl_certificate /etc/letsencrypt/live/example.com/fullchain.pem;": (
                f"ssl_certificate {certificate};"
            ),
            "ssl_certificate_key /etc/letsencrypt/live/example.com/privkey.pem;": (
                f"ssl_certificate_key {key};"
            ),
            "server 127.0.0.1:8000;": f"server {django};",
            "server 127.0.0.1:8001;": f"server 127.0.0.1:{first};",
            "server 127.0.0.1:8002;": f"server 127.0.0.1:{second};",
            # The app's own files: the layout collectstatic gives STATIC_ROOT.
            "alias /srv/example/staticfiles/;": (
                f"alias {BASE_DIR / 'notifications' / 'static'}/;"
            ),
        }
    )
    with (
        NginxProcess(nginx_binary, directory, site, port=https_port) as proxy,
        # Not CSRF_TRUSTED_ORIGINS, which the docs also set (check --deploy
        # reads it): without it the login's CSRF check passes only if nginx
        # forwards the Host and the scheme that the browser used.
        override_settings(
            SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
            SESSION_COOKIE_SECURE=True,
            CSRF_COOKIE_SECURE=True,
            NOTIFICATIONS_WS_URL=f"wss://127.0.0.1:{https_port}/ws",
        ),
    ):
        tls = ssl.create_default_context(cafile=str(certificate))
        yield Site(origin, tls, proxy, http_port)


@pytest.fixture
def site(nginx_binary, live_server, redis_prefix, tmp_path) -> Iterator[Site]:
    """Django and two runwsserver processes behind nginx, on one origin."""
    https_port = free_port()
    options = {
        "redis_prefix": redis_prefix,
        "origins": [f"https://127.0.0.1:{https_port}"],
        # server_of() reads who is connected where from presence.
        "env": {"NOTIFICATIONS_PRESENCE_INTERVAL": str(PRESENCE_INTERVAL)},
    }
    with (
        WebSocketServerProcess(**options) as first,
        WebSocketServerProcess(**options) as second,
        serve_site(
            nginx_binary,
            tmp_path,
            django=urllib.parse.urlsplit(live_server.url).netloc,
            https_port=https_port,
            websocket_ports=(first.port, second.port),
        ) as site,
    ):
        site.servers = (first, second)
        yield site


@pytest.fixture
def bare_site(nginx_binary, live_server, tmp_path) -> Iterator[Site]:
    """Django behind nginx; nothing listens on the WebSocket upstreams."""
    with serve_site(
        nginx_binary,
        tmp_path,
        django=urllib.parse.urlsplit(live_server.url).netloc,
        https_port=free_port(),
        websocket_ports=(free_port(), free_port()),
    ) as site:
        yield site


@contextmanager
def live_socket(site: Site, url: str, browser: Browser) -> Iterator[ClientConnection]:
    """The page's WebSocket, with the browser's Origin and cookies."""
    try:
        connection = connect(
            url,
            ssl=site.tls,
            origin=site.origin,  # type: ignore[arg-type]
            additional_headers={"Cookie": browser.cookie_header()},
            proxy=None,
            open_timeout=5,
            compression=None,
        )
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise AssertionError(
            f"no WebSocket through nginx: {exc}\n{site.proxy.log()}"
        ) from exc
    with connection:
        yield connection


def say_hello(ws: ClientConnection, last_id: int | None) -> list[dict[str, Any]]:
    """Send hello; return every frame up to and including the welcome."""
    send_json(ws, {"type": "hello", "last_id": last_id})
    frames = [receive(ws, timeout=5)]
    while frames[-1]["type"] != "welcome":
        frames.append(receive(ws, timeout=5))
    return frames


def server_of(user: Any, servers: Sequence[WebSocketServerProcess]) -> Any:
    """
    The server holding ``user``'s connection: the one whose presence hash in
    Redis (``<prefix>:presence:<host>:<pid>:<token>``, see ws_server.presence)
    counts the user. Running servers write it every PRESENCE_INTERVAL.
    """
    by_pid = {
        server.process.pid: server
        for server in servers
        if server.process and server.process.poll() is None
    }
    redis = get_redis()
    deadline = time.monotonic() + 5
    while True:
        holding = [
            by_pid[pid]
            for key in redis.zrange(presence_registry_key(), 0, -1)
            if (pid := int(key.rsplit(":", 2)[1])) in by_pid
            and redis.hget(key, str(user.pk))
        ]
        if holding:
            assert len(holding) == 1, "one connection on two servers"
            return holding[0]
        assert time.monotonic() < deadline, "no server counts the connection"
        time.sleep(PRESENCE_INTERVAL)


def notify(user: Any, title: str) -> int:
    return services.send_event(title=title, audience=Audience.USERS, users=[user]).pk


def test_a_user_behind_nginx_keeps_receiving_when_their_server_stops(site):
    """
    Logged in through nginx, a user's socket on the URL the page names gets
    a notification from Django; when its server stops, the socket is closed
    with 1001, reconnects through nginx to the other server, resumes, and
    the user sees every notification once, the one sent meanwhile included.
    """
    alice = make_user()
    browser = Browser(site)
    inbox = browser.log_in(alice.username)
    assert (inbox.status, inbox.url) == (200, site.origin + "/")
    config = re.search(
        r'<script id="notifications-config" type="application/json">(.*?)</script>',
        inbox.text,
    )
    assert config, inbox.text
    ws_url = json.loads(config.group(1))["wsUrl"]
    assert ws_url == site.origin.replace("https", "wss") + "/ws"

    seen: list[list[dict[str, Any]]] = []  # frames, per connection
    with live_socket(site, ws_url, browser) as ws:
        seen.append(say_hello(ws, last_id=None))
        assert seen[0][-1]["user"] == {"id": alice.pk, "username": alice.username}
        leaving = server_of(alice, site.servers)
        first = notify(alice, "first")
        seen[0].append(receive(ws, timeout=2))
        assert leaving.stop() == 0
        assert close_of(ws) == (1001, "")
    (staying,) = (server for server in site.servers if server is not leaving)

    missed = notify(alice, "sent while away")
    # Two handshakes after the stop: nginx's round robin offers one of them
    # to the stopped server first, so both landing on the other one shows
    # that nginx moves on to the next upstream instead of answering 502.
    with live_socket(site, ws_url, browser) as new_tab:
        say_hello(new_tab, last_id=None)
        assert server_of(alice, site.servers) is staying
    cursor = max(frame["cursor"] or 0 for frame in seen[0] if "cursor" in frame)
    with live_socket(site, ws_url, browser) as ws:
        seen.append(say_hello(ws, last_id=cursor))
        assert server_of(alice, site.servers) is staying
        after = notify(alice, "after the move")
        seen[1].append(receive(ws, timeout=2))
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)  # and nothing else

    ids = [
        [frame["id"] for frame in frames if frame["type"] == "notification"]
        for frames in seen
    ]
    assert all(len(set(each)) == len(each) for each in ids), ids
    # What the page shows: each id once, in order. The replay has the one
    # sent while away (and "first" again only if the cursor stayed below it).
    shown = list(dict.fromkeys(ids[0] + ids[1]))
    assert shown == [first, missed, after], ids
    assert missed in ids[1][:-1]


def test_the_documented_site_keeps_http_and_the_servers_probes_off_the_public(
    bare_site,
):
    """
    Plain http is redirected to https, pages carry HSTS, nginx serves static
    files, and neither /metrics nor the WebSocket servers' /readyz and
    /healthz are reachable through the public origin.
    """
    plain = http.client.HTTPConnection("127.0.0.1", bare_site.http_port, timeout=5)
    try:
        plain.request("GET", "/accounts/login/")
        redirect = plain.getresponse()
    finally:
        plain.close()
    assert redirect.status == 301
    assert redirect.headers["Location"] == "https://127.0.0.1/accounts/login/"

    browser = Browser(bare_site)
    login = browser.get("/accounts/login/")
    assert login.status == 200
    assert login.headers["Strict-Transport-Security"].startswith("max-age=63072000")
    static = browser.get(f"/static/{STATIC_FILE}")
    assert static.status == 200
    assert (
        static.text == (BASE_DIR / "notifications" / "static" / STATIC_FILE).read_text()
    )
    assert browser.get("/metrics").status == 403
    # Django's 404s: these paths never reach an upstream WebSocket server.
    assert browser.get("/readyz").status == 404
    assert browser.get("/healthz").status == 404
