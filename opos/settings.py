"""OPOS Tracker settings, driven by environment variables.

With nothing set the service runs on an embedded default: SQLite in ``data/``,
a Celery broker that needs no server (kombu's filesystem transport) and the
local process batch backend. ``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch
to PostgreSQL and Redis; ``OPOS_ENV=production`` turns on the strict checks
(a SECRET_KEY and ALLOWED_HOSTS must be given).
"""

import datetime
import ipaddress
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from opos.endpoint_settings import batch_endpoints, env_key
from opos.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent


OPOS_ENV = env_str("OPOS_ENV", "development")
if OPOS_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"OPOS_ENV={OPOS_ENV!r} must be 'development' or 'production'")
PRODUCTION = OPOS_ENV == "production"

DATA_DIR = Path(env_str("OPOS_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _restrict(path: Path, mode: int) -> Path:
    """Make ``path`` (a folder) with ``mode``, and tighten it if we own it. The data folder
    is 0711: a batch account may pass through it to the work folders, never list it; what
    holds secrets (broker, results, spools, the SQLite file, the secret key) is ours only."""
    path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_uid == os.geteuid():
        path.chmod(mode)
    return path


_restrict(DATA_DIR, 0o711)

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when OPOS_ENV=production")
    # Development: a random key kept in the data folder, so sessions survive a
    # restart and no key is ever committed.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,[::1]")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when OPOS_ENV=production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "csp",
    "axes",
    "rest_framework",
    "knox",
    "django_filters",
    "django_tables2",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "experiments",
    "requests_app",
    "campaigns",
    "monitoring",
    "servicedesk",
    # The roof: the URL map, settings, and commands that span the apps (seed_demo).
    "opos",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "opos.middleware.refuse_nul_characters",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Django's, with the signed-in user and their roles from the shared cache
    # (experiments/viewers.py; Django's own lookup while OPOS_VIEWER_CACHE is off).
    "experiments.viewers.CachedAuthenticationMiddleware",
    "requests_app.middleware.UserTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last: turns a sign-in refused by the lockout into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "opos.urls"
WSGI_APPLICATION = "opos.wsgi.application"

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
                "requests_app.context_processors.roles",
                "requests_app.context_processors.time_zone",
            ],
        },
    },
]


def _databases() -> dict:
    url = env_str("DATABASE_URL")
    if not url:
        # Made private before SQLite first opens it: its -wal and -shm files take its mode.
        os.close(os.open(DATA_DIR / "opos.sqlite3", os.O_CREAT | os.O_WRONLY, 0o600))
        if (DATA_DIR / "opos.sqlite3").stat().st_uid == os.geteuid():
            (DATA_DIR / "opos.sqlite3").chmod(0o600)
        return {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": DATA_DIR / "opos.sqlite3",
                # Web, worker and beat write one file: WAL lets readers run
                # beside the writer, IMMEDIATE takes the write lock at BEGIN so
                # two writers queue on the busy timeout instead of deadlocking
                # on a lock upgrade.
                "OPTIONS": {
                    "transaction_mode": "IMMEDIATE",
                    "timeout": 20,
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                },
            }
        }
    try:
        config = dj_database_url.parse(url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is malformed: {exc}") from None
    if not config.get("ENGINE") or not config.get("NAME"):
        raise ImproperlyConfigured(
            f"DATABASE_URL is malformed: no database name in {url.split('@')[-1]!r}"
        )
    if config["ENGINE"] == "django.db.backends.postgresql":
        config["CONN_HEALTH_CHECKS"] = True
    return {"default": config}


DATABASES = _databases()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# django-axes first: it refuses a locked-out (username, address) pair before any password
# is checked, on every sign-in path (the sign-in page, the admin's, the API token).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "requests:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Outside production whitenoise serves straight from the app folders, so
# `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security (production behind a TLS-terminating proxy) -------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the cookie-less meta tag instead
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    if env_bool("USE_X_FORWARDED_PROTO", True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# Request size limits: a body (form or JSON) over DATA_UPLOAD_MAX_MEMORY_SIZE is refused
# with 400 before any view runs (a request of 100 sample lines is ~50 KB). Uploaded files
# are streamed to disk above FILE_UPLOAD_MAX_MEMORY_SIZE and refused by the views over
# their own caps (production code 20 MB, templates 256 KB); the proxy in front should
# cap whole requests just above the largest (e.g. nginx client_max_body_size 25m).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DATA_UPLOAD_MAX_NUMBER_FIELDS", 1000)
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)

# Proxies in front of the service whose X-Forwarded-For may be believed (addresses or
# networks), and how many of them a request passes (common/clientaddress.py). Empty: the
# header is ignored and the connection's own address counts.
OPOS_TRUSTED_PROXIES = env_list("OPOS_TRUSTED_PROXIES")
for _proxy in OPOS_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"OPOS_TRUSTED_PROXIES: {_proxy!r} is not an address or network (10.0.0.0/8)"
        ) from None
