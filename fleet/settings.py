"""Fleet Platform settings: one module, driven by the environment (django-environ).

Production differs from a laptop only by environment variables; `.env.example` lists every key.
When DATABASE_URL is unset we use the embedded default: the private cluster `bin/pg` runs for this checkout.
"""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

import django_stubs_ext
import environ

from fleet.logging import configure_logging

# ModelAdmin[Vehicle], Paginator[...] and the like: the type arguments mypy checks, subscriptable at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def embedded_pg_port(base_dir: Path = BASE_DIR) -> int:
    """The private cluster's port: FLEET_PG_PORT, else the one bin/pg chose when it created the cluster (recorded in
    .var/pg.port: 54329, or the next free one when another checkout's cluster has it), else 54329."""
    explicit: int | None = env.int("FLEET_PG_PORT", default=None)
    if explicit is not None:
        return explicit
    recorded = base_dir / ".var" / "pg.port"
    text = recorded.read_text().strip() if recorded.is_file() else ""
    return int(text) if text.isdigit() else 54329


EMBEDDED_DATABASE_URL = "postgis://postgres@127.0.0.1:{port}/{db}".format(
    port=embedded_pg_port(), db=env.str("FLEET_PG_DB", default="fleet")
)

DEBUG = env.bool("DEBUG", default=False)
# The default key is for the embedded local set-up only; a deployment sets SECRET_KEY.
SECRET_KEY = env.str("SECRET_KEY", default="insecure-local-only-key-set-SECRET_KEY-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
APP_MODE = env.str("APP_MODE", default="dev")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.gis",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "ninja",
    "pgtrigger",
    "pghistory",
    "pghistory.admin",
    "procrastinate.contrib.django",
    # Layers, bottom first (an app never imports one above it): see docs in README.
    "slo",
    "domain",
    "events",
    "state",
    "geo",
    "ops",
    "fleet",
]
# Benchmarks and test support: a dev-only app, present in a checkout, left out of the image (.dockerignore).
if importlib.util.find_spec("devtools") is not None:
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    "fleet.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin CSS/JS) from STATIC_ROOT, before sessions and the database are touched.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # gzip for the API's JSON answers only (fleet/compression.py says why not the pages); after WhiteNoise, which
    # answers static files itself (precompressed), so it never sees them.
    "fleet.compression.ApiCompressionMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "pghistory.middleware.HistoryMiddleware",
]
# The push path (/push/...) is served by a handler with only these: authenticate, one INSERT, answer.
# No static serving there: WhiteNoise stays out of this list.
PUSH_MIDDLEWARE = ["fleet.middleware.RequestIdMiddleware"]

ROOT_URLCONF = "fleet.urls"
WSGI_APPLICATION = "fleet.wsgi.application"

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

DATABASES = {"default": env.db_url("DATABASE_URL", default=EMBEDDED_DATABASE_URL)}
DATABASES["default"]["ENGINE"] = "django.contrib.gis.db.backends.postgis"
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
# Off by default: a health check is one more round trip on every push. A connection broken by a database
# restart fails one request (503, the sender retries) and is then replaced.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DB_CONN_HEALTH_CHECKS", default=False)
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=3))
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_fleet")}
# Behind pgbouncer in transaction mode (the gateway in compose), server-side cursors must be off.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool("DB_BEHIND_PGBOUNCER", default=False)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
# Time is stored in UTC; shown in DISPLAY_TIME_ZONE (East Africa Time) unless a user chooses otherwise.
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DISPLAY_TIME_ZONE = env.str("DISPLAY_TIME_ZONE", default="Africa/Nairobi")

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / ".var" / "static")
# The gateway serves STATIC_ROOT itself (WhiteNoise): hashed names cached for a year, gzip when asked for.
# With DEBUG off, `{% static %}` needs the manifest that `manage.py collectstatic` writes: bin/bootstrap runs it
# (so `make run` and `make test` have it) and so does the image build.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Debian's GDAL 3.6 is older than GeoDjango 5.2 would like; the features we use work with it.
SILENCED_SYSTEM_CHECKS = ["gis.W001"]

