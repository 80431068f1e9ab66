"""The one settings module. Everything comes from the environment.

Local defaults are safe for a laptop (SQLite, moto on loopback, DEBUG on); production
(`AIRTICKET_ENV=production`) refuses to start with the development secret or DEBUG on.
A value that cannot be parsed raises ImproperlyConfigured at import time, so a typo in
an environment variable stops the process instead of surfacing later as odd behaviour.
"""

import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "dev-insecure-airticket-secret-do-not-use-in-production"


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} must be at most {maximum}")
    return value


def env_rate(name: str, default: str) -> str | None:
    """A throttle rate as DRF reads it, `N/second`, `N/minute`, `N/hour` or `N/day`; `off` for none."""
    value = env(name, default).strip()
    if value == "off":
        return None
    if not re.fullmatch(r"[1-9][0-9]{0,8}/(second|minute|hour|day)", value):
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate: use N/second, N/minute, N/hour or N/day (N at least 1), or off")
    return value


def env_name(name: str, default: str) -> str:
    """AWS resource names: letters, digits, '-', '_' and '.', 1-128 chars."""
    value = env(name, default)
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,128}", value):
        raise ImproperlyConfigured(f"{name}={value!r} is not a valid AWS resource name")
    return value


AIRTICKET_ENV = env("AIRTICKET_ENV", "local")
if AIRTICKET_ENV not in ("local", "test", "production"):
    raise ImproperlyConfigured(f"AIRTICKET_ENV={AIRTICKET_ENV!r}: use local, test or production")
PRODUCTION = AIRTICKET_ENV == "production"

SECRET_KEY = env("SECRET_KEY", DEV_SECRET_KEY)
DEBUG = env_bool("DEBUG", not PRODUCTION)
if PRODUCTION and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set in production")
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production")
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters")