OPOS_PROXY_HOPS = env_int("OPOS_PROXY_HOPS", 1 if OPOS_TRUSTED_PROXIES else 0)

# Sign-in lockout (django-axes): after OPOS_LOGIN_FAILURE_LIMIT failures of one username
# from one client address, that pair is refused (429) until OPOS_LOGIN_LOCKOUT_S have
# passed without a further try, or an operator clears it (/accounts/lockouts/). The
# username is normalised as sign-in reads it (requests_app/auth.py).
AXES_FAILURE_LIMIT = env_int("OPOS_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("OPOS_LOGIN_LOCKOUT_S", 900))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_CALLABLE = "requests_app.auth.lockout_username"
AXES_CLIENT_IP_CALLABLE = "common.clientaddress.client_address"
AXES_LOCKOUT_CALLABLE = "requests_app.auth.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# A strict content security policy: our pages load scripts and styles only
# from our own origin (no inline code), so an injected string can't run.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- REST API ---------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "opos.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies too deep, with integers beyond 64 bits or NUL characters: 400 (common/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "common.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"login": env_str("LOGIN_THROTTLE_RATE", "10/min")},
    # DRF's throttles read X-Forwarded-For only this many proxies deep (0: never).
    "NUM_PROXIES": OPOS_PROXY_HOPS,
}
# API tokens (django-rest-knox): the database keeps a SHA-512 digest, never the token; a
# token expires after OPOS_API_TOKEN_TTL_DAYS and is revoked when its user's password
# changes (requests_app/services/tokens.py).
OPOS_API_TOKEN_TTL_DAYS = env_int("OPOS_API_TOKEN_TTL_DAYS", 30)
if OPOS_API_TOKEN_TTL_DAYS < 1:
    raise ImproperlyConfigured("OPOS_API_TOKEN_TTL_DAYS must be at least 1")
REST_KNOX = {
    "TOKEN_TTL": datetime.timedelta(days=OPOS_API_TOKEN_TTL_DAYS),
    "AUTO_REFRESH": False,
    "AUTH_HEADER_PREFIX": "Token",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "OPOS Tracker API",
    "DESCRIPTION": "Production requests, campaigns, jobs and progress of offline production.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the installed sidecar package, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One component name per choice set that several fields share.
    # Every operation also documents 400, 401, 403 and 404 (opos/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "opos.schema.document_refusals",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RequestStateEnum": "requests_app.choices.RequestState",
        "RequestActionEnum": "requests_app.workflow.USER_ACTIONS",
        "CodeKindEnum": "experiments.choices.CodeKind",
    },
}

# Login throttling and other short-lived counters; Redis in production so all
# gunicorn workers share one count.
_cache_url = env_str("CACHE_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url}
        if _cache_url
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# The rendered expensive parts of the monitoring pages and progress APIs are shared
# between viewers for up to this many seconds, and dropped at once when data changes
# (common/pagecache.py). On by default only with a shared cache: with the per-process
# LocMem cache a Celery worker's "data changed" would not reach the web processes.
# 0 computes every page on every request.
OPOS_PAGE_CACHE_S = env_int("OPOS_PAGE_CACHE_S", 30 if _cache_url else 0)
# The signed-in user and their roles kept in the cache between requests, dropped when
# any account, role or membership is written (experiments/viewers.py). Only with a cache
# every process shares: a revocation must reach every worker.
OPOS_VIEWER_CACHE = env_bool("OPOS_VIEWER_CACHE", bool(_cache_url))
if _cache_url:
    # Sessions read from the shared cache (written through to the database): one query
    # fewer per request, and still there after a cache restart.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# --- Celery -----------------------------------------------------------------
BROKER_DIR = _restrict(DATA_DIR / "broker", 0o700)
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # One folder both ways: each process reads what the others wrote. kombu's transport
    # writes message files in place, and a worker reading a half-written one died; ours
    # writes them whole (rename into place) and sets aside any it cannot read (opos/broker.py).
    CELERY_BROKER_TRANSPORT = "opos.broker:FilesystemTransport"
    for sub in ("queue", "processed", "broken", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        # Taken messages pass through here (the queue's file system: a rename, one taker).
        "processed_folder": str(BROKER_DIR / "processed"),
        "broken_folder": str(BROKER_DIR / "broken"),
        # Exchange tables (broadcast, remote control); default is ./control.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    _default_results = f"file://{DATA_DIR / 'results'}"
    _restrict(DATA_DIR / "results", 0o700)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    _default_results = CELERY_BROKER_URL
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", _default_results)
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 600)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 540)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_IMPORTS = ["opos.tasks"]
# Keep a worker's database connection across tasks (opos/celery.py): Celery's Django fixup
# would otherwise close it around every task. It still recycles it every this many tasks.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Deployments sharing one Redis (and the end-to-end tests) give each its own queue.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")