# --- Roles -------------------------------------------------------------------------------------------
GATEWAY_BIND = env.str("GATEWAY_BIND", default="127.0.0.1:8000")
GATEWAY_WORKERS = env.int("GATEWAY_WORKERS", default=2)
GATEWAY_TIMEOUT_S = env.int("GATEWAY_TIMEOUT_S", default=30)
# Jobs at once in one worker process: parsing, and each projector (positions, trips, readings, drivers) — a projector
# drains in one slot and one woken job at most waits in another (state/projectors/runner.py), so fewer slots than
# that could leave parsing waiting behind them.
WORKER_CONCURRENCY = env.int("WORKER_CONCURRENCY", default=6)
# A role is unhealthy when its own heartbeat is older than this (it beats every ROLE_HEARTBEAT_EVERY_S).
ROLE_HEARTBEAT_EVERY_S = env.int("ROLE_HEARTBEAT_EVERY_S", default=5)
ROLE_HEARTBEAT_MAX_AGE_S = env.int("ROLE_HEARTBEAT_MAX_AGE_S", default=30)
# A role that loses the database waits for it with back-off from MIN to MAX seconds (doubling), then starts a new
# worker; jobs that failed because the database went away are retried (same back-off) up to this many times.
ROLE_RECONNECT_MIN_S = env.float("ROLE_RECONNECT_MIN_S", default=0.5)
ROLE_RECONNECT_MAX_S = env.float("ROLE_RECONNECT_MAX_S", default=30.0)
ROLE_JOB_MAX_RETRIES = env.int("ROLE_JOB_MAX_RETRIES", default=20)
MIGRATION_WAIT_TIMEOUT_S = env.int("MIGRATION_WAIT_TIMEOUT_S", default=300)

