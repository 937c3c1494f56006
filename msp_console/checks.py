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
from django.core.checks import Error, register
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


@register()
def graph_not_the_simulator(app_configs, **kwargs):
    """Production settings whose Graph or login host is on loopback are talking to the simulator."""
    if not _production() or getattr(settings, "ALLOW_SIMULATOR", False):
        return []
    errors = []
    for name in ("GRAPH_BASE_URL", "GRAPH_AUTHORITY_HOST"):
        value = getattr(settings, name, "")
        if value and _is_loopback(value):
            errors.append(
                Error(
                    f"{name} is {value}, a loopback address (the Graph simulator), while DEBUG is off.",
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