# --- Batch execution --------------------------------------------------------
OPOS_DEFAULT_BACKEND = env_str("OPOS_DEFAULT_BACKEND", "local")
OPOS_WORK_DIR = Path(env_str("OPOS_WORK_DIR", str(DATA_DIR / "work"))).resolve()
# Output storage (docs/storage.md): an experiment without its own area (root://host:port//path
# or a local folder, set by operators) stores into a folder of its own under this one.
OPOS_STORAGE_DIR = Path(env_str("OPOS_STORAGE_DIR", str(DATA_DIR / "storage"))).resolve()
# A job's outputs are copied and verified up to this many times before the job fails
# (class `transfer`) and is retried as a new attempt; each copy or query is bounded in time.
OPOS_TRANSFER_MAX_ATTEMPTS = env_int("OPOS_TRANSFER_MAX_ATTEMPTS", 5)
OPOS_TRANSFER_TIMEOUT_S = env_int("OPOS_TRANSFER_TIMEOUT_S", 240)
# A finalize cycle starts no new copy after this many seconds (the task's limit is 540).
OPOS_TRANSFER_BUDGET_S = env_int("OPOS_TRANSFER_BUDGET_S", 240)
# Work folders of jobs whose outputs are verified in storage lose their files (logs kept)
# this long after the job finished; the beat task runs every OPOS_RETENTION_INTERVAL_S.
OPOS_WORKDIR_RETENTION_DAYS = env_int("OPOS_WORKDIR_RETENTION_DAYS", 7)

# --- Intake -----------------------------------------------------------------
# Service-desk ticket references: letters followed by digits (RITM0012345).
OPOS_TICKET_PATTERN = env_str("OPOS_TICKET_PATTERN", r"^[A-Z]{2,10}[0-9]{4,12}$")
# Where a ticket number links to on the pages: a URL with "{ticket}" where the number goes,
# e.g. https://example.service-now.com/nav_to.do?uri=sc_req_item.do?sysparm_query=number={ticket}
# Empty: tickets show as plain text.
OPOS_TICKET_URL = env_str("OPOS_TICKET_URL", "")
# Bounds of every input (common/limits.py): refused with a 400 / form error naming the limit.
OPOS_DEADLINE_HORIZON_DAYS = env_int("OPOS_DEADLINE_HORIZON_DAYS", 5 * 365)
OPOS_MAX_EVENTS_PER_SAMPLE = env_int("OPOS_MAX_EVENTS_PER_SAMPLE", 10**12)
OPOS_MAX_EVENTS_PER_JOB = env_int("OPOS_MAX_EVENTS_PER_JOB", 10**9)
OPOS_MAX_JOBS_PER_SAMPLE = env_int("OPOS_MAX_JOBS_PER_SAMPLE", 100_000)
OPOS_MAX_JOBS_PER_REQUEST = env_int("OPOS_MAX_JOBS_PER_REQUEST", 1_000_000)
OPOS_JSON_MAX_DEPTH = env_int("OPOS_JSON_MAX_DEPTH", 32)

# --- Email ------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "opos-tracker@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# Where an approval (of a request) or a launch (of a campaign) leads next: the read
# side's commitments page, where the operator confirms what is promised. URL names, so
# neither intake nor execution imports the read side. Empty: back to the page, as before.
OPOS_COMMITMENTS_URLS = {
    "request": "monitoring:request_commitments",
    "campaign": "monitoring:campaign_commitments",
}
# The decision pages: what an approval, a launch, a scheduling or a priority change would
# do to everyone else, shown before the go-ahead. The request's and the campaign's
# buttons for these decisions lead there (URL names: intake and execution do not import
# the read side). Empty: the buttons act at once, and the effect is computed at the
# decision (recorded as such), as for the API.
OPOS_DECISION_URLS = {
    "request": "monitoring:request_what_if",
    "campaign": "monitoring:campaign_what_if",
}
# Commitments proposed at approval or launch start this long after it (seconds).
OPOS_COMMITMENT_START_LAG_S = env_int("OPOS_COMMITMENT_START_LAG_S", 7200)

