"""System checks that refuse dangerous production settings (DEBUG off).

They run before every management command that checks (runserver, migrate, rqworker, check) and in
`manage.py check --deploy`: a production console must not talk to the Graph simulator by accident, must
sign sessions with a real secret key, and must reach a Redis that asks for a password (RQ job payloads
and the pacing state live there).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

# Django's own deploy check asks for at least this much (security.W009).
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE = 5
_KNOWN_INSECURE_KEYS = {"insecure-local-development-key", "change-me-to-a-long-random-string", "build-only"}


def _production() -> bool:
    """DEBUG off as configured (settings.PRODUCTION), not as the test runner forces it at run time."""
    return getattr(settings, "PRODUCTION", not settings.DEBUG)


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Microsoft's global cloud: the only one the console supports (its token scope is the global Graph's).
MICROSOFT_HOSTS = {
    "GRAPH_BASE_URL": "graph.microsoft.com",
    "GRAPH_AUTHORITY_HOST": "login.microsoftonline.com",
    "STAFF_ENTRA_AUTHORITY_HOST": "login.microsoftonline.com",
}


@register()
def graph_not_the_simulator(app_configs, **kwargs):
    """Production settings whose Graph or login host is not Microsoft's are talking to the simulator (on
    loopback, or a `graph-sim` service) or to something else that must not see the app's credential."""
    if not _production() or getattr(settings, "ALLOW_SIMULATOR", False):
        return []
    errors = []
    for name, expected in MICROSOFT_HOSTS.items():
        value = getattr(settings, name, "")
        if (urlsplit(value).hostname or "").lower() == expected:
            continue
        what = "a loopback address (the Graph simulator)" if _is_loopback(value) else f"not {expected}"
        errors.append(
            Error(
                f"{name} is {value}, {what}, while DEBUG is off.",
                hint="Point it at Microsoft (the defaults), or set ALLOW_SIMULATOR=1 if this "
                "production-like stack is meant to use the simulator.",
                id="msp_console.E001",
            )
        )
    return errors


def _secret_key_problem() -> str:
    try:
        key = settings.SECRET_KEY
    except ImproperlyConfigured:
        return "is empty"
    if not key:
        return "is empty"
    if key in _KNOWN_INSECURE_KEYS or key.startswith("django-insecure"):
        return "is a well-known placeholder"
    if len(key) < SECRET_KEY_MIN_LENGTH or len(set(key)) < SECRET_KEY_MIN_UNIQUE:
        return f"is shorter than {SECRET_KEY_MIN_LENGTH} characters or too repetitive"
    return ""


@register()
def secret_key_is_secret(app_configs, **kwargs):
    """DEBUG off needs a long, random SECRET_KEY (sessions, CSRF and consent links depend on it)."""
    if not _production():
        return []
    problem = _secret_key_problem()
    if not problem:
        return []
    return [
        Error(
            f"SECRET_KEY {problem} while DEBUG is off.",
            hint="Set SECRET_KEY (or SECRET_KEY_FILE) to at least 50 random characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(64))'.",
            id="msp_console.E002",
        )
    ]


@register()
def redis_requires_a_password(app_configs, **kwargs):
    """DEBUG off needs a Redis that authenticates: job payloads and run state live there."""
    if not _production():
        return []
    url = getattr(settings, "REDIS_URL", "")
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        return []
    return [
        Error(
            "REDIS_URL names no password while DEBUG is off: Redis must require authentication.",
            hint="Use redis://:PASSWORD@host:6379/0 (or rediss://) in REDIS_URL or REDIS_URL_FILE, "
            "and set requirepass on the server.",
            id="msp_console.E003",
        )
    ]


# Days before the app certificate's expiry from which `check --deploy` warns.
CERTIFICATE_WARN_DAYS = 30


@register(deploy=True)
def graph_credentials_usable(app_configs, **kwargs):
    """`check --deploy`: the app's Graph credential can be used, and is a certificate that is not about to
    expire (a client secret works, but certificates are preferred: nothing reusable travels)."""
    if not _production():
        return []
    from datetime import UTC, datetime, timedelta

    from migrations_engine.graph.config import GraphConfig, certificate_expiry
    from migrations_engine.graph.errors import GraphConfigError

    try:
        config = GraphConfig.from_settings()
    except GraphConfigError as exc:
        return [
            Error(
                f"The Graph app credential cannot be used: {exc}",
                hint="See docs/operations.md, 'Certificate credentials'.",
                id="msp_console.E004",
            )
        ]
    if not config.private_key_pem:
        return [
            Warning(
                "The console signs in to Graph with a client secret.",
                hint="Certificate credentials are preferred: set GRAPH_CLIENT_PRIVATE_KEY_FILE and "
                "GRAPH_CLIENT_CERTIFICATE_FILE (docs/operations.md).",
                id="msp_console.W001",
            )
        ]
    if config.public_certificate_pem:
        expires = certificate_expiry(config.public_certificate_pem)
        if expires - datetime.now(UTC) < timedelta(days=CERTIFICATE_WARN_DAYS):
            return [
                Warning(
                    f"The Graph app certificate expires on {expires:%Y-%m-%d}.",
                    hint="Rotate it now: docs/operations.md, 'Rotating credentials'.",
                    id="msp_console.W002",
                )
            ]
    return []