ALLOWED_HOSTS = [h.strip() for h in env("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "airticket",
    "bookings",
    "admin_portal",
    "cdc_lambda",
]

MIDDLEWARE = [
    "airticket.observability.RequestContextMiddleware",  # first: the request id covers every line
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as axes asks: turns a lockout into its page
]

ROOT_URLCONF = "airticket.urls"
# The debug page masks DATABASE_URL (its password) like the settings named as secrets.
DEFAULT_EXCEPTION_REPORTER_FILTER = "airticket.errors.ExceptionReporterFilter"
WSGI_APPLICATION = "airticket.wsgi.application"

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

# --- Database -------------------------------------------------------------------------
# SQLite for the zero-setup run; MySQL/MariaDB (RDS/Aurora in production) via DATABASE_URL.
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'airticket.sqlite3'}")
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
except Exception as exc:  # dj_database_url raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.mysql":
    try:  # mysqlclient where it is built (here); PyMySQL where it is not (the Lambda package)
        import MySQLdb  # noqa: F401
    except ImportError:
        import pymysql

        pymysql.version_info = (2, 2, 1, "final", 0)  # Django checks the mysqlclient version
        pymysql.install_as_MySQLdb()
    _db.setdefault("OPTIONS", {}).update({"charset": "utf8mb4", "init_command": "SET sql_mode='STRICT_TRANS_TABLES'"})
    _db["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the poller write while the web server reads; a busy timeout instead of "database is
    # locked"; IMMEDIATE takes the write lock when a transaction begins, because a read that turns
    # into a write in WAL mode fails at once rather than waiting out the timeout.
    _db.setdefault("OPTIONS", {}).update({"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"})
    # Tests on a file too: Django's default in-memory test database shares one cache between
    # threads, whose table locks fail at once ("database table is locked") instead of waiting, and
    # the bridge and the poller run in threads as `make run` runs them.
    _db["TEST"] = {"NAME": str(Path(_db["NAME"]).with_suffix(".test.sqlite3"))}
    _db["CONN_MAX_AGE"] = 0
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

# --- Admin login: brute-force lockout (django-axes) ----------------------------------------
# Axes' backend comes first: it refuses a locked-out login before the password is checked.
# API tokens never go through `authenticate` (airticket.auth), so only the admin login counts.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ADMIN_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
# Either counter locks: one username from any address (a password guessed from many machines),
# or one address trying any usernames. Staff lift a lockout early in the admin (Access
# attempts: delete the row) or with `manage.py axes_reset_username NAME` / `axes_reset_ip IP`.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # each failed try listed in the admin, with address and agent
AXES_VERBOSE = False  # a warning per lockout is kept; not axes' banner at every start

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = env("STATIC_URL", "/static/")
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG

# --- HTTPS and browser policies --------------------------------------------------------------
# Production is HTTPS only. API Gateway (and an ALB) end TLS and say so in X-Forwarded-Proto,
# which they set themselves; Django trusts it for "is this request secure" (redirects, secure
# cookies, CSRF's referer check). HSTS for a year, subdomains included and preload-ready:
# lower SECURE_HSTS_SECONDS first if a rollout might need plain HTTP back.
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp) on every response, in every environment (the browser tests
# see what production sends): the admin, the query API's browsable pages and the API docs
# (Swagger UI and ReDoc from drf-spectacular-sidecar, same origin) load scripts only from this
# site, never inline. Styles may be inline: Swagger UI and ReDoc set them at run time. ReDoc
# runs its search in a blob: worker. With DEBUG on, Django's debug pages go without it.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "worker-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- AWS -------------------------------------------------------------------------------
# boto3 reads AWS_ENDPOINT_URL, AWS_REGION and credentials from the environment itself;
# we only read them here to report them and to decide what "local" means.
AWS_REGION = env("AWS_REGION", env("AWS_DEFAULT_REGION", "us-east-1"))
AWS_ENDPOINT_URL = env("AWS_ENDPOINT_URL")
DYNAMODB_TABLE = env_name("DYNAMODB_TABLE", "airticket")
KINESIS_STREAM = env_name("KINESIS_STREAM", "airticket-changes")
# Open shards of the change stream (`provision_aws` creates them; `provision_aws --reshard`
# moves an existing stream to this count with UpdateShardCount, at most double or half a step).
KINESIS_SHARDS = env_int("KINESIS_SHARDS", 2, minimum=1, maximum=10_000)
DLQ_QUEUE = env_name("DLQ_QUEUE", "airticket-cdc-dlq")
CDC_FUNCTION_NAME = env_name("CDC_FUNCTION_NAME", "airticket-cdc")
# How long reconcile gives the stream to deliver what it scanned before a row that disagrees
# with its item counts as a difference (more than the CDC's usual lag).
RECONCILE_SETTLE_SECONDS = env_int("RECONCILE_SETTLE_SECONDS", 5)

# Alarms (`provision_aws --alarms`): the SNS topic they notify, an optional email subscribed
# to it, and the Zappa stages behind API Gateway (function `<project>-<stage>`, API of the
# same name, API Gateway stage `<stage>`), whose 5xx rate and Lambda errors are watched.
ALARM_TOPIC = env_name("ALARM_TOPIC", "airticket-alarms")
ALARM_EMAIL = env("ALARM_EMAIL")
if ALARM_EMAIL and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", ALARM_EMAIL):
    raise ImproperlyConfigured(f"ALARM_EMAIL={ALARM_EMAIL!r} is not an email address")
ZAPPA_PROJECT = env_name("ZAPPA_PROJECT", "airticket")
STACK_NAME = env_name("STACK_NAME", "airticket-data")  # `provision_aws --stack` (airticket.stack)
HTTP_STAGES = env("HTTP_STAGES", "command query").split()
# API Gateway's stage throttle on those stages (`provision_aws --throttling`), the first line on
# AWS: requests per second (steady) and the burst, over all callers together. Zappa has no
# setting for it. It must stay above the per-caller throttles below (a lone caller meets those,
# in the API's error shape, long before the stage's limit), which a test checks.
API_THROTTLE_RATE = env_int("API_THROTTLE_RATE", 100, minimum=1)
API_THROTTLE_BURST = env_int("API_THROTTLE_BURST", 200, minimum=1)
if API_THROTTLE_BURST < API_THROTTLE_RATE:
    raise ImproperlyConfigured(f"API_THROTTLE_BURST={API_THROTTLE_BURST} must be at least API_THROTTLE_RATE={API_THROTTLE_RATE}")

# --- Tokens ----------------------------------------------------------------------------
# Signed with TOKEN_SECRET (defaults to SECRET_KEY) so the command Lambda verifies them
# without a database.
TOKEN_SECRET = env("TOKEN_SECRET", SECRET_KEY)
# The development value is in the repository: anyone could sign staff tokens with it.
if PRODUCTION and TOKEN_SECRET == DEV_SECRET_KEY:
    raise ImproperlyConfigured("TOKEN_SECRET must not be the development secret in production")
if len(TOKEN_SECRET) < 32:
    raise ImproperlyConfigured("TOKEN_SECRET must be at least 32 characters")
TOKEN_TTL_SECONDS = env_int("TOKEN_TTL_SECONDS", 7 * 24 * 3600, minimum=60)
IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 24 * 3600, minimum=60)