# --- Execution ---------------------------------------------------------------
# Beat intervals in seconds. Short by default in development, so that `make run` takes a
# launched demo request to completed within a couple of minutes; production defaults are
# sized for thousands of jobs (submit 30, poll 60, finalize 30, recover 300, stuck 600).
OPOS_SUBMIT_INTERVAL_S = env_int("OPOS_SUBMIT_INTERVAL_S", 30 if PRODUCTION else 5)
OPOS_POLL_INTERVAL_S = env_int("OPOS_POLL_INTERVAL_S", 60 if PRODUCTION else 5)
OPOS_FINALIZE_INTERVAL_S = env_int("OPOS_FINALIZE_INTERVAL_S", 30 if PRODUCTION else 5)
OPOS_RECOVER_INTERVAL_S = env_int("OPOS_RECOVER_INTERVAL_S", 300 if PRODUCTION else 60)
OPOS_STUCK_INTERVAL_S = env_int("OPOS_STUCK_INTERVAL_S", 600 if PRODUCTION else 60)
OPOS_RETENTION_INTERVAL_S = env_int("OPOS_RETENTION_INTERVAL_S", 3600)
# The poller keeps the jobs in flight between polls and reads again those whose state
# changed within OPOS_POLL_RECENT_S (longer than any transaction that moves a job into
# flight, plus the clock skew between hosts), and all of them every OPOS_POLL_FULL_READ_S.
OPOS_POLL_RECENT_S = env_int("OPOS_POLL_RECENT_S", 360)
OPOS_POLL_FULL_READ_S = env_int("OPOS_POLL_FULL_READ_S", 600)
# Several endpoints and several workers: each cycle's poll sends one poll task per endpoint
# with jobs in flight, so the workers poll the clusters in separate processes.
OPOS_POLL_PER_ENDPOINT = env_bool("OPOS_POLL_PER_ENDPOINT", False)

# Heartbeats (campaigns.execution.heartbeat): every worker and beat records itself this
# often; /healthz answers 503 when no worker (or no beat) did for longer than the silent
# limits, or when workers and beat are alive but no worker ran beat's heartbeat task for
# OPOS_HEALTH_TASK_SILENT_S (longer than the longest task, which may hold every slot).
OPOS_HEARTBEAT_INTERVAL_S = env_int("OPOS_HEARTBEAT_INTERVAL_S", 15 if PRODUCTION else 5)
OPOS_HEALTH_WORKER_SILENT_S = env_int("OPOS_HEALTH_WORKER_SILENT_S", 90 if PRODUCTION else 30)
OPOS_HEALTH_BEAT_SILENT_S = env_int("OPOS_HEALTH_BEAT_SILENT_S", 90 if PRODUCTION else 30)
OPOS_HEALTH_TASK_SILENT_S = env_int("OPOS_HEALTH_TASK_SILENT_S", 900 if PRODUCTION else 300)
# /healthz waits at most this long for the broker (connection and queue depth).
OPOS_HEALTH_BROKER_TIMEOUT_S = env_int("OPOS_HEALTH_BROKER_TIMEOUT_S", 3)


def _beat(task: str, every: int) -> dict:
    # `expires` just under the interval: a backlog (worker down) never stacks duplicate runs.
    return {"task": task, "schedule": float(every), "options": {"expires": max(every * 0.9, 1)}}


CELERY_BEAT_SCHEDULE.update(
    {
        "execution-submit-ready": _beat("campaigns.submit_ready", OPOS_SUBMIT_INTERVAL_S),
        "execution-poll": _beat("campaigns.poll", OPOS_POLL_INTERVAL_S),
        "execution-finalize": _beat("campaigns.finalize", OPOS_FINALIZE_INTERVAL_S),
        "execution-recover": _beat("campaigns.recover", OPOS_RECOVER_INTERVAL_S),
        "execution-detect-stuck": _beat("campaigns.detect_stuck", OPOS_STUCK_INTERVAL_S),
        "execution-heartbeat": _beat("campaigns.heartbeat", OPOS_HEARTBEAT_INTERVAL_S),
        "execution-purge-workdirs": _beat("campaigns.purge_workdirs", OPOS_RETENTION_INTERVAL_S),
    }
)

