"""Adding tenants and break-glass configuration: bad input is a clear error and changes nothing."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tenants.models import CustomerTenant, TenantConsent
from tenants.services import add_tenant, set_break_glass

TID = "8a1f6b2e-8f0c-4a55-9a49-4a1c3d2e1f00"
pytestmark = pytest.mark.django_db


def test_it_adds_a_tenant_with_a_pending_consent():
    tenant = add_tenant(tenant_id=TID, domain=" Contoso.OnMicrosoft.com ", display_name="Contoso", actor="t")
    assert tenant.primary_domain == "contoso.onmicrosoft.com"
    assert TenantConsent.objects.get(tenant=tenant).status == "pending"


@pytest.mark.parametrize(
    ("tenant_id", "domain", "message"),
    [
        ("not-a-guid", "contoso.com", "not a tenant id"),
        (TID, "contoso", "not a domain"),
        (TID, "-bad-.com", "not a domain"),
        (TID, "con toso.com", "not a domain"),
    ],
)
def test_it_refuses_malformed_input(tenant_id, domain, message):
    with pytest.raises(ValidationError, match=message):
        add_tenant(tenant_id=tenant_id, domain=domain, display_name="X", actor="t")
    assert CustomerTenant.objects.count() == 0


def test_it_refuses_duplicates_by_id_and_by_domain():
    add_tenant(tenant_id=TID, domain="contoso.com", display_name="Contoso", actor="t")
    with pytest.raises(ValidationError, match="already a customer"):
        add_tenant(tenant_id=TID, domain="other.com", display_name="X", actor="t")
    with pytest.raises(ValidationError, match="already uses"):
        add_tenant(
            tenant_id="9a1f6b2e-8f0c-4a55-9a49-4a1c3d2e1f00",
            domain="CONTOSO.com",
            display_name="X",
            actor="t",
        )
    assert CustomerTenant.objects.count() == 1


def test_it_accepts_guest_and_apostrophe_upns_for_break_glass():
    tenant = add_tenant(tenant_id=TID, domain="contoso.com", display_name="Contoso", actor="t")
    config = set_break_glass(
        tenant, accounts=["o'brien@contoso.com", "ext_fabrikam.com#EXT#@contoso.onmicrosoft.com"], actor="t"
    )
    assert len(config.accounts) == 2


@pytest.mark.parametrize("accounts", [["not an upn"], ["nobody@"], []])
def test_it_refuses_bad_break_glass_accounts(accounts):
    tenant = add_tenant(tenant_id=TID, domain="contoso.com", display_name="Contoso", actor="t")
    with pytest.raises(ValidationError):
        set_break_glass(tenant, accounts=accounts, actor="t")
    assert not hasattr(CustomerTenant.objects.get(pk=tenant.pk), "break_glass") or not (
        CustomerTenant.objects.get(pk=tenant.pk).break_glass.accounts
    )
