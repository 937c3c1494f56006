"""Malformed, unknown and duplicated tenant ids and domains at every entry point: clear errors, no change."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from migrations_engine.models import MigrationRun
from tenants.models import CustomerTenant
from tenants.services import add_tenant
from tests.migrations_engine.console_helpers import client_for, csrf_post, staff_user
from tests.migrations_engine.pipeline_helpers import seed, tenant_named

pytestmark = pytest.mark.django_db

TID = "8a1f6b2e-8f0c-4a55-9a49-4a1c3d2e1f00"
UNKNOWN_TID = "0badc0de-0000-4000-8000-000000000000"  # no tenant of the simulator has it
MALFORMED_IDS = ["", "   ", "12345", f"{TID[:-1]}g", f"{TID}0", "00000000-0000-0000-0000", "DROP TABLE;"]
MALFORMED_DOMAINS = [
    "",
    "contoso",
    "contoso.",
    ".contoso.com",
    "con_toso.com",
    "contoso..com",
    "-contoso.com",
    "contoso.com/evil",
    "user@contoso.com",
    "contoso.c",
    "a" * 64 + ".com",
    ("a" * 60 + ".") * 5 + "com",
    "contoso.com\x00",
    "ｃｏｎｔｏｓｏ.com",  # full-width letters
]


@pytest.mark.parametrize("tenant_id", MALFORMED_IDS)
def test_add_tenant_refuses_a_malformed_id(tenant_id):
    with pytest.raises(ValidationError, match="not a tenant id"):
        add_tenant(tenant_id=tenant_id, domain="contoso.com", display_name="X", actor="t")
    assert not CustomerTenant.objects.exists()


@pytest.mark.parametrize("domain", MALFORMED_DOMAINS)
def test_add_tenant_refuses_a_malformed_domain(domain):
    with pytest.raises(ValidationError, match="not a domain"):
        add_tenant(tenant_id=TID, domain=domain, display_name="X", actor="t")
    assert not CustomerTenant.objects.exists()


def test_add_tenant_refuses_duplicates_whatever_their_spelling():
    add_tenant(tenant_id=TID, domain="contoso.com", display_name="Contoso", actor="t")
    for tenant_id, domain in [
        (TID.upper(), "other.com"),
        ("{" + TID + "}", "other.com"),
        (TID.replace("-", ""), "other.com"),
        (UNKNOWN_TID, " CONTOSO.COM "),
    ]:
        with pytest.raises(ValidationError, match="already"):
            add_tenant(tenant_id=tenant_id, domain=domain, display_name="X", actor="t")
    assert CustomerTenant.objects.count() == 1


# --- onboarding form -----------------------------------------------------------------------------


@pytest.fixture
def onboarder(demo_graph):
    user = staff_user("onboarder", role="Administrator")
    user.user_permissions.add(Permission.objects.get(codename="add_customertenant"))
    return client_for(user, csrf=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"text": "not a domain!"}, "is not a domain name"),
        ({"text": "con_toso.com"}, "is not a domain name"),
        (
            {"text": "nosuchtenant.onmicrosoft.com"},
            "No Microsoft Entra tenant uses nosuchtenant.onmicrosoft.com",
        ),
        ({"text": UNKNOWN_TID}, "enter its primary domain too"),
        ({"text": UNKNOWN_TID, "domain": "nosuch.onmicrosoft.com"}, "No Microsoft Entra tenant uses"),
        ({"text": UNKNOWN_TID, "domain": "contoso.onmicrosoft.com"}, "belongs to tenant"),
    ],
)
def test_the_onboarding_form_names_what_is_wrong(onboarder, data, message):
    page = reverse("admin:tenants_onboard")
    response = csrf_post(onboarder, page, page, {"display_name": "X", "domain": "", **data})
    assert response.status_code == 200
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not CustomerTenant.objects.exists()


def test_the_onboarding_form_refuses_a_tenant_already_a_customer(onboarder):
    add_tenant(
        tenant_id="11111111-1111-4111-8111-111111111111",
        domain="contoso.onmicrosoft.com",
        display_name="Contoso",
        actor="t",
    )
    page = reverse("admin:tenants_onboard")
    for text, domain in [
        ("CONTOSO.onmicrosoft.com", ""),
        ("11111111-1111-4111-8111-111111111111", "contoso.onmicrosoft.com"),
    ]:
        response = csrf_post(onboarder, page, page, {"text": text, "display_name": "Again", "domain": domain})
        assert response.status_code == 200, text
        # Contoso is not granted to the onboarder: it is named as taken, never which customer it is.
        page_text = response.content.decode()
        assert "already managed by this console" in page_text and "Contoso" not in page_text, text
    assert CustomerTenant.objects.count() == 1


# --- census and start_run ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["not a tenant", UNKNOWN_TID, "nosuch.onmicrosoft.com", "", "'; --"])
def test_census_refuses_a_tenant_that_is_not_a_customer(demo_graph, tmp_path, name):
    seed(demo_graph, tmp_path)
    with pytest.raises(CommandError, match="No customer tenant"):
        call_command("census", "--tenant", name)


def test_census_of_a_customer_unknown_to_microsoft_is_a_line_not_a_traceback(demo_graph, capsys):
    add_tenant(tenant_id=UNKNOWN_TID, domain="gone.example.com", display_name="Gone", actor="t")
    with pytest.raises(CommandError, match="could not be read"):
        call_command("census", "--tenant", "gone.example.com")
    tenant = CustomerTenant.objects.get()
    assert tenant.census_status == "error"
    assert "90002" in tenant.census_message or "invalid_tenant" in tenant.census_message


@pytest.mark.parametrize(
    "names", ["not a tenant", UNKNOWN_TID, "contoso.onmicrosoft.com,nosuch.onmicrosoft.com", ",,"]
)
def test_start_run_refuses_unknown_tenants_and_starts_nothing(demo_graph, tmp_path, queue, names):
    seed(demo_graph, tmp_path)
    with pytest.raises(CommandError):
        call_command("start_run", "--mode", "plan", "--tenants", names)
    assert not MigrationRun.objects.exists()


def test_start_run_with_a_tenant_named_twice_starts_it_once(demo_graph, tmp_path, queue):
    seed(demo_graph, tmp_path)
    contoso = tenant_named("contoso")
    names = f"contoso.onmicrosoft.com,{contoso.tenant_id},CONTOSO.onmicrosoft.com"
    call_command("start_run", "--mode", "plan", "--tenants", names)
    run = MigrationRun.objects.get()
    assert list(run.items.values_list("tenant", flat=True)) == [contoso.pk]
