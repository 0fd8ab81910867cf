"""runwsserver --workers: several processes share one port and all deliver."""

import re

import pytest

from notifications import services
from tests.clients import receive, subscriber
from tests.factories import make_user
from tests.servers import WebSocketServerProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


LISTENING = re.compile(r"\[(\d+)\].*listening on")


def test_workers_share_the_port_and_stop_together(redis_prefix):
    """Two workers listen on one port; clients on either get events; SIGTERM stops both."""
    users = [make_user() for _ in range(6)]
    server = WebSocketServerProcess(redis_prefix=redis_prefix, args=("--workers", "2"))
    server.start(port=free_port())
    try:
        first = server.wait_for_log(LISTENING).group(1)
        second = server.wait_for_log(rf"\[(?!{first}\])(\d+)\].*listening on").group(1)
        assert first != second
        with (
            subscriber(server, users[0]) as a,
            subscriber(server, users[1]) as b,
            subscriber(server, users[2]) as c,
            subscriber(server, users[3]) as d,
        ):
            event = services.send_event(title="from either worker")
            assert [receive(ws)["id"] for ws in (a, b, c, d)] == [event.pk] * 4
    finally:
        assert server.stop() == 0
    assert any("shutting down" in line for line in server.lines)


def test_workers_need_a_fixed_port(redis_prefix):
    """--workers with --port 0 is refused with a clear message."""
    server = WebSocketServerProcess(redis_prefix=redis_prefix, args=("--workers", "2"))
    with pytest.raises(AssertionError, match="no log line"):
        server.start(port=0)
    assert server.process.wait(timeout=10) != 0
    assert any("--workers needs a fixed --port" in line for line in server.lines)


def test_workers_get_the_settings_and_pythonpath_they_were_started_with(
    redis_prefix, tmp_path
):
    """``runwsserver --workers 2 --settings=site_settings --pythonpath=DIR``:
    the settings module exists only on DIR, and both workers log through the
    logging format it sets, so both found it (without the options passed on,
    a worker can't import it and the set stops)."""
    (tmp_path / "site_settings.py").write_text(
        "from project.settings import *  # noqa: F403\n"
        "LOGGING['formatters']['plain']['format'] = "
        "'site-settings [%(process)d] %(name)s: %(message)s'\n"
    )
    server = WebSocketServerProcess(
        redis_prefix=redis_prefix,
        args=(
            *("--workers", "2", "--settings", "site_settings"),
            *("--pythonpath", str(tmp_path)),
        ),
    )
    server.start(port=free_port())
    try:
        marked = re.compile(r"^site-settings \[(\d+)\].*listening on")
        first = server.wait_for_log(marked).group(1)
        second = server.wait_for_log(
            rf"^site-settings \[(?!{first}\])(\d+)\].*listening on"
        ).group(1)
        assert first != second
    finally:
        assert server.stop() == 0