# --- Push gateway ------------------------------------------------------------------------------------
PUSH_MAX_BODY_BYTES = env.int("PUSH_MAX_BODY_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = PUSH_MAX_BODY_BYTES
PUSH_HMAC_MAX_SKEW_S = env.int("PUSH_HMAC_MAX_SKEW_S", default=300)
# Sources are cached per gateway process; a disabled source or new secret applies within this many seconds.
PUSH_SOURCE_CACHE_S = env.float("PUSH_SOURCE_CACHE_S", default=5.0)
# Only behind a proxy you run (it must overwrite the header): the sender address for CIDR allow-lists.
PUSH_TRUST_X_FORWARDED_FOR = env.bool("PUSH_TRUST_X_FORWARDED_FOR", default=False)
# Benchmarks only: mounts /push/_bare/<source>, the INSERT without authentication (bench_ingest's ceiling).
BENCH_BARE_VIEW = env.bool("BENCH_BARE_VIEW", default=False)
# The URL senders are told to use (printed by `manage.py push_source`).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

# --- Parsing -----------------------------------------------------------------------------------------
PARSE_BATCH_SIZE = env.int("PARSE_BATCH_SIZE", default=500)
# The safety net behind the commit-time wake-up: drain whatever is waiting every this many seconds. 0 turns it
# off (the wake-up tests do, to prove the wake-up alone delivers); never in production.
PARSE_SWEEP_EVERY_S = env.int("PARSE_SWEEP_EVERY_S", default=5)
# Monthly partitions of the log tables are created this far ahead (daily task and `manage.py partitions`).
LOG_PARTITIONS_AHEAD_MONTHS = env.int("LOG_PARTITIONS_AHEAD_MONTHS", default=3)

# --- Jimi Open API (events/jimi/: client, polls, contract check; docs/jimi.md) ------------------------------------
# The endpoint every account calls. Empty: each account's own node (domain_accounts.api_node). A sandbox's URL
# (manage.py jimi_sandbox) makes it stand in for Jimi. Credentials: domain_accounts.credential_ref (env: or file:).
JIMI_API_URL = env.str("JIMI_API_URL", default="")
# Seconds to connect, and to wait for one answer: a poll job runs in the cron role, whose heartbeat must not starve.
JIMI_CONNECT_TIMEOUT_S = env.float("JIMI_CONNECT_TIMEOUT_S", default=5.0)
JIMI_TIMEOUT_S = env.float("JIMI_TIMEOUT_S", default=15.0)
# Tokens are asked for with this lifetime (Jimi allows 60-7200 s) and renewed this many seconds before they expire.
JIMI_TOKEN_EXPIRES_IN_S = env.int("JIMI_TOKEN_EXPIRES_IN_S", default=7200)
JIMI_TOKEN_REFRESH_BEFORE_S = env.int("JIMI_TOKEN_REFRESH_BEFORE_S", default=300)
# Codes -1 (busy) and 1006 (too frequent) are retried this many times, after this many seconds (doubling).
JIMI_RETRY_ATTEMPTS = env.int("JIMI_RETRY_ATTEMPTS", default=1)
JIMI_RETRY_BACKOFF_S = env.float("JIMI_RETRY_BACKOFF_S", default=1.5)
# How often each poll runs, in seconds (0: not scheduled). Reports (trips, parking, mileage), alarms and OBD are
# polled for the closed window of this length; the track backfill fetches the history of gaps.
JIMI_POLL_LOCATIONS_EVERY_S = env.int("JIMI_POLL_LOCATIONS_EVERY_S", default=60)
JIMI_POLL_DEVICES_EVERY_S = env.int("JIMI_POLL_DEVICES_EVERY_S", default=600)
JIMI_POLL_REPORTS_EVERY_S = env.int("JIMI_POLL_REPORTS_EVERY_S", default=600)
JIMI_POLL_BACKFILL_EVERY_S = env.int("JIMI_POLL_BACKFILL_EVERY_S", default=600)
# A poll that has never run for an account (or a device) starts this many seconds back.
JIMI_POLL_LOOKBACK_S = env.int("JIMI_POLL_LOOKBACK_S", default=86400)
# Track backfill: fixes of a device further apart than this are a gap, fetched with jimi.device.track.list once the
# history is this old (pushes of the last minutes may still be on their way).
JIMI_TRACK_GAP_S = env.int("JIMI_TRACK_GAP_S", default=300)
JIMI_TRACK_SETTLE_S = env.int("JIMI_TRACK_SETTLE_S", default=600)
# An account's pushes are silent when none arrived for this long while its polled devices report fixes.
JIMI_PUSH_SILENCE_S = env.int("JIMI_PUSH_SILENCE_S", default=300)
# Jimi's documented limits per call: IMEIs, rows per page, alarms per range, the span of one call (track list: 7
# days; alarm list: a month; OBD: 31 days; reports: we ask for at most a day) and how old history may be (90 days).
JIMI_IMEIS_PER_CALL = env.int("JIMI_IMEIS_PER_CALL", default=100)
JIMI_PAGE_SIZE = env.int("JIMI_PAGE_SIZE", default=100)
JIMI_ALARM_MAX_ROWS = env.int("JIMI_ALARM_MAX_ROWS", default=1000)
JIMI_TRACK_MAX_SPAN_S = env.int("JIMI_TRACK_MAX_SPAN_S", default=7 * 86400)
JIMI_ALARM_MAX_SPAN_S = env.int("JIMI_ALARM_MAX_SPAN_S", default=30 * 86400)
JIMI_OBD_MAX_SPAN_S = env.int("JIMI_OBD_MAX_SPAN_S", default=31 * 86400)
JIMI_REPORT_MAX_SPAN_S = env.int("JIMI_REPORT_MAX_SPAN_S", default=86400)
JIMI_HISTORY_MAX_AGE_S = env.int("JIMI_HISTORY_MAX_AGE_S", default=90 * 86400)
# The daily contract check (and manage.py contract_check) calls every method we depend on as this account (by name)
# and validates the answers against pinned models; no such account: no check.
JIMI_CONTRACT_ACCOUNT = env.str("JIMI_CONTRACT_ACCOUNT", default="Jimi sandbox")

# --- SLOs and thresholds (rows of slo_targets) --------------------------------------------------------
# A changed row applies within this many seconds in every process.
SLO_TARGET_CACHE_S = env.float("SLO_TARGET_CACHE_S", default=5.0)
# The window of an SLO target that has none, and the share of a window's minutes an objective may breach.
SLO_DEFAULT_WINDOW = timedelta(seconds=env.int("SLO_DEFAULT_WINDOW_S", default=300))
SLO_ERROR_BUDGET_FRACTION = env.float("SLO_ERROR_BUDGET_FRACTION", default=0.05)
# Business hours (DISPLAY_TIME_ZONE) for targets flagged business-hours-only: [start, end) hours, weekdays 0=Mon.
SLO_BUSINESS_HOURS = tuple(env.list("SLO_BUSINESS_HOURS", cast=int, default=[7, 19]))
SLO_BUSINESS_DAYS = tuple(env.list("SLO_BUSINESS_DAYS", cast=int, default=[0, 1, 2, 3, 4, 5]))
# Breach alerts: transports, and where they send.
SLO_ALERT_TRANSPORTS = env.list(
    "SLO_ALERT_TRANSPORTS", default=["slo.alerts.EmailTransport", "slo.alerts.WebhookTransport"]
)
SLO_ALERT_EMAILS = env.list("SLO_ALERT_EMAILS", default=[])
SLO_ALERT_WEBHOOK_URL = env.str("SLO_ALERT_WEBHOOK_URL", default="")
SLO_ALERT_WEBHOOK_SECRET = env.str("SLO_ALERT_WEBHOOK_SECRET", default="")
SLO_ALERT_WEBHOOK_TIMEOUT_S = env.float("SLO_ALERT_WEBHOOK_TIMEOUT_S", default=5.0)
# A notification that failed is retried every minute for this long.
SLO_ALERT_RETRY_FOR = timedelta(hours=env.int("SLO_ALERT_RETRY_HOURS", default=24))
# Outgoing mail, e.g. smtp+tls://user:password@mail.example.com:587 (default: printed to stdout).
vars().update({k: v for k, v in env.email_url("EMAIL_URL", default="consolemail://").items() if v is not None})
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="fleet-platform@localhost")
# Who gets the weekly report (Monday 06:00 EAT); empty: no weekly mail.
REPORT_EMAILS = env.list("REPORT_EMAILS", default=[])

