"""
Settings for the demo project, read from the environment with django-environ.

With no environment at all the project runs as a local demo (DEBUG on, SQLite,
Redis on localhost). Production sets DEBUG=false, a real SECRET_KEY and the
hosts and origins it serves; see .env.example and the README's configuration
table.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from notifications.conf import DEFAULTS as notifications_defaults

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

INSECURE_SECRET_KEY = "django-insecure-demo-key-do-not-use-in-production"
#: The placeholder in .env.example: long enough, and just as public.
EXAMPLE_SECRET_KEY = "change-me-to-a-long-random-string-of-at-least-32-characters"

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_SECRET_KEY)
if not DEBUG and (
    SECRET_KEY in {INSECURE_SECRET_KEY, EXAMPLE_SECRET_KEY} or len(SECRET_KEY) < 32
):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a long random value when DEBUG is off; "
        "the built-in default is public and only fit for the local demo."
    )
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "notifications",
    "ws_server",
    # The demo's users command and page styles: not in the distribution.
    "project.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Pages and the admin in the browser's language (Accept-Language), where
    # the app has a catalog (notifications/locale/).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "project.wsgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The WebSocket process reads while Django writes: wait for locks instead
    # of failing, and let readers proceed beside a writer (WAL).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
# django-environ lower-cases KEY_PREFIX, TIMEOUT... for Django's own Redis
# backend, which then ignores them: give them back their names.
CACHES["default"] = {
    name if name == "OPTIONS" else name.upper(): value
    for name, value in CACHES["default"].items()
}
SESSION_ENGINE = env.str(
    "SESSION_ENGINE", default="django.contrib.sessions.backends.db"
)

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "notifications:inbox"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)

# Redis carries events from Django to every WebSocket process.
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

# Live notifications: every NOTIFICATIONS_* setting can come from the
# environment; notifications/conf.py has each one's default and meaning.
NOTIFICATIONS_WS_ORIGINS = ["http://localhost:8000", "http://127.0.0.1:8000"]
# The demo streams admin actions to the staff who may view them (/activity/).
NOTIFICATIONS_ACTIVITY = True
# The demo's live-events page (project/views.py) pushes these.
NOTIFICATIONS_EVENT_TYPES = {
    "demo.order": {"delivery": "durable"},
    "demo.counter": {"delivery": "live"},
}
_CASTS = {
    bool: env.bool,
    int: env.int,
    float: env.float,
    list: env.list,
    str: env.str,
    dict: env.json,
}
for _name, _default in notifications_defaults.items():
    _variable = f"NOTIFICATIONS_{_name}"
    if _variable in env:
        globals()[_variable] = _CASTS[type(_default)](_variable)

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# "json": one JSON object per line, with each line's fields (event, peer,
# user, code, ...) as keys, for log pipelines; "plain" for people.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "notifications": {"level": LOG_LEVEL},
        "ws_server": {"level": LOG_LEVEL},
        "websockets": {"level": "WARNING"},
    },
}
if LOG_FORMAT == "json":
    # Configured only when asked for: dictConfig imports every formatter.
    LOGGING["formatters"]["json"] = {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": ["asctime", "levelname", "process", "name", "message"],
        "rename_fields": {"asctime": "time", "levelname": "level"},
    }
