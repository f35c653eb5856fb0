"""CTE settings: everything that differs between machines comes from the environment.

The defaults run on one machine with no services: an SQLite file under ``var/`` and the
django-q2 ORM broker. ``DATABASE_URL`` selects PostgreSQL, ``REDIS_URL`` the Redis broker.
"""

import base64
import hashlib
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from cteproject.env import env_bool, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("CTE_DATA_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off (or SECRET_KEY_FILE)")
    SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"


def _encryption_keys() -> list[str]:
    """Fernet keys for secrets at rest; the first encrypts, all decrypt (rotation)."""
    raw = env_secret("CTE_ENCRYPTION_KEY")
    if raw:
        return [key.strip() for key in raw.split(",") if key.strip()]
    if not DEBUG:
        raise ImproperlyConfigured(
            "CTE_ENCRYPTION_KEY is required when DEBUG is off: a Fernet key, e.g. from "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    # Local development only: a key derived from the (development) SECRET_KEY.
    digest = hashlib.sha256(b"cte-secrets-at-rest:" + SECRET_KEY.encode()).digest()
    return [base64.urlsafe_b64encode(digest).decode()]


CTE_ENCRYPTION_KEYS = _encryption_keys()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "connectors",
    "exchange",
    "rules",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "cteproject.urls"
WSGI_APPLICATION = "cteproject.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# Database: an SQLite file by default, PostgreSQL (psycopg 3) through DATABASE_URL.
_SQLITE_OPTIONS = {
    # Writers queue for the lock instead of failing; WAL lets the web server read while
    # the task cluster writes.
    "timeout": 30,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DATA_DIR / "cte.sqlite3")}
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {**_SQLITE_OPTIONS, **_db.get("OPTIONS", {})}
    # A file, not memory, so that tests can run the commands in a second process.
    _db["TEST"] = {"NAME": str(DATA_DIR / "test-cte.sqlite3")}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # QuerySet.iterator() reads through a server-side cursor, which PostgreSQL plans for the first
    # tenth of its rows (nested loops) unless told otherwise; the share run and the lists this app
    # serves read every row, and the fast-start plan of the ledger anti-join takes 100 times longer.
    _options = _db.setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c cursor_tuple_fraction=1".strip()
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))

SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None

# Task queue: the ORM broker on the default database, or Redis when REDIS_URL is set, so that
# several qcluster processes on several machines share the work.
_TASK_TIMEOUT = env_int("CTE_TASK_TIMEOUT", 3 * 3600, minimum=60)
Q_CLUSTER = {
    # Clusters sharing a broker and a queue name share the work.
    "name": env_str("CTE_QUEUE", "cte"),
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": _TASK_TIMEOUT,
    "retry": _TASK_TIMEOUT + 300,
    # A pull or share is never re-run by the broker: the next schedule tick runs it again,
    # and the per-configuration lock keeps two from overlapping.
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 500,
    "label": "Tasks",
}
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 1

# CTE
CTE_DEMO_FEEDS = env_bool("CTE_DEMO_FEEDS", DEBUG)  # serve exchange/demo/ at /demo/feeds/
CTE_CONNECTORS = env_list("CTE_CONNECTORS", [
    "connectors.webfeed", "connectors.webhook", "connectors.edl", "connectors.netskope", "connectors.misp",
    "connectors.taxii", "connectors.taxii_server",
])
CTE_LOCK_DIR = DATA_DIR / "locks"
CTE_AGING_INTERVAL = env_int("CTE_AGING_INTERVAL", 60, minimum=1)  # minutes
CTE_MAX_REJECTS_PER_RUN = env_int("CTE_MAX_REJECTS_PER_RUN", 10_000, minimum=0)
CTE_HTTP_TIMEOUT = env_int("CTE_HTTP_TIMEOUT", 60, minimum=1)  # seconds, per read
CTE_HTTP_RETRIES = env_int("CTE_HTTP_RETRIES", 4, minimum=0)
# A failed delivery is retried by later share runs, waiting CTE_SHARE_RETRY_MINUTES, then twice
# as long each time (at most a day), until it has failed CTE_SHARE_MAX_ATTEMPTS times.
CTE_SHARE_MAX_ATTEMPTS = env_int("CTE_SHARE_MAX_ATTEMPTS", 5, minimum=1)
CTE_SHARE_RETRY_MINUTES = env_int("CTE_SHARE_RETRY_MINUTES", 5, minimum=0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "cte": {"handlers": ["console"], "level": env_str("CTE_LOG_LEVEL", "INFO")},
        "django_q": {"handlers": ["console"], "level": "WARNING"},
    },
}