# --- Views ------------------------------------------------------------------------------------------
# The live view shows a vehicle with several devices once: the freshest fix wins, ties go to the device model
# listed first here (wired trackers before OBD dongles before tags), then the lowest IMEI.
DEVICE_CLASS_PRIORITY = env.list(
    "DEVICE_CLASS_PRIORITY", default=["VL802", "VL103", "GT06N", "JM-VL01", "JC450PRO", "JC400", "VL502", "LL301"]
)

# --- Pages (fleet/pages.py: /live/, /history/, /dispatch/, /routes/, /reports/) --------------------------
# Seconds between two refreshes of the live page (paused while its browser tab is hidden).
LIVE_POLL_S = env.int("LIVE_POLL_S", default=15)
# A live view cursor (`since=`) older than this gets the whole view instead of what changed (docs/architecture.md,
# "The live view on the wire").
LIVE_CURSOR_MAX_AGE_S = env.int("LIVE_CURSOR_MAX_AGE_S", default=600)
# A MapLibre style document's URL for the pages' base map. Empty: the built-in style, OpenStreetMap's standard
# raster tiles with their attribution (fine for a few users; a fleet's daily use needs a tile provider of its own).
MAP_STYLE_URL = env.str("MAP_STYLE_URL", default="")
# true: never ask a tile server; the pages draw a plain background, plus our own roads once /tiles/roads/ exists.
# The pages also fall back to that when the style or its tiles cannot be loaded.
MAP_OFFLINE = env.bool("MAP_OFFLINE", default=False)
# The pages' session login (throttled like the admin's); the admin keeps its own.
LOGIN_URL = "fleet-login"
LOGIN_REDIRECT_URL = "fleet-live"
LOGOUT_REDIRECT_URL = "fleet-login"

