"""
GET /metrics: the counters match what the clients did, with --workers 2.

Each worker reads every event from Redis, so "events relayed" counts each
event once per worker, while deliveries count one frame per recipient,
wherever it is connected. Any worker's answer adds up both workers.
"""

import http.client
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifications import services
from tests import metrics
from tests.clients import close_of, receive, subscriber, websocket
from tests.factories import make_user
from tests.servers import WebSocketServerProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WORKERS = 2


def refuse_oversize_headers(port: int) -> int:
    """Send a handshake with 18 KB of headers; return the HTTP status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.putrequest("GET", "/ws")
        for n in range(3):
            connection.putheader(f"X-Padding-{n}", "x" * 6_000)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def test_metrics_add_up_what_both_workers_did(redis_prefix):
    """Six clients over two workers, one bad cookie, one 431, three events, two leave."""
    users = [make_user() for _ in range(6)]
    server = WebSocketServerProcess(
        redis_prefix=redis_prefix, args=("--workers", str(WORKERS))
    )
    server.start(port=free_port())
    try:
        port = server.port
        # /readyz spoke for whichever worker answered: both relays must read
        # the stream before the events, or one would never relay them.
        deadline = time.monotonic() + 10
        while sum("relay connected" in line for line in server.lines) < WORKERS:
            assert time.monotonic() < deadline, "a worker's relay never connected"
            time.sleep(0.05)
        before = metrics.scrape(port)
        assert before[("notifications_connections", frozenset())] == 0
        with websocket(server, session_key="forged") as forged:
            forged.send('{"type": "hello"}')
            assert close_of(forged) == (4001, "authentication failed")
        assert refuse_oversize_headers(port) == 431
        with (
            subscriber(server, users[0]) as a,
            subscriber(server, users[1]) as b,
            subscriber(server, users[2]) as c,
            subscriber(server, users[3]) as d,
            subscriber(server, users[4]) as e,
            subscriber(server, users[5]) as f,
        ):
            clients = [a, b, c, d, e, f]
            events = [services.send_event(title=f"counted {i}").pk for i in range(3)]
            for ws in clients:
                assert [receive(ws, timeout=5)["id"] for _ in events] == events
            # Deliveries are counted as the frames are written: before the
            # clients read them, but the relay lag is observed just after.
            metrics.wait_for(
                port, "notifications_relay_lag_seconds_count", 3 * WORKERS, timeout=5
            )
            during = metrics.scrape(port)
            a.close()
            b.close()
            after_two_left = _wait_for_connections(port, 4)

        assert count(during, "notifications_connections") == 6
        assert count(during, "notifications_authentications_total", result="ok") == 6
        assert (
            count(during, "notifications_authentications_total", result="failed") == 1
        )
        assert count(during, "notifications_handshake_seconds_count") == 6
        assert (
            count(during, "notifications_refusals_total", reason="headers_too_large")
            == 1
        )
        assert (
            count(
                during, "notifications_refusals_total", reason="authentication_failed"
            )
            == 1
        )
        assert count(during, "notifications_closes_total", code="4001") == 1
        assert count(during, "notifications_events_relayed_total") == 3 * WORKERS
        assert count(during, "notifications_deliveries_total") == 3 * 6
        assert count(during, "notifications_relay_lag_seconds_count") == 3 * WORKERS
        # Commit to socket on one machine: well under a second each.
        assert count(during, "notifications_relay_lag_seconds_sum") < 3 * WORKERS
        assert after_two_left == 4
        assert _wait_for_connections(port, 0) == 0
    finally:
        assert server.stop() == 0


def count(sample: dict, name: str, **labels: str) -> float:
    """One value of a scrape; 0 for a labelled counter that hasn't counted."""
    return sample.get((name, frozenset(labels.items())), 0.0)


def _wait_for_connections(port: int, expected: float) -> float:
    """The open-connection gauge once it reads ``expected`` (it goes down too)."""
    deadline = time.monotonic() + 5
    while (current := metrics.value(port, "notifications_connections")) != expected:
        assert time.monotonic() < deadline, f"{current} connections, not {expected}"
        time.sleep(0.05)
    return current


def test_a_separate_metrics_port_keeps_them_off_the_websocket_port(redis_prefix):
    """NOTIFICATIONS_METRICS_PORT: the supervisor serves every worker's metrics
    there, and the public WebSocket port answers 404 for /metrics."""
    metrics_port = free_port()
    server = WebSocketServerProcess(
        redis_prefix=redis_prefix,
        args=("--workers", str(WORKERS)),
        env={"NOTIFICATIONS_METRICS_PORT": str(metrics_port)},
    )
    server.start(port=free_port())
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        refused.value.close()
        assert refused.value.code == 404
        with subscriber(server, make_user()):
            metrics.wait_for(metrics_port, "notifications_connections", 1, timeout=5)
        with urllib.request.urlopen(
            f"http://127.0.0.1:{metrics_port}/metrics", timeout=5
        ) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            names = {
                family.name
                for family in text_string_to_metric_families(response.read().decode())
            }
        assert {"notifications_deliveries", "notifications_connections"} <= names
        server.wait_for_log(f"metrics on http://127.0.0.1:{metrics_port}/metrics")
    finally:
        assert server.stop() == 0