# --- CDC -------------------------------------------------------------------------------
CDC_BATCH_SIZE = env_int("CDC_BATCH_SIZE", 1000, minimum=1, maximum=10_000)  # the mapping allows up to 10,000
CDC_MAX_RETRIES = env_int("CDC_MAX_RETRIES", 5, minimum=0)
CDC_POLL_INTERVAL_MS = env_int("CDC_POLL_INTERVAL_MS", 200, minimum=10)
# Concurrent batches per shard (the event source mapping's ParallelizationFactor, 1-10 on AWS;
# the local poller runs as many lanes per shard). Records of one item keep their order whatever
# the factor. See docs/SCALING.md for choosing it with KINESIS_SHARDS.
CDC_PARALLELIZATION_FACTOR = env_int("CDC_PARALLELIZATION_FACTOR", 1, minimum=1, maximum=10)

# --- Email -----------------------------------------------------------------------------
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "ops@airticket.example")
# Production sends through SES: EMAIL_BACKEND=django_ses.SESBackend, with the Lambda role's
# credentials (boto3's chain) and this region.
AWS_SES_REGION_NAME = env("AWS_SES_REGION_NAME", AWS_REGION)
# django-ses hands boto3 an endpoint of its own (so AWS_ENDPOINT_URL would be ignored): moto locally.
AWS_SES_REGION_ENDPOINT_URL = AWS_ENDPOINT_URL or f"https://email.{AWS_SES_REGION_NAME}.amazonaws.com"

# --- DRF -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["airticket.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["airticket.parsers.JSONParser"],  # a 400, not a 500, for over-nested JSON
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "airticket.errors.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "airticket.parsers.ContentNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # The client address is REMOTE_ADDR (on Lambda, Zappa's reading of API Gateway's), never a
    # client's own X-Forwarded-For: a throttle keyed on that would be dodged by changing it.
    "NUM_PROXIES": 0,
}
# Command API throttles (`airticket.throttles`), per token identity and per client address; 429
# with Retry-After. Production defaults: a customer books at human speed, a staff/service token
# (the ingestor, ops tools) runs batches, an address may carry many customers (a NAT). Locally
# and in tests they are off unless set (the suite and `ingest demo` send bursts from 127.0.0.1).
_THROTTLE_DEFAULTS = {"customer": "60/minute", "staff": "600/minute", "address": "1200/minute"}
COMMAND_THROTTLE_RATES = {
    scope: env_rate(f"COMMAND_THROTTLE_{scope.upper()}", default if PRODUCTION else "off") for scope, default in _THROTTLE_DEFAULTS.items()
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Air-ticket CQRS API",
    "DESCRIPTION": "Command API (DynamoDB) and staff query API (MySQL read models).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files: pinned, and no CDN
    # script running on the admin's origin (and the docs work offline).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # A PATCH body is validated whole (not as a partial update): one component for both.
    "COMPONENT_SPLIT_PATCH": False,
    # Error responses, request-body strictness and parameter bounds for every operation.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "airticket.schema.document_the_contract"],
}