# Options per batch endpoint, given to campaigns.batch.get_backend; `partition`,
# `account`, `qos` and `requirements` go to each submission instead, as the site defaults
# an experiment or campaign may override. Several endpoints can be active at once (the
# endpoint is chosen per experiment, overridable per campaign). An entry named after a kind
# (local, slurm, htcondor) is that kind's own endpoint; more, of any kind, come from
# OPOS_BATCH_ENDPOINTS below (experiments/endpoints.py, docs/deployment.md).
OPOS_BATCH_TIMEOUT_S = env_int("OPOS_BATCH_TIMEOUT_S", 60)
_restrict(DATA_DIR / "batch", 0o700)  # the backends' records: the service's only
OPOS_LOCAL_SPOOL_DIR = env_str("OPOS_LOCAL_SPOOL_DIR", str(DATA_DIR / "batch" / "local"))


def _job_hidden_paths() -> list[str]:
    """What a local job must not see (campaigns/batch/sandbox.py): the data folder (database,
    secret key, broker folder, results, spool), the work root (other campaigns' folders;
    the job's own are shown again), the SQLite file's folder wherever it is, and the extra
    paths of OPOS_LOCAL_HIDE (site secrets such as a credentials folder)."""
    paths = {str(DATA_DIR), str(OPOS_WORK_DIR), OPOS_LOCAL_SPOOL_DIR, str(BROKER_DIR)}
    name = DATABASES["default"].get("NAME")
    if DATABASES["default"]["ENGINE"].endswith("sqlite3") and name and str(name) != ":memory:":
        paths.add(str(Path(name).resolve().parent))
    paths.update(env_list("OPOS_LOCAL_HIDE"))
    return sorted(paths)


# Local jobs: "sandbox" (bubblewrap, required; the default) or "off" (no isolation: the
# job can read everything the service can; only for trusted code on a one-person machine).
OPOS_LOCAL_ISOLATION = env_str("OPOS_LOCAL_ISOLATION", "sandbox")
if OPOS_LOCAL_ISOLATION not in {"sandbox", "off"}:
    raise ImproperlyConfigured(
        f"OPOS_LOCAL_ISOLATION={OPOS_LOCAL_ISOLATION!r} must be 'sandbox' or 'off'"
    )
OPOS_BACKEND_OPTIONS = {
    "local": {
        "slots": env_int("OPOS_LOCAL_SLOTS", 4),
        "spool_dir": OPOS_LOCAL_SPOOL_DIR,
        "timeout": OPOS_BATCH_TIMEOUT_S,
        "isolation": OPOS_LOCAL_ISOLATION,
        # The project folder too (a deployment's .env, say): of it a job sees only the
        # package of the job wrapper and the runner (standard library only, no settings).
        "hidden_paths": [*_job_hidden_paths(), str(BASE_DIR)],
        # OPOS_LOCAL_SHOW: folders every job may read although they lie in a hidden or
        # fresh place (a conditions area under /tmp or a home); /cvmfs and the like are
        # seen anyway, read-only.
        "tool_paths": [str(BASE_DIR / "campaigns"), *env_list("OPOS_LOCAL_SHOW")],
        "job_user": env_str("OPOS_LOCAL_JOB_USER") or None,
        "job_network": env_bool("OPOS_LOCAL_JOB_NETWORK", False),
    },
    "slurm": {
        "state_dir": env_str("OPOS_SLURM_STATE_DIR", str(DATA_DIR / "batch" / "slurm")),
        "partition": env_str("OPOS_SLURM_PARTITION") or None,
        "account": env_str("OPOS_SLURM_ACCOUNT") or None,
        "qos": env_str("OPOS_SLURM_QOS") or None,
        "max_array_size": env_int("OPOS_SLURM_MAX_ARRAY_SIZE", 0) or None,
        # The batch account jobs run as (sbatch --uid; the worker must run as root).
        "job_user": env_str("OPOS_SLURM_JOB_USER") or None,
        "timeout": OPOS_BATCH_TIMEOUT_S,
    },
    "htcondor": {
        "schedd_name": env_str("OPOS_HTCONDOR_SCHEDD") or None,
        "pool": env_str("OPOS_HTCONDOR_POOL") or None,
        "account": env_str("OPOS_HTCONDOR_ACCOUNTING_GROUP") or None,
        "requirements": env_str("OPOS_HTCONDOR_REQUIREMENTS") or None,
        "timeout": OPOS_BATCH_TIMEOUT_S,
    },
}


