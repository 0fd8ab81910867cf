"""System checks that guard the installation, not one setting."""

import notifications
from notifications.checks import check_package_conflict


def test_django_notifications_hq_in_the_same_package_is_an_error(tmp_path, monkeypatch):
    """Installed over this app, django-notifications-hq adds its
    notifications/base package beside ours: manage.py check says so
    (notifications.E002) instead of failing at some import later."""
    assert check_package_conflict() == []
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "__init__.py").write_text("")
    monkeypatch.setattr(
        notifications, "__path__", [*notifications.__path__, str(tmp_path)]
    )
    [error] = check_package_conflict()
    assert error.id == "notifications.E002"
    assert "django-notifications-hq" in error.msg