# --- Jobs ---------------------------------------------------------------------------------------------
# A parse or projection job hands the rest of its backlog to a successor job after this many seconds, so a worker
# asked to stop (deploy, Ctrl-C) waits at most this long for its running jobs.
JOB_TIME_BUDGET_S = env.float("JOB_TIME_BUDGET_S", default=10.0)

# --- procrastinate -----------------------------------------------------------------------------------
PROCRASTINATE_ON_APP_READY = "fleet.jobs.on_app_ready"
# Queues: the worker role drains `parse` and `project` — what a dispatcher waits for; the cron role runs the periodic
# tasks and the background derivations that may trail the fleet by minutes (`geo`: map matching), at a lower CPU
# priority (CRON_NICE, added to the process's niceness) so that on a busy machine they give way to ingest, parsing
# and projection rather than delay them.
WORKER_QUEUES = ["parse", "project", "worker"]
CRON_QUEUES = ["cron", "geo"]
CRON_CONCURRENCY = env.int("CRON_CONCURRENCY", default=2)
CRON_NICE = env.int("CRON_NICE", default=10)

# --- Demo superuser (embedded default only) ------------------------------------------------------------
DEMO_SUPERUSER = env.str("DEMO_SUPERUSER", default="admin")
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="fleet-demo-admin")

# --- Logging: structlog JSON to stdout, with the request id --------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = configure_logging(level=LOG_LEVEL, fmt=LOG_FORMAT)

# --- API and auth ---------------------------------------------------------------------------------------------
# Scopes (read:fleet, write:ops, admin:fleet) come from Django groups of the same names; see fleet/auth.py.
JWT_ACCESS_LIFETIME_S = env.int("JWT_ACCESS_LIFETIME_S", default=300)
JWT_REFRESH_LIFETIME_S = env.int("JWT_REFRESH_LIFETIME_S", default=86400)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=JWT_ACCESS_LIFETIME_S),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=JWT_REFRESH_LIFETIME_S),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "SIGNING_KEY": SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "TOKEN_OBTAIN_SERIALIZER": "fleet.auth.TokenObtainSerializer",
    "TOKEN_REFRESH_SERIALIZER": "fleet.auth.TokenRefreshSerializer",
    "TOKEN_BLACKLIST_SERIALIZER": "fleet.auth.TokenRevokeSerializer",
}
# DRF serves the token endpoints only (fleet/auth.py); anything else mounted on it would be denied.
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser", "rest_framework.parsers.FormParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
}
# Login throttling (token endpoint and admin login): this many failures per username + IP within the window
# answer 429 with Retry-After until the window ends.
LOGIN_FAILURES_MAX = env.int("LOGIN_FAILURES_MAX", default=5)
LOGIN_FAILURES_WINDOW_S = env.int("LOGIN_FAILURES_WINDOW_S", default=900)
# Rate limits; where each is enforced: fleet/ratelimit.py (the push limit: events/ratelimit.py). 0 turns one off.
RATE_LIMIT_DASHBOARDS_PER_MIN = env.int("RATE_LIMIT_DASHBOARDS_PER_MIN", default=60)
RATE_LIMIT_ROUTES_PER_MIN = env.int("RATE_LIMIT_ROUTES_PER_MIN", default=10)
RATE_LIMIT_PUSH_PER_MIN = env.int("RATE_LIMIT_PUSH_PER_MIN", default=1000)
# Proxies in front of the gateway that append to X-Forwarded-For (Coolify's: 1); 0 uses the socket address.
API_TRUSTED_PROXIES = env.int("API_TRUSTED_PROXIES", default=0)
# gzip of the API's JSON answers (fleet/compression.py): the level (1-9; 5 makes a 10,000-vehicle live view about
# as small as 6 for a fifth less time) and the size below which an answer goes as it is.
API_GZIP_LEVEL = env.int("API_GZIP_LEVEL", default=5)
API_GZIP_MIN_BYTES = env.int("API_GZIP_MIN_BYTES", default=1024)