# Several endpoints of one kind (two Slurm clusters, several HTCondor schedds): a JSON object
# of named entries, each with its "kind" and its own options, e.g.
#   OPOS_BATCH_ENDPOINTS='{"slurm-b": {"kind": "slurm", "slurm_conf": "/etc/slurm-b/slurm.conf",
#                          "capacity": 300}}'
# A named endpoint takes its kind's entry above but for what says where work goes (the
# cluster, the partition, the records; experiments/endpoints.py: PLACE_OPTIONS); its records
# go to DATA_DIR/batch/<name> unless it says otherwise. "capacity" and "job_url" in an entry
# are its OPOS_BACKEND_CAPACITY and OPOS_BATCH_JOB_URL. An entry named after a kind adds to
# that kind's own endpoint (say its slurm_conf).
_endpoint_options, _endpoint_capacities, _endpoint_links = batch_endpoints(
    env_str("OPOS_BATCH_ENDPOINTS"), OPOS_BACKEND_OPTIONS, DATA_DIR / "batch"
)
OPOS_BACKEND_OPTIONS.update(_endpoint_options)

# Links from a job's log page to the batch system's own view of the job, per endpoint:
# "{batch_id}" becomes the job's batch id ("{array_id}" the array's), e.g.
# OPOS_SLURM_JOB_URL=https://ondemand.example.org/pun/sys/activejobs?jobid={batch_id}
# (OPOS_SLURM_B_JOB_URL for an endpoint slurm-b). Empty: no link. Only http(s) addresses
# are linked.
OPOS_BATCH_JOB_URL = {
    "slurm": env_str("OPOS_SLURM_JOB_URL"),
    "htcondor": env_str("OPOS_HTCONDOR_JOB_URL"),
    **_endpoint_links,
    **{
        name: env_str(f"OPOS_{env_key(name)}_JOB_URL")
        for name in _endpoint_options
        if env_str(f"OPOS_{env_key(name)}_JOB_URL")
    },
}
# Jobs in flight per endpoint (the scheduler's capacity): OPOS_<ENDPOINT>_CAPACITY, e.g.
# OPOS_SLURM_CAPACITY=2000, OPOS_SLURM_B_CAPACITY=300 (over a "capacity" in
# OPOS_BATCH_ENDPOINTS). An endpoint not given here takes the default of its kind's
# registration (campaigns/batch/__init__.py: REGISTRY), so the defaults are kept in one place.
OPOS_BACKEND_CAPACITY = {
    **_endpoint_capacities,
    **{
        name: env_int(f"OPOS_{env_key(name)}_CAPACITY", 0)
        for name in OPOS_BACKEND_OPTIONS
        if os.environ.get(f"OPOS_{env_key(name)}_CAPACITY", "")
    },
}
# Retries: attempts in all per job index, backoff doubling from the base up to the cap
# (with jitter), and the ceilings of what a retry may ask for.
OPOS_MAX_ATTEMPTS = env_int("OPOS_MAX_ATTEMPTS", 3)
OPOS_RETRY_BACKOFF_S = env_int("OPOS_RETRY_BACKOFF_S", 60 if PRODUCTION else 2)
OPOS_RETRY_BACKOFF_MAX_S = env_int("OPOS_RETRY_BACKOFF_MAX_S", 3600)
OPOS_MAX_MEMORY_MB = env_int("OPOS_MAX_MEMORY_MB", 64000)
OPOS_MAX_WALLTIME_S = env_int("OPOS_MAX_WALLTIME_S", 7 * 86400)
# Operators' failure-rule patterns run on job-written stderr: each search gives up (no
# match) after this many milliseconds (campaigns/execution/patterns.py).
OPOS_FAILURE_PATTERN_TIMEOUT_MS = env_int("OPOS_FAILURE_PATTERN_TIMEOUT_MS", 500)
# Exit codes never retried, besides the wrapper's own (bad job, code mismatch).
OPOS_NEVER_RETRY_EXIT_CODES = [int(c) for c in env_list("OPOS_NEVER_RETRY_EXIT_CODES", "")]
# A submission left `submitting` longer than this is resolved by recover; it must exceed
# the submit task's hard time limit, so the worker that made it is surely gone.
OPOS_SUBMIT_TASK_TIME_LIMIT_S = env_int("OPOS_SUBMIT_TASK_TIME_LIMIT_S", 300)
OPOS_SUBMISSION_GRACE_S = env_int("OPOS_SUBMISSION_GRACE_S", OPOS_SUBMIT_TASK_TIME_LIMIT_S + 60)
# Stuck detection thresholds.
OPOS_STUCK_QUEUED_S = env_int("OPOS_STUCK_QUEUED_S", 24 * 3600)
OPOS_STUCK_HELD_S = env_int("OPOS_STUCK_HELD_S", 3600)
OPOS_STUCK_RUNNING_FACTOR = env_int("OPOS_STUCK_RUNNING_FACTOR", 3)
OPOS_STUCK_STAGE_S = env_int("OPOS_STUCK_STAGE_S", 6 * 3600)
OPOS_STALL_FACTOR = env_int("OPOS_STALL_FACTOR", 5)  # x the median walltime: stalled
OPOS_STALL_MIN_S = env_int("OPOS_STALL_MIN_S", 900)
# Finalize recomputes every output's sha256 before declaring it (off only to save I/O on
# storage that verifies checksums itself).
OPOS_VERIFY_OUTPUT_CHECKSUMS = env_bool("OPOS_VERIFY_OUTPUT_CHECKSUMS", True)

