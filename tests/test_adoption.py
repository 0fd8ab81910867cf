"""
The quick start of docs/install.md, as a new user would follow it: the built
wheel in a fresh virtualenv, a stock ``django-admin startproject``, the
documented snippets applied as written, Django and runwsserver started, and a
notification sent with ``notify()`` received over a raw WebSocket and in
Chromium's bell.
"""

import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from django import get_version as django_version
from django.conf import settings
from django.db import connection
from websockets.sync.client import connect

from tests.distribution import build_wheel
from tests.servers import BASE_DIR, free_port, wait_for_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        connection.vendor != "sqlite",
        reason="the adopting project has a SQLite database of its own: the SQLite pass runs it",
    ),
]

PASSWORD = "correct horse battery staple"
QUICK_START = BASE_DIR / "docs" / "install.md"
STEP_TIMEOUT = 300


def quick_start_snippet(name: str) -> str:
    """The code block that follows ``<!-- quickstart: name -->`` in the docs."""
    text = QUICK_START.read_text()
    match = re.search(
        rf"<!-- quickstart: {name} -->\n```\w*\n(.*?)```", text, flags=re.S
    )
    assert match, f"docs/install.md has no '{name}' snippet"
    return match.group(1)


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
    )
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout


@dataclass
class Site:
    """A stock project that followed the quick start, running."""

    directory: Path
    python: Path
    env: dict[str, str]
    url: str
    ws_url: str
    variant: str

    def manage(self, *args: str) -> str:
        return run(self.python, "manage.py", *args, cwd=self.directory, env=self.env)

    def shell(self, code: str) -> str:
        """Run ``code`` in the project's shell; what it printed."""
        return self.manage("shell", "--no-imports", "-c", code)

    def check(self) -> subprocess.CompletedProcess[str]:
        """``manage.py check``, which prints warnings to stderr and exits 0."""
        return subprocess.run(
            [self.python, "manage.py", "check"],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )


#: Django's Redis cache, on the test's Redis under its own key prefix.
REDIS_CACHE = (
    "CACHES = {{'default': {{"
    "'BACKEND': 'django.core.cache.backends.redis.RedisCache', "
    "'LOCATION': {redis!r}, 'KEY_PREFIX': {prefix!r}}}}}\n"
)

#: The project's own user model, in its app "accounts".
CUSTOM_USER = "INSTALLED_APPS += ['accounts']\nAUTH_USER_MODEL = 'accounts.User'\n"

#: Settings a variant adds after the quick start's (``{redis}`` and
#: ``{prefix}`` filled in): the host project's own choices the app must
#: work with.
VARIANTS = {
    "stock": "",
    "cache-sessions": REDIS_CACHE
    + "SESSION_ENGINE = 'django.contrib.sessions.backends.cache'\n",
    "cached-db-sessions": REDIS_CACHE
    + "SESSION_ENGINE = 'django.contrib.sessions.backends.cached_db'\n",
    # Served under a path by its WSGI server (SCRIPT_NAME, see MOUNTED).
    "script-name": "",
    # Custom user models (USER_MODELS), in an app of the project's own.
    "uuid-users": CUSTOM_USER,
    "string-key-users": CUSTOM_USER,
    "minimal-users": CUSTOM_USER,
    # Shaped like cookiecutter-django: a settings package (SPLIT_SETTINGS)
    # and a user model of its own.
    "cookiecutter": CUSTOM_USER,
}

USER_MODELS = {
    # Django's user, keyed by UUID.
    "uuid-users": """
import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
""",
    # Django's user, keyed by a string that isn't a number.
    "string-key-users": """
import secrets

from django.contrib.auth.models import AbstractUser
from django.db import models


def new_id():
    return f"user-{secrets.token_hex(6)}"


class User(AbstractUser):
    id = models.CharField(primary_key=True, max_length=20, default=new_id, editable=False)
""",
    # The least Django allows: no is_staff, is_superuser, groups or permissions.
    "minimal-users": """
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class User(AbstractBaseUser):
    username = models.CharField(max_length=150, unique=True)
    USERNAME_FIELD = "username"
    objects = BaseUserManager()
""",
    # cookiecutter-django's: one name instead of a first and a last.
    "cookiecutter": """
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    name = models.CharField(blank=True, max_length=255)
    first_name = None
    last_name = None
""",
}

