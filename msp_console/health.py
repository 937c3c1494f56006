"""`GET /healthz`: 200 when the database and Redis answer, 503 naming the part that does not.

For the container's health check and a load balancer. It answers before the HTTPS redirect and the
allowed-hosts check (the probe comes over plain HTTP from inside the container, by address), needs no
login and says nothing but "ok" or "unreachable" per part.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpResponseNotAllowed, JsonResponse

log = logging.getLogger(__name__)

PATH = "/healthz"


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def health() -> tuple[int, dict[str, str]]:
    parts: dict[str, str] = {}
    for name, probe in (("database", _database), ("redis", _redis)):
        try:
            probe()
            parts[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means the part is not usable
            # The class only: a driver's message may carry a host name or a URL.
            log.warning("health check: %s unreachable (%s)", name, type(exc).__name__)
            parts[name] = "unreachable"
    healthy = all(v == "ok" for v in parts.values())
    return (200 if healthy else 503), {"status": "ok" if healthy else "unhealthy", **parts}


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path != PATH:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        status, body = health()
        response = JsonResponse(body, status=status)
        response["Cache-Control"] = "no-store"
        return response