# --- Service desk (ServiceNow) -----------------------------------------------
# The connector is off until an instance URL is set (see docs/servicedesk.md).
SERVICENOW_INSTANCE_URL = env_str("SERVICENOW_INSTANCE_URL")
SERVICENOW_USER = env_str("SERVICENOW_USER")
SERVICENOW_PASSWORD = env_str("SERVICENOW_PASSWORD")
SERVICENOW_TOKEN = env_str("SERVICENOW_TOKEN")  # OAuth bearer token instead of user/password
SERVICENOW_TABLE = env_str("SERVICENOW_TABLE", "sc_req_item")
SERVICENOW_ASSIGNMENT_GROUP = env_str("SERVICENOW_ASSIGNMENT_GROUP")  # sys_id or name
SERVICENOW_TIMEOUT = env_int("SERVICENOW_TIMEOUT", 20)
# Ticket fields: who asked (dot-walked email), which experiment, which working group.
SERVICENOW_REQUESTER_EMAIL_FIELD = env_str("SERVICENOW_REQUESTER_EMAIL_FIELD")
SERVICENOW_EXPERIMENT_FIELD = env_str("SERVICENOW_EXPERIMENT_FIELD", "u_experiment")
SERVICENOW_GROUP_FIELD = env_str("SERVICENOW_GROUP_FIELD")
# "ticket value=experiment-slug,..." and "request-state=ticket-state,..." (overrides).
SERVICENOW_EXPERIMENT_MAP = env_str("SERVICENOW_EXPERIMENT_MAP")
SERVICENOW_STATE_MAP = env_str("SERVICENOW_STATE_MAP")
# "experiment-slug=username,..." and "experiment-slug=group-slug,..." for drafts.
SERVICEDESK_DEFAULT_LIAISONS = env_str("SERVICEDESK_DEFAULT_LIAISONS")
SERVICEDESK_DEFAULT_GROUPS = env_str("SERVICEDESK_DEFAULT_GROUPS")
SERVICEDESK_DEFAULT_DEADLINE_DAYS = env_int("SERVICEDESK_DEFAULT_DEADLINE_DAYS", 30)
SERVICEDESK_WEBHOOK_SECRET = env_str("SERVICEDESK_WEBHOOK_SECRET")
SERVICEDESK_PUSH_MAX_ATTEMPTS = env_int("SERVICEDESK_PUSH_MAX_ATTEMPTS", 48)
SERVICEDESK_PULL_INTERVAL_S = env_int("SERVICEDESK_PULL_INTERVAL_S", 300)
SERVICEDESK_PUSH_INTERVAL_S = env_int("SERVICEDESK_PUSH_INTERVAL_S", 60)
CELERY_BEAT_SCHEDULE.update(
    {
        # Both return at once while the connector is disabled.
        "servicedesk-pull": {
            "task": "servicedesk.pull_tickets",
            "schedule": SERVICEDESK_PULL_INTERVAL_S,
            "options": {"expires": SERVICEDESK_PULL_INTERVAL_S * 0.9},
        },
        "servicedesk-sync-outbound": {
            "task": "servicedesk.sync_outbound",
            "schedule": SERVICEDESK_PUSH_INTERVAL_S,
            "options": {"expires": SERVICEDESK_PUSH_INTERVAL_S * 0.9},
        },
    }
)
# One schema component per choice set that several execution fields share.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        "JobStateEnum": "campaigns.choices.JobState",
        "CampaignStateEnum": "campaigns.choices.CampaignState",
        "SubmissionStateEnum": "campaigns.choices.SubmissionState",
        "FailureClassEnum": "campaigns.choices.FailureClass",
    }
)