#: The variants whose settings are a package: base.py, and local.py that
#: manage.py uses, with docs/install.md's split-settings snippets.
SPLIT_SETTINGS = {"cookiecutter"}

#: The script-name variant's WSGI server: the project mounted at /site, as a
#: proxy or a WSGI server with a mount point presents it (SCRIPT_NAME set,
#: PATH_INFO without the prefix). Threads, since a page and its API calls
#: may overlap.
MOUNT = "/site"
MOUNTED = f"""
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

from mysite.wsgi import application


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def mounted(environ, start_response):
    path = environ["PATH_INFO"]
    if not path.startswith("{MOUNT}/"):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not under {MOUNT}"]
    environ["SCRIPT_NAME"] = "{MOUNT}"
    environ["PATH_INFO"] = path.removeprefix("{MOUNT}")
    return application(environ, start_response)


make_server("127.0.0.1", int(sys.argv[1]), mounted, server_class=Server).serve_forever()
"""

#: Creates alice (the minimal model has no createsuperuser).
CREATE_ALICE = f"""
from django.contrib.auth import get_user_model
user = get_user_model()(username="alice")
user.set_password({PASSWORD!r})
user.save()
"""

#: What django.contrib.auth.login() stores, for a project whose login view
#: is its own business: prints the session key.
LOG_IN_ALICE = """
from importlib import import_module
from django.conf import settings
from django.contrib import auth
user = auth.get_user_model().objects.get(username="alice")
store = import_module(settings.SESSION_ENGINE).SessionStore()
store[auth.SESSION_KEY] = user._meta.pk.value_to_string(user)
store[auth.BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
store[auth.HASH_SESSION_KEY] = user.get_session_auth_hash()
store.save()
print(store.session_key)
"""


