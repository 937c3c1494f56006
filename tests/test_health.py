"""`/healthz`: the container's health check. 200 when the database and Redis answer, 503 naming the part
that does not; answered before the HTTPS redirect and the allowed-hosts check; nothing else exposed."""

from __future__ import annotations

import pytest
from django.test import Client

from scripts.processes import free_port

pytestmark = pytest.mark.django_db

PRODUCTION_LIKE = {
    "SECURE_SSL_REDIRECT": True,
    "ALLOWED_HOSTS": ["console.example.com"],
}


def test_it_answers_ok_by_address_over_plain_http(settings, redis_url):
    settings.REDIS_URL = redis_url
    for name, value in PRODUCTION_LIKE.items():
        setattr(settings, name, value)
    client = Client(HTTP_HOST="127.0.0.1:8000")
    response = client.get("/healthz", HTTP_X_REQUEST_ID="probe-12345678")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert response["X-Request-ID"] == "probe-12345678"
    # Every other path still gets the production treatment: the host check, then the HTTPS redirect.
    assert client.get("/login/").status_code == 400
    redirected = Client(HTTP_HOST="console.example.com").get("/login/")
    assert redirected.status_code == 301 and redirected["Location"].startswith("https://")


def test_it_names_redis_when_redis_does_not_answer(settings, caplog):
    settings.REDIS_URL = f"redis://:a-secret-password@127.0.0.1:{free_port()}/0"
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "database": "ok", "redis": "unreachable"}
    assert "a-secret-password" not in response.content.decode() + caplog.text
    assert "redis unreachable" in caplog.text


def test_it_only_reads(settings, redis_url):
    settings.REDIS_URL = redis_url
    response = Client().post("/healthz")
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    assert Client().head("/healthz").status_code == 200
