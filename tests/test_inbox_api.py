"""The inbox over HTTP: pages, unread counts, read and dismissed state, expiry."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from notifications import services, views
from notifications.models import Notification
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return make_user()


@pytest.fixture
def browser(alice) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/")  # sets the CSRF cookie, as the inbox page does
    return client


def post(client: Client, url: str, data: dict | None = None):
    return client.post(
        url, data or {}, headers={"X-CSRFToken": client.cookies["csrftoken"].value}
    )


def send(count: int, **kwargs) -> list[int]:
    return [services.send_event(title=f"event {i}", **kwargs).pk for i in range(count)]


def test_list_pages_with_a_cursor(browser):
    """The list is newest first; next_before fetches the following page."""
    ids = send(5)
    first = browser.get("/api/?limit=2").json()
    assert [n["id"] for n in first["results"]] == ids[:-3:-1]
    assert first["unread"] == 5
    second = browser.get(f"/api/?limit=2&before={first['next_before']}").json()
    assert [n["id"] for n in second["results"]] == [ids[2], ids[1]]
    last = browser.get(f"/api/?limit=2&before={second['next_before']}").json()
    assert [n["id"] for n in last["results"]] == [ids[0]]
    assert last["next_before"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=1000", "limit=x", "before=abc"])
def test_bad_list_parameters_get_400(browser, query):
    """Out-of-range or non-numeric parameters are a 400 with a JSON error."""
    response = browser.get(f"/api/?{query}")
    assert response.status_code == 400
    assert "error" in response.json()


TOO_LARGE = [str(2**63), str(2**64), str(10**30), "9" * 5000]
NOT_IDS = ["-1", "1.5", "+1", "1_000", "\u0661", "abc"]


@pytest.mark.parametrize("value", [*TOO_LARGE, *NOT_IDS])
@pytest.mark.parametrize("action", ["read", "dismiss"])
def test_bad_path_ids_get_400(browser, action, value):
    """An id past 2**63-1, negative or not an integer in the path is a 400 with a JSON error."""
    response = post(browser, f"/api/{value}/{action}/")
    assert response.status_code == 400
    assert "error" in response.json()


@pytest.mark.parametrize("value", [*TOO_LARGE, *NOT_IDS])
def test_bad_before_gets_400(browser, value):
    """A 'before' past 2**63-1, negative or not an integer is a 400 with a JSON error."""
    response = browser.get("/api/", {"before": value})
    assert response.status_code == 400
    assert "error" in response.json()


@pytest.mark.parametrize("value", [*TOO_LARGE, *NOT_IDS])
def test_bad_up_to_gets_400(browser, value):
    """An 'up_to' past 2**63-1, negative or not an integer is a 400 with a JSON error."""
    response = post(browser, "/api/read-all/", {"up_to": value})
    assert response.status_code == 400
    assert "error" in response.json()


def test_the_largest_id_is_accepted(browser):
    """2**63-1 is a valid id everywhere: it just matches nothing, or everything below it."""
    [event_id] = send(1)
    largest = str(2**63 - 1)
    assert post(browser, f"/api/{largest}/read/").json() == {"unread": 1}
    assert post(browser, f"/api/{largest}/dismiss/").json() == {"unread": 1}
    page = browser.get("/api/", {"before": largest}).json()
    assert [n["id"] for n in page["results"]] == [event_id]
    response = post(browser, "/api/read-all/", {"up_to": largest})
    assert response.json() == {"marked": 1, "unread": 0}


def test_anonymous_api_calls_get_401():
    """The API answers 401 JSON rather than redirecting to the login page."""
    response = Client().get("/api/")
    assert (response.status_code, response.json()) == (
        401,
        {"error": "authentication required"},
    )


def test_changes_need_post_and_csrf(browser):
    """Marking read is a POST; without the CSRF token it is refused with 403."""
    [event_id] = send(1)
    assert browser.get(f"/api/{event_id}/read/").status_code == 405
    assert browser.post(f"/api/{event_id}/read/").status_code == 403


def test_mark_read(browser, alice):
    """Marking one read records when, and the unread count drops."""
    first, _second = send(2)
    response = post(browser, f"/api/{first}/read/")
    assert response.json() == {"unread": 1}
    notification = Notification.objects.get(user=alice, event_id=first)
    assert notification.read_at is not None


def test_mark_all_read_is_bounded_by_up_to(browser):
    """A notification newer than up_to (arrived while the user clicked) stays unread."""
    shown = send(3)
    [arrived_meanwhile] = send(1)
    response = post(browser, "/api/read-all/", {"up_to": shown[-1]})
    assert response.json() == {"marked": 3, "unread": 1}
    page = browser.get("/api/").json()["results"]
    assert next((n["id"], n["read"]) for n in page) == (arrived_meanwhile, False)


def test_mark_all_read_needs_an_id(browser):
    assert post(browser, "/api/read-all/", {"up_to": "all"}).status_code == 400


def test_dismissed_notifications_leave_the_inbox(browser):
    """A dismissed notification is neither listed nor counted as unread."""
    kept, dismissed = send(2)
    assert post(browser, f"/api/{dismissed}/dismiss/").json() == {"unread": 1}
    page = browser.get("/api/").json()
    assert [n["id"] for n in page["results"]] == [kept]
    assert browser.get("/api/unread/").json() == {"unread": 1}


def test_expired_notifications_are_hidden(browser):
    """An event past its expiry is not listed or counted."""
    [current] = send(1, expires_at=timezone.now() + timedelta(hours=1))
    send(1, expires_at=timezone.now() - timedelta(seconds=1))
    page = browser.get("/api/").json()
    assert ([n["id"] for n in page["results"]], page["unread"]) == ([current], 1)


def test_users_see_only_their_own_inbox(browser, alice):
    """Another user's notification can't be listed or marked read."""
    bob = make_user()
    [private] = [services.send_event(title="for bob", audience="users", users=[bob]).pk]
    assert browser.get("/api/").json()["results"] == []
    post(browser, f"/api/{private}/read/")
    assert Notification.objects.get(user=bob).read_at is None


@override_settings(ROOT_URLCONF="tests.urls_prefixed")
def test_id_urls_under_a_prefix_with_a_zero_in_it():
    """The client fills "{id}" in; a "/0/" in the prefix stays as it is, and
    the app's paths don't repeat the prefix's "notifications"."""
    assert views.id_url_template("notifications:api-read") == (
        "/team/0/notifications/api/{id}/read/"
    )
    assert reverse("notifications:api-list") == "/team/0/notifications/api/"


