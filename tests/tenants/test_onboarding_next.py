"""Onboarding ends by asking for the break-glass accounts (every migration is blocked without them) and
offering a census now; both check the role and the grant, and bad input changes nothing."""

from __future__ import annotations

import uuid

import pytest

from migrations_engine.models import AuditEvent
from tenants.models import BreakGlassConfig, CustomerTenant, TenantConsent
from tests.migrations_engine.console_helpers import client_for, csrf_post, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    tenant = CustomerTenant.objects.create(
        tenant_id=uuid.uuid4(), primary_domain="newco.onmicrosoft.com", display_name="NewCo"
    )
    TenantConsent.objects.create(tenant=tenant)
    return tenant


def test_the_consent_page_asks_for_break_glass_and_saves_it(tenant):
    admin = client_for(staff_user("boss", tenant, role="Administrator"), csrf=True)
    page_url = f"/customers/{tenant.pk}/consent-link/"
    assert 'id="break-glass-missing"' in admin.get(page_url).content.decode()

    empty = csrf_post(
        admin, page_url, f"/customers/{tenant.pk}/break-glass/", {"accounts": "  ", "next": page_url}
    )
    assert empty.status_code == 302 and not BreakGlassConfig.objects.filter(tenant=tenant).exists()
    bad = {"accounts": "not an account", "minimum": "1", "next": page_url}
    csrf_post(admin, page_url, f"/customers/{tenant.pk}/break-glass/", bad)
    assert not BreakGlassConfig.objects.filter(tenant=tenant, accounts__len__gt=0).exists()

    good = {
        "accounts": "bg1@newco.onmicrosoft.com\nbg2@newco.onmicrosoft.com",
        "minimum": "2",
        "next": page_url,
    }
    done = csrf_post(admin, page_url, f"/customers/{tenant.pk}/break-glass/", good)

    assert done.status_code == 302 and done["Location"] == page_url
    config = BreakGlassConfig.objects.get(tenant=tenant)
    assert (config.accounts, config.minimum_count) == (
        ["bg1@newco.onmicrosoft.com", "bg2@newco.onmicrosoft.com"],
        2,
    )
    assert AuditEvent.objects.filter(action="tenant.break_glass_set", tenant=tenant).exists()
    assert 'id="break-glass-ok"' in admin.get(page_url).content.decode()


@pytest.mark.django_db(transaction=True)  # the census job is queued on commit
def test_break_glass_and_census_need_the_role_and_the_grant(tenant, queue):
    operator = client_for(staff_user("ops", tenant, role="Operator"), csrf=True)
    page_url = f"/customers/{tenant.pk}/consent-link/"
    refused = csrf_post(
        operator, page_url, f"/customers/{tenant.pk}/break-glass/", {"accounts": "bg@newco.onmicrosoft.com"}
    )
    assert refused.status_code == 403 and not BreakGlassConfig.objects.filter(tenant=tenant).exists()
    outsider = client_for(staff_user("other", role="Administrator"), csrf=True)
    assert outsider.post(f"/customers/{tenant.pk}/census/").status_code in (403, 404)

    census = csrf_post(operator, page_url, f"/customers/{tenant.pk}/census/")

    # Then the census progress page follows it.
    assert census.status_code == 302 and census["Location"].startswith(
        f"/census/progress/?tenants={tenant.pk}&"
    )
    assert len(queue) == 1
