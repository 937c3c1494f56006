"""The django-rq dashboard is for superusers only, with production settings too."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.migrations_engine.console_helpers import staff_user

pytestmark = pytest.mark.django_db

PAGES = ["/django-rq/", "/django-rq/queues/0/", "/django-rq/stats.json/"]


@pytest.fixture
def production(settings, queue):
    """The settings production gets from DEBUG=False (see tests/security/test_deploy_settings.py)."""
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["console.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    return settings


def https_client(user=None) -> Client:
    client = Client(HTTP_HOST="console.example.com")
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize("page", PAGES)
def test_an_anonymous_request_goes_to_the_login_page(production, page):
    response = https_client().get(page, secure=True)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.parametrize("page", PAGES)
def test_a_staff_member_who_is_not_a_superuser_is_refused(production, page):
    assert https_client(staff_user("staff")).get(page, secure=True).status_code == 403


def test_a_superuser_sees_the_queues_over_https_only(production):
    client = https_client(staff_user("root", superuser=True))
    response = client.get("/django-rq/", secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    assert response["X-Frame-Options"] == "DENY"
    plain = client.get("/django-rq/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
