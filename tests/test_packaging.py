"""The distribution: a wheel of the two apps, nothing of the demo or the tests."""

import re
import zipfile
from email.parser import Parser

import pytest
from django.db import connection

from tests.distribution import build_wheel

pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="the wheel doesn't depend on the database: the SQLite pass builds it",
)


def test_the_wheel_holds_the_apps_their_files_and_ranges(tmp_path):
    """Templates, static files, migrations, the compiled translations and
    their sources, the runwsserver command and py.typed are in; the demo project (its demo_users command, its styles),
    tests, bench and scripts are not; dependencies are ranges, not the
    demo's pins."""
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [metadata] = [name for name in names if name.endswith(".dist-info/METADATA")]
        fields = Parser().parsestr(archive.read(metadata).decode())
    top_level = {name.split("/")[0] for name in names if "dist-info" not in name}
    assert top_level == {"notifications", "ws_server"}
    for name in (
        "notifications/templates/notifications/bell.html",
        "notifications/templates/notifications/base.html",
        "notifications/static/notifications/live.js",
        "notifications/static/notifications/widget.css",
        "notifications/migrations/0001_initial.py",
        *(
            f"notifications/locale/{language}/LC_MESSAGES/django.{kind}"
            for language in ("fr", "de", "ar")
            for kind in ("mo", "po")
        ),
        "ws_server/management/commands/runwsserver.py",
        "notifications/py.typed",
        "ws_server/py.typed",
    ):
        assert name in names, name
    # The demo's login page would shadow the host project's.
    assert not any("registration/" in name for name in names)
    # Run by mistake, the demo's users command would make any user named
    # "admin" a superuser with a new password; its page styles are its own.
    assert not [name for name in names if "demo" in name], names
    assert "notifications/static/notifications/notifications.css" not in names
    requires = fields.get_all("Requires-Dist")
    assert {re.match(r"[\w.-]+", r).group() for r in requires} >= {
        "Django",
        "redis",
        "websockets",
    }
    assert not [r for r in requires if "==" in r.split(";")[0]], requires