# --- Monitoring --------------------------------------------------------------
# Progress snapshots feed the burn-up charts and the throughput forecasts; short in
# development so a demo campaign of a few minutes draws a chart. Thinning (keep 48 h
# whole, hourly to 30 days, daily after) runs hourly; the digest once a day.
OPOS_SNAPSHOT_INTERVAL_S = env_int("OPOS_SNAPSHOT_INTERVAL_S", 300 if PRODUCTION else 20)
OPOS_THIN_INTERVAL_S = env_int("OPOS_THIN_INTERVAL_S", 3600)
OPOS_DIGEST_HOUR = env_int("OPOS_DIGEST_HOUR", 7)  # hour of the digest, in Celery's time zone (UTC)
# The weekly status report: day of the week (crontab's: 0 Sunday, 1 Monday) and hour.
OPOS_WEEKLY_REPORT_DAY = env_int("OPOS_WEEKLY_REPORT_DAY", 1)
OPOS_WEEKLY_REPORT_HOUR = env_int("OPOS_WEEKLY_REPORT_HOUR", 7)
# A throughput window counts once its snapshots span this long (seconds).
OPOS_FORECAST_MIN_SPAN_S = env_int("OPOS_FORECAST_MIN_SPAN_S", 1800 if PRODUCTION else 60)
OPOS_DASHBOARD_REFRESH_S = env_int("OPOS_DASHBOARD_REFRESH_S", 30 if PRODUCTION else 10)
# /metrics: a bearer token and/or the networks of the monitoring system (CIDR list);
# signed-in operators may always read it, nobody else.
OPOS_METRICS_TOKEN = env_str("OPOS_METRICS_TOKEN")
OPOS_METRICS_ALLOWED_NETWORKS = env_list("OPOS_METRICS_ALLOWED_NETWORKS")
for _network in OPOS_METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"OPOS_METRICS_ALLOWED_NETWORKS: {_network!r} is not a network (10.0.0.0/8)"
        ) from None
# The scheduler's projection behind the forecasts, computed by the worker once per data
# version and this many seconds and read by every page (campaigns/services/projection.py).
# Only with a shared cache (the worker's result must reach the web processes); 0 computes
# it on every page.
OPOS_PROJECTION_S = env_int("OPOS_PROJECTION_S", 60 if _cache_url else 0)
if OPOS_PROJECTION_S > 0:
    CELERY_BEAT_SCHEDULE["monitoring-refresh-projection"] = _beat(
        "monitoring.refresh_projection", max(OPOS_PROJECTION_S // 2, 1)
    )
CELERY_BEAT_SCHEDULE.update(
    {
        "monitoring-record-snapshots": _beat(
            "monitoring.record_snapshots", OPOS_SNAPSHOT_INTERVAL_S
        ),
        "monitoring-thin-snapshots": _beat("monitoring.thin_snapshots", OPOS_THIN_INTERVAL_S),
        # Promises judged as often as the snapshots that move their forecasts.
        "monitoring-check-commitments": _beat(
            "monitoring.check_commitments", OPOS_SNAPSHOT_INTERVAL_S
        ),
        "monitoring-send-weekly-reports": {
            "task": "monitoring.send_weekly_reports",
            "schedule": crontab(
                day_of_week=OPOS_WEEKLY_REPORT_DAY, hour=OPOS_WEEKLY_REPORT_HOUR, minute=30
            ),
            "options": {"expires": 3600},
        },
        "monitoring-send-digests": {
            "task": "monitoring.send_digests",
            "schedule": crontab(hour=OPOS_DIGEST_HOUR, minute=0),
            "options": {"expires": 3600},
        },
    }
)
# One schema component for the progress status, whichever serializer names it.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["ProgressStatusEnum"] = (
    "monitoring.choices.ProgressStatus"
)
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["CommitmentStatusEnum"] = (
    "monitoring.choices.CommitmentStatus"
)
# The interpreter that runs the job wrapper on the batch nodes (default: the worker's own).
OPOS_JOB_PYTHON = env_str("OPOS_JOB_PYTHON", "")
# Where the batch nodes import the job wrapper from (their PYTHONPATH). Empty: the project
# folder, which then must be on storage the nodes mount at the same path. A container
# deployment names a folder on the shared file system instead, and its worker publishes
# the wrapper there when it starts (manage.py publish_job_wrapper; docs/deployment.md).
OPOS_JOB_CODE_DIR = env_str("OPOS_JOB_CODE_DIR", "")