# Logs and metrics (`airticket.observability`). JSON on every Lambda stage (zappa_settings.json),
# plain text locally unless LOG_FORMAT=json. EMF metric blobs go to stdout where CloudWatch
# Logs reads them: on by default with JSON logs, off for plain text (they are noise there).
LOG_FORMAT = env("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use plain or json")
METRICS_EMF = env_bool("METRICS_EMF", LOG_FORMAT == "json")
METRICS_NAMESPACE = env("METRICS_NAMESPACE", "AirTicket")
if not re.fullmatch(r"[A-Za-z0-9_.\-/#:]{1,255}", METRICS_NAMESPACE) or METRICS_NAMESPACE.startswith("AWS/"):
    raise ImproperlyConfigured(f"METRICS_NAMESPACE={METRICS_NAMESPACE!r} is not a valid CloudWatch namespace")
METRICS_SERVICE = env_name("METRICS_SERVICE", "airticket")
# The stage in each metric's dimensions and each log line: Lambda names the function.
METRICS_STAGE = env_name("METRICS_STAGE", env("AWS_LAMBDA_FUNCTION_NAME", "local"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "airticket.observability.ContextFilter"}},
    "formatters": {
        "plain": {"()": "airticket.observability.PlainFormatter"},
        "json": {"()": "airticket.observability.json_formatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"botocore": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}},
}

# Locally the CDC poller is a process of ours and /healthz checks its heartbeat.
CDC_LOCAL_POLLER = env_bool("CDC_LOCAL_POLLER", bool(AWS_ENDPOINT_URL))
CDC_HEARTBEAT_SECONDS = env_int("CDC_HEARTBEAT_SECONDS", 30, minimum=1)
# Locally the metric counters are also kept in the database, so the operations page shows the
# numbers of every process (web, poller, notifier); on AWS CloudWatch has them.
METRICS_STORE = env_bool("METRICS_STORE", CDC_LOCAL_POLLER)

# Staff "truncate" wipes the write model; only for local demos (runlocal turns it on).
AIRTICKET_ALLOW_TRUNCATE = env_bool("AIRTICKET_ALLOW_TRUNCATE", False)
if PRODUCTION and AIRTICKET_ALLOW_TRUNCATE:
    raise ImproperlyConfigured("AIRTICKET_ALLOW_TRUNCATE must be off in production")


def env_weather_sources(name: str) -> list[tuple[str, str]]:
    """`kind=url` entries separated by whitespace, kind `metar` or `cap`; a METAR URL may hold
    `{airports}`, replaced by the ICAO codes of the airports the schedule flies to."""
    sources = []
    for entry in env(name).split():
        kind, _, url = entry.partition("=")
        if kind not in ("metar", "cap") or not re.match(r"https?://", url) or len(url) > 500:
            raise ImproperlyConfigured(f"{name}: {entry!r} is not metar=<http(s) URL> or cap=<http(s) URL> (at most 500 characters)")
        sources.append((kind, url))
    return sources


# Weather feeds polled by `manage.py poll_weather` (and the query stage's scheduled event).
WEATHER_SOURCES = env_weather_sources("WEATHER_SOURCES")
WEATHER_POLL_TIMEOUT = env_int("WEATHER_POLL_TIMEOUT", 20, minimum=1)
WEATHER_POLL_INTERVAL = env_int("WEATHER_POLL_INTERVAL", 600, minimum=10)
