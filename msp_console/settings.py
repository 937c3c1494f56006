"""The console's one settings module: everything comes from the environment, with safe local defaults.

Local defaults: SQLite next to manage.py, Redis on 127.0.0.1:6379, the real Microsoft endpoints.
The README's settings table lists every variable.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url

from msp_console.env import env_bool, env_choice, env_float, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", "True")
SECRET_KEY = env_secret("SECRET_KEY", "insecure-local-development-key" if DEBUG else "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# No trailing slash: paths are appended to it.
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    # Second factor for local accounts (TOTP authenticator apps, single-use backup codes).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    # Failed sign-ins counted per user and per IP address; lockouts (staff/lockout.py).
    "axes",
    "msp_console",
    "tenants",
    "migrations_engine",
    # After the apps whose permissions its role groups hold (made after each migrate, see staff/apps.py).
    "staff",
]

MIDDLEWARE = [
    "msp_console.log_context.RequestIdMiddleware",
    # /healthz answers here, before the HTTPS redirect and the allowed-hosts check.
    "msp_console.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Times in the staff member's time zone (their browser's, through a cookie).
    "msp_console.time_zone.StaffTimeZoneMiddleware",
    # request.user.is_verified(): the session passed a second factor (django-otp).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Signed out after STAFF_IDLE_MINUTES without a click; a second factor before any console page.
    "staff.sessions.IdleTimeoutMiddleware",
    "staff.second_factor.SecondFactorMiddleware",
    # Last, as django-axes requires: answers a locked-out sign-in with the lockout page.
    "axes.middleware.AxesMiddleware",
]

if env_bool("SERVER_TIMING"):
    # First: its time covers every other middleware (msp_console/server_timing.py).
    MIDDLEWARE.insert(0, "msp_console.server_timing.ServerTimingMiddleware")

if not DEBUG:
    # Static files under gunicorn (collected at image build); runserver serves them itself in DEBUG.
    MIDDLEWARE.insert(2, "whitenoise.middleware.WhiteNoiseMiddleware")
    # Hashed, compressed copies made by collectstatic: browsers may cache them for good.
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

ROOT_URLCONF = "msp_console.urls"
WSGI_APPLICATION = "msp_console.wsgi.application"

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

DATABASES = {
    "default": dj_database_url.parse(
        env_secret("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web, workers and the scheduler share the file: wait for the lock instead of failing, take it at
    # BEGIN (a deferred transaction that later writes gets "database is locked" without waiting), and let
    # readers go on while one process writes (WAL).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=30, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL;"
    )
    # Tests run real worker processes, which must see the test database: keep it in a file.
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_SQLITE_PATH", str(BASE_DIR / ".test-db.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # A season, month, "password", "welcome" or the product's name with digits, the username inside it.
    {"NAME": "staff.passwords.GuessablePatternValidator"},
]
# django-axes first: a locked-out user is refused before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LANGUAGE_CODE = "en-gb"
# ISO dates and 24-hour times on every page (msp_console/formats/).
FORMAT_MODULE_PATH = ["msp_console.formats"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Redis and RQ -------------------------------------------------------------------------------
REDIS_URL = env_secret("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600},
}

# --- Microsoft Graph ----------------------------------------------------------------------------
# Both hosts are settings so the simulator (graph_sim) can stand in for Microsoft.
GRAPH_AUTHORITY_HOST = env_str("GRAPH_AUTHORITY_HOST", "https://login.microsoftonline.com").rstrip("/")
GRAPH_BASE_URL = env_str("GRAPH_BASE_URL", "https://graph.microsoft.com").rstrip("/")
# A CA bundle to trust instead of the system store (the simulator's throw-away CA). Empty = system store.
GRAPH_CA_BUNDLE = env_str("GRAPH_CA_BUNDLE")
# Hosts the bearer token may be sent to. Empty = the host of GRAPH_BASE_URL only.
GRAPH_ALLOWED_HOSTS = env_list("GRAPH_ALLOWED_HOSTS")
GRAPH_CLIENT_ID = env_str("GRAPH_CLIENT_ID")
GRAPH_CLIENT_SECRET = env_secret("GRAPH_CLIENT_SECRET")
# Certificate credentials (preferred over a secret): a PEM private key file plus either the
# certificate's SHA-1 thumbprint or the PEM certificate file (the thumbprint is then computed).
GRAPH_CLIENT_PRIVATE_KEY_FILE = env_str("GRAPH_CLIENT_PRIVATE_KEY_FILE")
GRAPH_CLIENT_CERTIFICATE_FILE = env_str("GRAPH_CLIENT_CERTIFICATE_FILE")
GRAPH_CLIENT_CERTIFICATE_THUMBPRINT = env_str("GRAPH_CLIENT_CERTIFICATE_THUMBPRINT")
# Seconds: connect and read timeouts for every Graph and login call.
GRAPH_CONNECT_TIMEOUT = env_float("GRAPH_CONNECT_TIMEOUT", 10.0)
GRAPH_READ_TIMEOUT = env_float("GRAPH_READ_TIMEOUT", 60.0)
# Pacing, kept just under Graph's documented limits and shared by every worker through Redis
# ("redis"; "local" paces each process on its own): user writes per tenant (Graph: 20/s), CA requests
# per tenant (1/s), writes per app across tenants (70,000 per 5 min = 233/s), registration reports per
# tenant (5 per 10 s). Resource units are paced to 85 % of Graph's per-size budgets.
GRAPH_PACING = env_choice("GRAPH_PACING", ("redis", "local"))
GRAPH_WRITES_PER_SECOND = env_float("GRAPH_WRITES_PER_SECOND", 19.0)
GRAPH_CA_REQUESTS_PER_SECOND = env_float("GRAPH_CA_REQUESTS_PER_SECOND", 0.9)
GRAPH_APP_WRITES_PER_SECOND = env_float("GRAPH_APP_WRITES_PER_SECOND", 225.0)
GRAPH_REPORT_REQUESTS_PER_SECOND = env_float("GRAPH_REPORT_REQUESTS_PER_SECOND", 0.4)
# Multiplies every pacing rate, for a Graph simulator that runs time faster (the benchmark). Keep 1.
GRAPH_PACING_TIME_SCALE = env_float("GRAPH_PACING_TIME_SCALE", 1.0)
# How often a throttled or failed read is tried before the step gives up (retryable failure).
GRAPH_MAX_ATTEMPTS = env_int("GRAPH_MAX_ATTEMPTS", 6)
# Pre-flight (migrations_engine/runs/preflight.py): a census older than this many hours leaves a tenant
# out of a new run until a census reads it again.
PREFLIGHT_CENSUS_MAX_AGE_HOURS = env_int("PREFLIGHT_CENSUS_MAX_AGE_HOURS", 72)
# Second-staff approval: a full run waits (status "awaiting_approval", nothing enqueued) until a staff
# member other than the one who started it approves it.
RUN_APPROVAL_REQUIRED = env_bool("RUN_APPROVAL_REQUIRED", "False")
# Where the admin-consent callback lands (the customer's admin is sent back here).
CONSENT_REDIRECT_URI = env_str("CONSENT_REDIRECT_URI", f"{SITE_URL}/consent/callback/")
# How long an admin-consent link (its single-use state) stays valid, in seconds.
CONSENT_STATE_TTL_SECONDS = env_int("CONSENT_STATE_TTL_SECONDS", 3600)

# The readiness gate before cut-over: a full run stops when more than this share (percent) of its
# in-scope, enabled users are not MFA-registered, unless started with an override reason (audited).
READINESS_MAX_UNREGISTERED_PCT = env_float("READINESS_MAX_UNREGISTERED_PCT", 50.0)

# --- Scheduled work (rq-scheduler) ----------------------------------------------------------------
# How often the scheduler's safety-net tick looks at waves (each wave's own job fires on time; the tick
# catches a job Redis lost). Seconds.
WAVE_TICK_SECONDS = env_int("WAVE_TICK_SECONDS", 60)
# The drift watch re-reads every migrated tenant this often (hours; 24 = daily).
DRIFT_WATCH_INTERVAL_HOURS = env_float("DRIFT_WATCH_INTERVAL_HOURS", 24.0)
# Who is e-mailed the drift watch's new findings (comma-separated). Empty: nobody (findings are still
# stored and shown). Mail goes through Django's e-mail backend, the console (stdout) by default.
DRIFT_EMAIL_TO = env_list("DRIFT_EMAIL_TO")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "msp-console@localhost")
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", "False")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
# Where scheduled audit exports (data file + manifest) are written.
AUDIT_EXPORT_DIR = Path(env_str("AUDIT_EXPORT_DIR", str(BASE_DIR / "audit-exports")))

# --- Staff sign-in ----------------------------------------------------------------------------------
# A second factor (an authenticator app's code) for every local account; superusers always need one,
# whatever this says. Staff who sign in through Entra ID prove MFA there instead.
# django-otp's device pages never show an authenticator's key or QR code, nor backup codes, to anyone.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
STAFF_SECOND_FACTOR_REQUIRED = env_bool("STAFF_SECOND_FACTOR_REQUIRED", str(not DEBUG))
# Signed out after this many minutes without a click (the run page's polling does not count).
STAFF_IDLE_MINUTES = env_int("STAFF_IDLE_MINUTES", 30)
# Approve, full run, rollback and credential changes ask for the password and code again when the last
# sign-in or confirmation is older than this (minutes).
STAFF_REAUTH_MINUTES = env_int("STAFF_REAUTH_MINUTES", 10)
# The longest a session lives whatever the activity (seconds; 12 h); it also ends when the browser closes.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Lockout (django-axes): this many failed sign-ins in a row for one username, or from one IP address,
# lock that username or address out for STAFF_LOCKOUT_MINUTES. Unlocking early is an audited admin action.
AXES_ENABLED = env_bool("AXES_ENABLED", "True")
AXES_FAILURE_LIMIT = env_int("STAFF_LOCKOUT_FAILURES", 5)
STAFF_LOCKOUT_MINUTES = env_int("STAFF_LOCKOUT_MINUTES", 15)
AXES_COOLOFF_TIME = timedelta(minutes=STAFF_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "staff.lockout.lockout_response"
# The client's address: REMOTE_ADDR, or behind the TLS proxy the address that proxy saw (staff/lockout.py).
AXES_CLIENT_IP_CALLABLE = "staff.lockout.client_ip"
AXES_VERBOSE = False
# Its admin would go on Django's default site, which the console does not serve (staff/lockout_admin.py).
AXES_ENABLE_ADMIN = False
# Staff sign-in through the MSP's own Entra ID (staff/entra/, docs/operations.md): on when a tenant id and
# a client id are set. A single-tenant app registration in the MSP's tenant, web platform, reply URL
# https://<console>/account/entra/callback/, a client secret, and the optional ID token claim auth_time.
STAFF_ENTRA_TENANT_ID = env_str("STAFF_ENTRA_TENANT_ID").lower()
STAFF_ENTRA_CLIENT_ID = env_str("STAFF_ENTRA_CLIENT_ID").lower()
STAFF_ENTRA_CLIENT_SECRET = env_secret("STAFF_ENTRA_CLIENT_SECRET")
# The login host and its CA bundle: Microsoft's (or the simulator's, as for Graph).
STAFF_ENTRA_AUTHORITY_HOST = (env_str("STAFF_ENTRA_AUTHORITY_HOST") or GRAPH_AUTHORITY_HOST).rstrip("/")
STAFF_ENTRA_CA_BUNDLE = env_str("STAFF_ENTRA_CA_BUNDLE") or GRAPH_CA_BUNDLE
# The reply URL sent to Entra ID; empty = this console's own /account/entra/callback/ as the browser sees it.
STAFF_ENTRA_REDIRECT_URI = env_str("STAFF_ENTRA_REDIRECT_URI")
# Refuse an Entra ID sign-in that did not prove MFA. v2.0 ID tokens do not say how someone signed in, so
# the console asks for the Conditional Access authentication context below, which a policy in the MSP's
# tenant must protect with MFA (or a phishing-resistant strength, for passkeys); the token's `acrs` then
# names it. An `amr` containing "mfa" counts too.
STAFF_ENTRA_REQUIRE_MFA = env_bool("STAFF_ENTRA_REQUIRE_MFA", "True")
STAFF_ENTRA_AUTH_CONTEXT = env_str("STAFF_ENTRA_AUTH_CONTEXT", "c1").lower()

# --- Production hardening ------------------------------------------------------------------------
# With DEBUG off every default below is the safe one (`manage.py check --deploy` is clean); each can
# still be set from the environment, e.g. SECURE_SSL_REDIRECT=False when a proxy already redirects.
# PRODUCTION is DEBUG as configured: the system checks (msp_console/checks.py) read it, because Django's
# test runner forces DEBUG off at run time and a test database is not a production deployment.
PRODUCTION = not DEBUG
_PRODUCTION = str(PRODUCTION)
# Behind a TLS-terminating proxy (the docker stack's), trust its X-Forwarded-Proto header. Only set it
# when the proxy always overwrites that header: otherwise a client could claim https itself.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", "False")
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", _PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Production settings whose Graph or login host is not Microsoft's (the simulator) are refused by a
# system check (msp_console.E001) unless this says it is on purpose (a staging stack, a demo).
ALLOW_SIMULATOR = env_bool("ALLOW_SIMULATOR", "False")

# `json`: one JSON object per line on stdout with the request or run id (the default in production);
# `plain`: readable lines (the default with DEBUG on).
LOG_FORMAT = env_choice("LOG_FORMAT", ("plain", "json") if DEBUG else ("json", "plain"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "msp_console.log_context.JsonLinesFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # httpx logs every request URL at INFO; keep it to warnings.
        "httpx": {"level": "WARNING"},
        "msal": {"level": "WARNING"},
        # django-axes logs every sign-in at INFO; failures and lockouts are audit rows already.
        "axes": {"level": "WARNING"},
        # rq-scheduler adds a plain handler of its own to a logger that has none: give it ours.
        "rq_scheduler.scheduler": {"handlers": ["console"], "propagate": False},
    },
}