LOGIN_REQUIRED = "django.contrib.auth.middleware.LoginRequiredMiddleware"
CSRF_MIDDLEWARE = "django.middleware.csrf.CsrfViewMiddleware"
API_CALLS = [
    ("get", "/api/"),
    ("get", "/api/unread/"),
    ("post", "/api/1/read/"),
    ("post", "/api/1/dismiss/"),
    ("post", "/api/read-all/"),
    ("post", "/api/ws-ticket/"),
]
POSTS = [path for method, path in API_CALLS if method == "post"]


def middleware(*, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()):
    """The project's MIDDLEWARE with ``add`` at the end and ``remove`` left out."""
    kept = [name for name in django_settings.MIDDLEWARE if name not in remove]
    return override_settings(MIDDLEWARE=[*kept, *add])


@pytest.mark.parametrize(("method", "path"), API_CALLS)
def test_login_required_middleware_leaves_the_api_its_401(method, path):
    """With LoginRequiredMiddleware, an anonymous API call still gets 401 JSON,
    not a redirect that fetch() would follow to the login page's 200."""
    with middleware(add=(LOGIN_REQUIRED,)):
        response = getattr(Client(), method)(path)
    assert (response.status_code, response.json()) == (
        401,
        {"error": "authentication required"},
    )


def test_login_required_middleware_still_serves_the_signed_in(alice):
    """The middleware changes nothing for a signed-in user, and the inbox
    page (HTML) still sends the anonymous to the login page."""
    with middleware(add=(LOGIN_REQUIRED,)):
        anonymous, signed_in = Client(), Client()
        signed_in.force_login(alice)
        assert signed_in.get("/api/unread/").json() == {"unread": 0}
        page = anonymous.get("/")
    assert (page.status_code, page.url) == (302, "/accounts/login/?next=/")


@pytest.mark.parametrize("path", POSTS)
def test_posts_are_csrf_protected_without_the_csrf_middleware(alice, path):
    """The views protect themselves: with CsrfViewMiddleware gone, a POST
    without the token is still refused with 403."""
    with middleware(remove=(CSRF_MIDDLEWARE,)):
        browser = Client(enforce_csrf_checks=True)
        browser.force_login(alice)
        response = browser.post(path, {"up_to": "1"})
    assert response.status_code == 403


def test_the_inbox_page_sets_the_token_its_posts_need_without_the_middleware(alice):
    """Without CsrfViewMiddleware the inbox page still sends the CSRF cookie,
    so the page's own POSTs (with the token) go through."""
    [event_id] = send(1)
    with middleware(remove=(CSRF_MIDDLEWARE,)):
        browser = Client(enforce_csrf_checks=True)
        browser.force_login(alice)
        assert browser.get("/").status_code == 200
        response = post(browser, f"/api/{event_id}/read/")
    assert response.json() == {"unread": 0}


def test_a_ticket_needs_a_session_login(alice):
    """A user signed in without a session (an API token) is told, with 403
    JSON, that tickets need a session login: not a 500."""
    token = {"Authorization": f"Token {alice.username}"}
    with middleware(add=("tests.token_auth.TokenAuthMiddleware",)):
        client = Client()
        assert client.get("/api/unread/", headers=token).json() == {"unread": 0}
        response = client.post("/api/ws-ticket/", headers=token)
    assert (response.status_code, response.json()) == (
        403,
        {"error": "a WebSocket ticket needs a session login"},
    )