# --- Projectors ---------------------------------------------------------------------------------------
# Work-list rows a projector folds per batch (one transaction).
PROJECT_BATCH_SIZE = env.int("PROJECT_BATCH_SIZE", default=1000)
# The safety net behind the commit-time wake-up, and the retry clock of failed events. 0 turns it off (tests).
PROJECT_SWEEP_EVERY_S = env.int("PROJECT_SWEEP_EVERY_S", default=5)
# A failed batch's events are retried after this many seconds, doubling per failure (up to 256x).
PROJECT_RETRY_BACKOFF_S = env.float("PROJECT_RETRY_BACKOFF_S", default=2.0)
# An event that fails alone this many times is parked (state_projection_pending.failed_at): listed in the admin,
# re-queued by a clerk after a fix; the rest of the fleet's events never wait for it.
PROJECT_MAX_ATTEMPTS = env.int("PROJECT_MAX_ATTEMPTS", default=5)

# --- Roads (geo: manage.py load_osm, docs/architecture.md "Roads") ----------------------------------------------
# An OSM extract (.osm.pbf, .osm or .osm.gz) the cron role loads into the road graph on the 1st of every month;
# empty: no periodic load. The image holds the Monaco extract at /app/geo/data/monaco.osm.pbf.
OSM_EXTRACT_PATH = env.str("OSM_EXTRACT_PATH", default="")
# km/h of a road without a usable maxspeed, by highway class: its segments' costs (seconds) are computed at this speed.
# Defaults: OSRM's car profile (road, a class OSRM lacks: as residential). Set a few: motorway=100,service=10.
ROAD_CLASS_SPEEDS_KMH: dict[str, float] = {
    "motorway": 90.0, "motorway_link": 45.0, "trunk": 85.0, "trunk_link": 40.0, "primary": 65.0, "primary_link": 30.0,
    "secondary": 55.0, "secondary_link": 25.0, "tertiary": 40.0, "tertiary_link": 20.0, "unclassified": 25.0,
    "residential": 25.0, "living_street": 10.0, "service": 15.0, "road": 25.0,
    **{k: float(v) for k, v in env.dict("ROAD_CLASS_SPEEDS_KMH", default={}).items()},
}  # fmt: skip
# km/h of a maxspeed zone value: the whole value in lower case ("fr:rural") first, then the part after the country
# ("rural"). Defaults: France's (Monaco's neighbour; urban 50 and motorway 130 are common to most of Europe).
# Set a country's own: de:rural=100,gb:nsl_single=96.6.
ROAD_ZONE_SPEEDS_KMH: dict[str, float] = {
    "urban": 50.0, "rural": 80.0, "trunk": 110.0, "motorway": 130.0, "living_street": 20.0, "walk": 6.0,
    **{k.lower(): float(v) for k, v in env.dict("ROAD_ZONE_SPEEDS_KMH", default={}).items()},
}  # fmt: skip
# The swap of a freshly loaded graph waits at most this many seconds for the readers' locks (so new readers never
# queue longer behind it), and is tried this many times before the load fails (the graph in use stays).
ROAD_GRAPH_SWAP_LOCK_TIMEOUT_S = env.float("ROAD_GRAPH_SWAP_LOCK_TIMEOUT_S", default=2.0)
ROAD_GRAPH_SWAP_ATTEMPTS = env.int("ROAD_GRAPH_SWAP_ATTEMPTS", default=5)