@pytest.fixture(scope="module")
def virtualenv(tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel installed, shared by the variants.

    With the Django this run tests (CI runs the suite on each Django the
    package supports), not whichever release the package's range admits."""
    root = tmp_path_factory.mktemp("adoption-env")
    wheel = build_wheel(root / "dist")
    run(sys.executable, "-m", "venv", root / "env", cwd=root)
    django = f"Django=={django_version()}"
    run(root / "env" / "bin" / "pip", "install", "-q", wheel, django, cwd=root)
    return root / "env"


@pytest.fixture(scope="module", params=list(VARIANTS))
def site(request, virtualenv, tmp_path_factory, redis_prefix) -> Iterator[Site]:
    variant = request.param
    root = tmp_path_factory.mktemp(f"adoption-{variant}")
    python = virtualenv / "bin" / "python"
    run(virtualenv / "bin" / "django-admin", "startproject", "mysite", cwd=root)
    directory = root / "mysite"
    port, ws_port = free_port(), free_port()
    origin, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{ws_port}/ws"
    url = origin + (MOUNT if variant == "script-name" else "")

    # Step 2: the documented settings, then this test's own values (its
    # ports, its Redis and key prefix, so parallel runs don't meet).
    own = (
        f"NOTIFICATIONS_REDIS_PREFIX = {redis_prefix + '-adoption'!r}\n"
        + "TEMPLATES[0]['DIRS'] = [BASE_DIR / 'templates']\n"
        + VARIANTS[variant].format(redis=settings.REDIS_URL, prefix=redis_prefix)
    )
    if variant in SPLIT_SETTINGS:
        split_settings(
            directory,
            base=quick_start_snippet("split-base")
            + f"REDIS_URL = {settings.REDIS_URL!r}\n"
            + own,
            local=quick_start_snippet("split-local")
            + f"NOTIFICATIONS_WS_ORIGINS = [{origin!r}]\n"
            + f"NOTIFICATIONS_WS_PORT = {ws_port}\n",
        )
    else:
        settings_file = directory / "mysite" / "settings.py"
        settings_file.write_text(
            settings_file.read_text()
            + "\n"
            + quick_start_snippet("settings")
            + f"NOTIFICATIONS_REDIS_URL = {settings.REDIS_URL!r}\n"
            + f"NOTIFICATIONS_WS_ORIGINS = [{origin!r}]\n"
            + f"NOTIFICATIONS_WS_URL = {ws_url!r}\n"
            + own
        )
    # Step 3: the URL include, and a home page for the template of step 4.
    urls_file = directory / "mysite" / "urls.py"
    urls_file.write_text(
        urls_file.read_text()
        + "\n"
        + quick_start_snippet("urls")
        + "from django.views.generic import TemplateView\n"
        + "urlpatterns.append(path('', TemplateView.as_view(template_name='base.html')))\n"
    )
    # Step 4: a base template with the tag.
    (directory / "templates").mkdir()
    (directory / "templates" / "base.html").write_text(
        "<!doctype html><html lang='en'><head><title>My site</title></head><body>"
        + quick_start_snippet("template")
        + "</body></html>\n"
    )
    env = {
        "PATH": f"{virtualenv / 'bin'}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(root)),
        "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
    }
    site = Site(directory, python, env, url, ws_url, variant)
    # Step 5: migrate, then both servers.
    assert quick_start_snippet("run").split() == [
        *("python", "manage.py", "migrate"),
        *("python", "manage.py", "runwsserver"),
    ]
    if variant in USER_MODELS:
        # By hand: startapp won't run while the settings name the app.
        (directory / "accounts" / "migrations").mkdir(parents=True)
        (directory / "accounts" / "__init__.py").write_text("")
        (directory / "accounts" / "migrations" / "__init__.py").write_text("")
        (directory / "accounts" / "models.py").write_text(USER_MODELS[variant])
        site.manage("makemigrations", "accounts")
    site.manage("migrate", "--noinput")
    if variant == "minimal-users":
        site.shell(CREATE_ALICE)
    else:
        site.manage(
            "createsuperuser",
            "--noinput",
            "--username",
            "alice",
            "--email",
            "a@example.com",
        )
    if variant == "script-name":
        (directory / "mounted.py").write_text(MOUNTED)
        django = [python, "mounted.py", str(port)]
    else:
        django = [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    processes = [
        subprocess.Popen(
            django,
            cwd=directory,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            # Split settings name the port (NOTIFICATIONS_WS_PORT) instead.
            [python, "manage.py", "runwsserver"]
            + ([] if variant in SPLIT_SETTINGS else ["--port", str(ws_port)]),
            cwd=directory,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_for_port(port, timeout=30)
        wait_for_port(ws_port, timeout=30)
        yield site
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def split_settings(directory: Path, *, base: str, local: str) -> None:
    """
    Turn the stock project's settings into a package, as cookiecutter-django
    has them: ``base.py`` (the stock settings, then ``base``), ``local.py``
    importing it (then ``local``), and manage.py using ``local``.
    """
    stock = directory / "mysite" / "settings.py"
    package = directory / "mysite" / "settings"
    package.mkdir()
    (package / "__init__.py").write_text("")
    one_level_deeper = stock.read_text().replace(
        "Path(__file__).resolve().parent.parent",
        "Path(__file__).resolve().parent.parent.parent",
    )
    assert "parent.parent.parent" in one_level_deeper, "BASE_DIR not found"
    (package / "base.py").write_text(one_level_deeper + "\n" + base)
    (package / "local.py").write_text("from .base import *  # noqa\n\n" + local)
    stock.unlink()
    manage = directory / "manage.py"
    text = manage.read_text()
    assert "'mysite.settings'" in text, text
    manage.write_text(text.replace("'mysite.settings'", "'mysite.settings.local'"))


def session_cookie(site: Site) -> str:
    """
    Log in through the stock admin's login form; return the session key.

    The minimal user model can't use the admin (it has no is_staff), so its
    session is made the way login() makes one.
    """
    if site.variant == "minimal-users":
        return site.shell(LOG_IN_ALICE).strip()
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login = f"{site.url}/admin/login/"
    page = opener.open(login, timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token}
    request = urllib.request.Request(
        f"{login}?next={urlsplit(site.url).path}/admin/",
        data=urlencode(form).encode(),
        headers={"Referer": login},
    )
    opener.open(request, timeout=10).read()
    [session] = [cookie.value for cookie in jar if cookie.name == "sessionid"]
    return session


def notify_alice(site: Site, title: str) -> None:
    site.shell(
        "from django.contrib.auth import get_user_model\n"
        "from notifications import notify, users\n"
        f"notify({title!r}, to=users(get_user_model().objects.get(username='alice')))",
    )


def test_the_documented_quick_start_works_in_a_stock_project(site):
    """The home page's bell is configured with the project's own URLs, a raw
    WebSocket client with the session cookie is welcomed, and a notification
    sent with notify() in the project's shell arrives: in the stock project;
    served under a path (SCRIPT_NAME); with its sessions in a Redis cache
    (alone, and in front of the database); with a custom user model keyed by
    UUID, or by a string; with one that has no is_staff, groups or
    permissions; and shaped like cookiecutter-django (split settings)."""
    cookie = session_cookie(site)
    mount = urlsplit(site.url).path
    home = urllib.request.Request(
        f"{site.url}/", headers={"Cookie": f"sessionid={cookie}"}
    )
    page = urllib.request.urlopen(home, timeout=10).read().decode()
    assert f'"listUrl": "{mount}/notifications/api/"' in page
    assert f'"readUrlTemplate": "{mount}/notifications/api/{{id}}/read/"' in page
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(site.url))
    with connect(
        site.ws_url,
        origin=origin,
        additional_headers={"Cookie": f"sessionid={cookie}"},
        open_timeout=10,
    ) as socket:
        socket.send(json.dumps({"type": "hello", "last_id": None}))
        welcome = json.loads(socket.recv(timeout=10))
        assert welcome["type"] == "welcome", welcome
        assert welcome["user"]["username"] == "alice"
        notify_alice(site, "Hello from notify()")
        deadline = time.monotonic() + 10
        while True:
            frame = json.loads(
                socket.recv(timeout=max(0.1, deadline - time.monotonic()))
            )
            if frame["type"] == "notification":
                break
        assert frame["title"] == "Hello from notify()"


@pytest.mark.browser
@pytest.mark.parametrize(
    "site", ["stock", "uuid-users", "string-key-users"], indirect=True
)
def test_the_stock_project_shows_the_notification_in_the_bell(site):
    """The same project in Chromium, stock and with UUID and string user keys: the
    admin's login, then the home page's bell goes live, counts the
    notification, and Mark read brings the count back down."""
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.goto(f"{site.url}/admin/login/?next=/")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit]")
        bell = page.locator("[data-notifications=bell]")
        bell.locator("[data-role=state][data-state=live]").wait_for(
            state="attached", timeout=10_000
        )
        badge = bell.locator("[data-role=unread-count]")
        before = int(badge.inner_text())
        notify_alice(site, "Seen in the bell")
        bell.locator("li.notification h2", has_text="Seen in the bell").wait_for(
            state="attached", timeout=5_000
        )
        assert int(badge.inner_text()) == before + 1
        bell.locator("[data-role=toggle]").click()
        first = bell.locator("li.notification").first
        assert first.locator("h2").inner_text() == "Seen in the bell"
        # Over the socket: the read state travels back through Redis.
        first.locator("button.mark-read").click()
        expect(badge).to_have_text(str(before), timeout=5_000)
        browser.close()


@pytest.mark.parametrize("site", ["minimal-users"], indirect=True)
def test_a_user_model_without_staff_or_groups_is_warned_about(site):
    """manage.py check names each audience the user model can't fill
    (notifications.W001), and sending to one reaches nobody, quietly."""
    checked = site.check()
    assert checked.returncode == 0, checked.stderr
    output = checked.stderr
    for audience in ("staff", "superusers", "groups", "permissions"):
        assert f"the {audience!r} audience reaches nobody" in output
    assert "notifications.W001" in output
    counted = site.shell(
        "from notifications import notify, staff\n"
        "from notifications.models import Notification\n"
        "event = notify('Staff only', to=staff())\n"
        "print(Notification.objects.filter(event_id=event).count())",
    )
    assert counted.strip() == "0"


@pytest.mark.parametrize("site", ["cookiecutter"], indirect=True)
def test_a_cookiecutter_shaped_project_takes_the_split_settings(site):
    """A project shaped like cookiecutter-django's (settings package with
    base.py and local.py, manage.py on local, its own user model, REDIS_URL
    in base) takes the guide's split-settings lines as written: manage.py
    check has nothing to say about the app, the app reads the project's
    REDIS_URL, and runwsserver listens on NOTIFICATIONS_WS_PORT (the quick
    start test above receives a notification through it)."""
    checked = site.check()
    assert checked.returncode == 0, checked.stderr
    assert "notifications." not in checked.stdout + checked.stderr
    seen = site.shell(
        "from django.conf import settings\n"
        "from notifications.conf import settings as app\n"
        "print(settings.SETTINGS_MODULE, settings.AUTH_USER_MODEL, "
        "app.REDIS_URL == settings.REDIS_URL, app.WS_PORT)"
    )
    port = urlsplit(site.ws_url).port
    assert seen.split() == ["mysite.settings.local", "accounts.User", "True", str(port)]