# --- Routing (POST /api/routes; geo/routing.py) ------------------------------------------------------------------
# dijkstra (pgr_dijkstra) or astar (pgr_aStar with an admissible heuristic): the same routes; on the Monaco graph
# Dijkstra is the faster (docs/benchmarks.md, "bench_route").
ROUTE_ALGORITHM = env.str("ROUTE_ALGORITHM", default="dijkstra")
# The search covers the two ends' bounding box widened by this many metres, or by this share of their distance when
# that is more; a route not found inside it is searched for on the whole graph.
ROUTE_SEARCH_MARGIN_M = env.float("ROUTE_SEARCH_MARGIN_M", default=2000.0)
ROUTE_SEARCH_MARGIN_FACTOR = env.float("ROUTE_SEARCH_MARGIN_FACTOR", default=0.5)
# Road tiles (/tiles/roads/{z}/{x}/{y}.pbf): tiles each gateway process keeps (per graph load), and the seconds a
# browser may keep one (Cache-Control: private).
ROAD_TILE_CACHE_TILES = env.int("ROAD_TILE_CACHE_TILES", default=4096)
ROAD_TILE_MAX_AGE_S = env.int("ROAD_TILE_MAX_AGE_S", default=3600)

# --- Map matching (geo/matching/: fixes → segment traversals → speed bands) ----------------------------------------
# A device's fixes are matched in windows of this many seconds, each read with this margin on either side; a fix
# has at most this many candidate segments. The matcher's thresholds are rows of slo_targets (mapmatch_*).
MAPMATCH_WINDOW_S = env.int("MAPMATCH_WINDOW_S", default=600)
MAPMATCH_WINDOW_MARGIN_S = env.int("MAPMATCH_WINDOW_MARGIN_S", default=120)
MAPMATCH_MAX_CANDIDATES = env.int("MAPMATCH_MAX_CANDIDATES", default=8)
# A fix waits on the work-list until every window it belongs to has closed (its widened range is over, plus this
# grace for fixes still on their way), so a window is matched once when it closes instead of once per push while it
# fills: speed bands trail the fleet by up to one window and two margins. A late fix (a re-transmitted burst, a
# reparse) whose windows closed long ago is matched at the next sweep. False: every fix is matched as it comes.
MAPMATCH_SETTLE = env.bool("MAPMATCH_SETTLE", default=True)
MAPMATCH_SETTLE_GRACE_S = env.int("MAPMATCH_SETTLE_GRACE_S", default=30)

# --- Geocoding (geo/geocoding.py: addresses of trip ends, parkings and live positions, in the cron role) -----------
# Nominatim's base URL; empty (the default): never asked. The public server (https://nominatim.openstreetmap.org)
# allows one request per second with a User-Agent that identifies the application and a contact: set both.
GEOCODE_NOMINATIM_URL = env.str("GEOCODE_NOMINATIM_URL", default="")
GEOCODE_USER_AGENT = env.str("GEOCODE_USER_AGENT", default="fleet-platform (reverse geocoding of fleet positions)")
GEOCODE_NOMINATIM_INTERVAL_S = env.float("GEOCODE_NOMINATIM_INTERVAL_S", default=1.0)
# Mapbox: asked after Nominatim (or alone) when a token is set.
GEOCODE_MAPBOX_URL = env.str("GEOCODE_MAPBOX_URL", default="https://api.mapbox.com")
GEOCODE_MAPBOX_TOKEN = env.str("GEOCODE_MAPBOX_TOKEN", default="")
GEOCODE_LANGUAGE = env.str("GEOCODE_LANGUAGE", default="en")
GEOCODE_TIMEOUT_S = env.float("GEOCODE_TIMEOUT_S", default=5.0)
# Addresses are cached by the coordinate rounded to this many decimals of a degree (4: about 11 m; at most 6).
GEOCODE_ROUND_DECIMALS = min(6, env.int("GEOCODE_ROUND_DECIMALS", default=4))
# A run every this many seconds (0: none) takes at most this many coordinates, of the last this many days.
GEOCODE_EVERY_S = env.int("GEOCODE_EVERY_S", default=15)
GEOCODE_BATCH = env.int("GEOCODE_BATCH", default=500)
GEOCODE_LOOKBACK_DAYS = env.int("GEOCODE_LOOKBACK_DAYS", default=7)
