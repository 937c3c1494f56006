"""Onboarding a customer through admin consent, against the simulator's login service over HTTPS.

The consent page is the simulator's own (GET it, POST its Accept/Cancel form, follow its 302 to the
callback). Every refusal leaves tenants, consents, grants and the audit log exactly as they were; only
the consent request's `used_at` (and its result text) may change.
"""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, RequestFactory
from django.utils import timezone

from migrations_engine.audit.models import AuditEvent
from migrations_engine.graph.permissions import REQUIRED_ROLES
from msp_console.admin_site import site
from tenants.admin import CustomerTenantAdmin
from tenants.admin_actions import recheck_consent_action
from tenants.consent import recheck_consent
from tenants.models import ConsentRequest, CustomerTenant, TenantConsent, TenantGrant
from tenants.services import add_tenant
from tests.conftest import fleet_tenant

pytestmark = pytest.mark.django_db

CALLBACK = "/consent/callback/"


@pytest.fixture
def sim(settings, fresh_graph):
    """A simulator of the test's own; the consent page sends the admin back to our callback URL."""
    settings.CONSENT_REDIRECT_URI = f"http://127.0.0.1:8000{CALLBACK}"
    return fresh_graph


@pytest.fixture
def staff(django_user_model):
    """A staff user (not a superuser) who may add customers and sees only the tenants granted to them."""
    user = django_user_model.objects.create_user("alice", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="add_customertenant"))
    user.groups.add(Group.objects.get(name="Administrator"))  # adding customers is an administrator's
    return user


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def _no_consent(sim) -> dict:
    return fleet_tenant(sim, lambda t: t["consent_granted"] is False)


def _partial(sim) -> dict:
    return fleet_tenant(sim, lambda t: t["consent_granted"] and set(REQUIRED_ROLES) - set(t["roles"]))


def _consented(sim, skip: tuple[str, ...] = ()) -> dict:
    return fleet_tenant(
        sim,
        lambda t: t["consent_granted"] and set(REQUIRED_ROLES) <= set(t["roles"]) and t["domain"] not in skip,
    )


def _link_on_page(page: str) -> str:
    match = re.search(r'id="consent-url" value="([^"]+)"', page)
    assert match, "no consent URL on the page"
    return html.unescape(match.group(1))


def _state(url: str) -> str:
    return dict(pair.split("=", 1) for pair in urlsplit(url).query.split("&"))["state"]


def _onboard(client, text: str, name: str = "Customer") -> tuple[CustomerTenant, str]:
    response = client.post("/customers/add/", {"text": text, "display_name": name})
    assert response.status_code == 302, response.content.decode()
    tenant = CustomerTenant.objects.get(pk=int(response["Location"].split("/")[2]))
    return tenant, _link_on_page(client.get(response["Location"]).content.decode())


def _new_link(client, tenant: CustomerTenant) -> str:
    response = client.post(f"/customers/{tenant.pk}/consent-link/")
    assert response.status_code == 302
    return _link_on_page(client.get(response["Location"]).content.decode())


def _answer_consent_page(sim, url: str, action: str) -> str:
    """Open the simulator's consent page, press Accept or Cancel; the callback path and query it sends."""
    page = sim.http.get(url)
    assert page.status_code == 200, page.text
    form_action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
    hidden = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text)
    answer = sim.http.post(form_action, data={**{k: html.unescape(v) for k, v in hidden}, "action": action})
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["location"])
    assert location.path == CALLBACK
    return f"{location.path}?{location.query}"


def _callback(url: str, **params) -> str:
    return f"{CALLBACK}?{urlencode({**params, 'state': _state(url)})}"


def _snapshot() -> dict:
    """Everything a refused callback must leave alone (a consent request's used_at and result aside)."""
    return {
        "tenants": list(CustomerTenant.objects.order_by("pk").values()),
        "consents": list(TenantConsent.objects.order_by("pk").values()),
        "grants": list(TenantGrant.objects.order_by("pk").values()),
        "audit": list(AuditEvent.objects.order_by("pk").values()),
        "requests": list(
            ConsentRequest.objects.order_by("pk").values(
                "pk", "tenant_id", "staff_id", "state_hash", "session_key_hash", "expires_at"
            )
        ),
    }


def _assert_refused(client, callback: str, message: str) -> str:
    before = _snapshot()
    response = client.get(callback)
    page = response.content.decode()
    assert response.status_code == 400, page
    assert "Consent not recorded" in page and message in html.unescape(page)
    assert _snapshot() == before
    return page


def _used(url: str) -> ConsentRequest:
    import hashlib

    return ConsentRequest.objects.get(state_hash=hashlib.sha256(_state(url).encode()).hexdigest())


# --- the happy path --------------------------------------------------------------------------------


def test_it_onboards_a_customer_by_domain_and_records_consent_end_to_end(sim, staff, staff_client):
    entry = _no_consent(sim)
    tenant, url = _onboard(staff_client, entry["domain"].upper(), "Adatum")

    assert str(tenant.tenant_id) == entry["tenant_id"] and tenant.primary_domain == entry["domain"]
    assert TenantGrant.objects.filter(tenant=tenant, user=staff).exists()
    assert tenant.consent.status == "pending"
    assert url.startswith(f"{sim.authority_host}/{entry['tenant_id']}/adminconsent?")
    assert f"client_id={sim.fleet['client_id']}" in url
    link_page = html.unescape(staff_client.get(f"/customers/{tenant.pk}/consent-link/").content.decode())
    for role, reason in REQUIRED_ROLES.items():
        assert role in link_page and reason in link_page
    assert "navigator.clipboard" in link_page and "Not granted yet" in link_page

    response = staff_client.get(_answer_consent_page(sim, url, "accept"))

    page = response.content.decode()
    assert response.status_code == 200 and 'id="consent-granted"' in page, page
    consent = TenantConsent.objects.get(tenant=tenant)
    assert consent.status == "granted" and consent.granted_by == staff
    assert consent.granted_at and consent.last_verified_at and consent.missing_roles == []
    assert set(consent.roles) >= set(REQUIRED_ROLES)
    event = AuditEvent.objects.get(action="consent.recorded")
    assert event.tenant_id == tenant.pk and event.actor == "alice" and event.detail["status"] == "granted"
    assert _used(url).used_at is not None and _used(url).result == "granted"


def test_it_records_partial_consent_and_names_the_missing_roles(sim, staff_client):
    entry = _partial(sim)
    missing = sorted(set(REQUIRED_ROLES) - set(entry["roles"]))
    tenant, url = _onboard(staff_client, entry["domain"], "Litware")

    response = staff_client.get(_callback(url, admin_consent="True", tenant=entry["tenant_id"]))

    page = html.unescape(response.content.decode())
    assert response.status_code == 200 and 'id="consent-partial"' in page
    for role in missing:
        assert role in page and REQUIRED_ROLES[role] in page
    consent = TenantConsent.objects.get(tenant=tenant)
    assert consent.status == "partial" and sorted(consent.missing_roles) == missing
    assert AuditEvent.objects.get(action="consent.recorded").detail["missing_roles"] == missing


def test_it_onboards_by_tenant_id_only_with_the_tenants_own_domain(sim, staff_client):
    entry, other = _consented(sim), _no_consent(sim)
    page = staff_client.post("/customers/add/", {"text": entry["tenant_id"], "display_name": "X"})
    assert "enter its primary domain too" in html.unescape(page.content.decode())
    page = staff_client.post(
        "/customers/add/", {"text": entry["tenant_id"], "display_name": "X", "domain": other["domain"]}
    )
    assert f"{other['domain']} belongs to tenant {other['tenant_id']}" in page.content.decode()
    assert not CustomerTenant.objects.exists()

    response = staff_client.post(
        "/customers/add/", {"text": entry["tenant_id"], "display_name": "X", "domain": entry["domain"]}
    )

    assert response.status_code == 302
    assert CustomerTenant.objects.get().primary_domain == entry["domain"]


# --- bad input -------------------------------------------------------------------------------------


def test_it_refuses_a_domain_no_tenant_uses_and_creates_nothing(sim, staff_client):
    before = _snapshot()
    response = staff_client.post(
        "/customers/add/", {"text": "nobody-uses-this.example.com", "display_name": "X"}
    )
    assert response.status_code == 200
    assert "No Microsoft Entra tenant uses nobody-uses-this.example.com" in response.content.decode()
    assert _snapshot() == before


def test_it_refuses_a_tenant_that_is_already_a_customer(sim, staff_client):
    entry = _consented(sim)
    tenant, _ = _onboard(staff_client, entry["domain"], "Contoso")
    before = _snapshot()
    for text in (entry["domain"], entry["tenant_id"]):
        response = staff_client.post(
            "/customers/add/", {"text": text, "display_name": "Again", "domain": entry["domain"]}
        )
        assert "is already a customer" in html.unescape(response.content.decode())
    assert _snapshot() == before


# --- refused callbacks -----------------------------------------------------------------------------


def test_it_refuses_a_forged_or_missing_state(sim, staff_client):
    entry = _consented(sim)
    tenant, url = _onboard(staff_client, entry["domain"])
    forged = (
        f"{CALLBACK}?{urlencode({'admin_consent': 'True', 'tenant': entry['tenant_id'], 'state': 'x' * 43})}"
    )
    _assert_refused(staff_client, forged, "no state this console handed out")
    _assert_refused(staff_client, f"{CALLBACK}?admin_consent=True&tenant={entry['tenant_id']}", "no state")
    assert _used(url).used_at is None
    assert TenantConsent.objects.get(tenant=tenant).status == "pending"


def test_it_refuses_a_replayed_state(sim, staff_client):
    entry = _no_consent(sim)
    _, url = _onboard(staff_client, entry["domain"])
    callback = _answer_consent_page(sim, url, "accept")
    assert staff_client.get(callback).status_code == 200

    _assert_refused(staff_client, callback, "already been used")
    assert AuditEvent.objects.filter(action="consent.recorded").count() == 1


def test_it_refuses_an_expired_state(sim, staff_client):
    entry = _consented(sim)
    tenant, url = _onboard(staff_client, entry["domain"])
    ConsentRequest.objects.filter(tenant=tenant).update(expires_at=timezone.now() - timedelta(seconds=1))

    _assert_refused(staff_client, _callback(url, admin_consent="True", tenant=entry["tenant_id"]), "expired")
    assert _used(url).used_at is not None and _used(url).result.startswith("refused: ")


def test_it_refuses_a_state_from_another_session_or_user(sim, staff, staff_client, django_user_model):
    entry = _consented(sim)
    tenant, url = _onboard(staff_client, entry["domain"])
    same_user_elsewhere = Client()
    same_user_elsewhere.force_login(staff)
    callback = _callback(url, admin_consent="True", tenant=entry["tenant_id"])

    _assert_refused(same_user_elsewhere, callback, "made in another session")
    assert _used(url).used_at is not None
    _assert_refused(staff_client, callback, "already been used")  # the leaked state is spent

    url = _new_link(staff_client, tenant)
    boss = Client()
    boss.force_login(django_user_model.objects.create_superuser("boss", "", "pw-for-tests-only"))
    _assert_refused(
        boss, _callback(url, admin_consent="True", tenant=entry["tenant_id"]), "another staff user"
    )
    assert TenantConsent.objects.get(tenant=tenant).status == "pending"


def test_it_refuses_an_error_even_with_admin_consent_true(sim, staff_client):
    declined = _no_consent(sim)
    _, url = _onboard(staff_client, declined["domain"])
    callback = _answer_consent_page(sim, url, "cancel")
    assert "admin_consent=True" in callback and "error=access_denied" in callback
    page = _assert_refused(staff_client, callback, "access_denied")
    assert "AADSTS65004" in page

    # The same shape by hand, for a tenant whose token would prove consent: the error still wins.
    entry = _consented(sim)
    tenant, url = _onboard(staff_client, entry["domain"])
    callback = _callback(
        url,
        error="access_denied",
        error_description="AADSTS65004: User declined to consent to access the app.",
        admin_consent="True",
        tenant=entry["tenant_id"],
    )
    _assert_refused(staff_client, callback, "access_denied: AADSTS65004: User declined")
    assert TenantConsent.objects.get(tenant=tenant).status == "pending"


def test_it_refuses_a_callback_that_does_not_say_consent_was_granted(sim, staff_client):
    entry = _consented(sim)
    _, url = _onboard(staff_client, entry["domain"])
    _assert_refused(staff_client, _callback(url, tenant=entry["tenant_id"]), "does not say")


def test_it_refuses_a_callback_naming_another_tenant(sim, staff_client):
    entry = _consented(sim)
    other = _consented(sim, skip=(entry["domain"],))
    _onboard(staff_client, other["domain"])
    tenant, url = _onboard(staff_client, entry["domain"])

    _assert_refused(
        staff_client, _callback(url, admin_consent="True", tenant=other["tenant_id"]), "names tenant"
    )
    assert TenantConsent.objects.get(tenant=tenant).status == "pending"


def test_it_refuses_a_token_whose_tid_is_another_tenants(sim, staff, staff_client):
    entry = _consented(sim)
    alias = str(uuid.uuid4())
    # The login service answers for `alias` with the tokens of another tenant (tid = entry's id).
    sim.call(sim.state.tenants.__setitem__, alias, sim.tenant(entry["tenant_id"]))
    tenant = add_tenant(tenant_id=alias, domain="alias.example.com", display_name="Alias", actor="t")
    TenantGrant.objects.create(tenant=tenant, user=staff)
    url = _new_link(staff_client, tenant)

    _assert_refused(
        staff_client, _callback(url, admin_consent="True", tenant=alias), f"for tenant {entry['tenant_id']}"
    )
    assert TenantConsent.objects.get(tenant=tenant).status == "pending"


def test_it_refuses_consent_the_login_service_does_not_confirm(sim, staff_client):
    entry = _no_consent(sim)
    _, url = _onboard(staff_client, entry["domain"])
    # A hand-made "success" for a tenant that never consented: no token, so no consent.
    _assert_refused(
        staff_client, _callback(url, admin_consent="True", tenant=entry["tenant_id"]), "AADSTS7000229"
    )


# --- access ----------------------------------------------------------------------------------------


def test_it_sends_anonymous_users_to_the_login_page(sim, staff_client):
    tenant, url = _onboard(staff_client, _consented(sim)["domain"])
    anonymous = Client()
    for path in (
        "/customers/add/",
        f"/customers/{tenant.pk}/consent-link/",
        _callback(url, admin_consent="True", tenant=str(tenant.tenant_id)),
    ):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/login/" in response["Location"], path
    assert anonymous.post("/customers/add/", {"text": "x.example.com", "display_name": "X"})["Location"]
    assert _used(url).used_at is None and CustomerTenant.objects.count() == 1


def test_it_refuses_posts_without_a_csrf_token(sim, staff, staff_client):
    tenant, _ = _onboard(staff_client, _consented(sim)["domain"])
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    before = _snapshot()

    assert (
        strict.post("/customers/add/", {"text": _no_consent(sim)["domain"], "display_name": "X"}).status_code
        == 403
    )
    assert strict.post(f"/customers/{tenant.pk}/consent-link/").status_code == 403
    assert _snapshot() == before


def test_it_hides_tenants_not_granted_to_the_user(sim, staff_client, django_user_model):
    tenant, _ = _onboard(staff_client, _consented(sim)["domain"])
    bob = Client()
    bob.force_login(django_user_model.objects.create_user("bob", password="pw-for-tests-only", is_staff=True))
    assert bob.get(f"/customers/{tenant.pk}/consent-link/").status_code == 404
    assert bob.post(f"/customers/{tenant.pk}/consent-link/").status_code == 404
    assert bob.get("/customers/add/").status_code == 403  # no permission to add customers
    assert ConsentRequest.objects.count() == 1


# --- re-checking -----------------------------------------------------------------------------------


def test_it_rechecks_consent_with_a_fresh_token(sim, staff, staff_client):
    entry = _consented(sim)
    tenant, url = _onboard(staff_client, entry["domain"])
    assert (
        staff_client.get(_callback(url, admin_consent="True", tenant=entry["tenant_id"])).status_code == 200
    )
    partial = [r for r in REQUIRED_ROLES if r != "AuditLog.Read.All"]
    sim.admin("POST", f"/_sim/tenants/{entry['tenant_id']}/consent", json={"granted": True, "roles": partial})

    # msal still holds the token of the callback (all roles): only a fresh one shows the change.
    consent = recheck_consent(tenant, actor=staff)

    assert consent.status == "partial" and consent.missing_roles == ["AuditLog.Read.All"]
    sim.admin("POST", f"/_sim/tenants/{entry['tenant_id']}/consent", json={"granted": False, "roles": []})
    request = RequestFactory().post("/tenants/customertenant/")
    request.user, request.session = staff, SessionStore()
    request._messages = FallbackStorage(request)

    recheck_consent_action(CustomerTenantAdmin(CustomerTenant, site), request, CustomerTenant.objects.all())

    consent.refresh_from_db()
    assert consent.status == "pending" and consent.roles == [] and "AADSTS7000229" in consent.last_error
    assert [str(m) for m in request._messages] == [f"{tenant}: Not granted yet: {consent.last_error}"]
    rechecks = AuditEvent.objects.filter(action="consent.rechecked", tenant_id=tenant.pk)
    assert [e.detail["status"] for e in rechecks.order_by("seq")] == ["partial", "pending"]


def test_it_offers_add_customer_on_the_changelist(sim, client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "", "pw-for-tests-only"))

    page = client.get("/tenants/customertenant/").content.decode()

    assert '<a href="/customers/add/" class="addlink">Add customer</a>' in page


def test_every_permission_the_consent_link_asks_for_is_explained():
    """What the app asks for at admin consent (the simulator's app registration stands for the real one)
    is exactly what the console explains on its consent page, one sentence each."""
    from graph_sim.auth import FULL_ROLES
    from migrations_engine.graph.permissions import REQUIRED_ROLES

    assert set(FULL_ROLES) == set(REQUIRED_ROLES)
    assert all(len(REQUIRED_ROLES[role]) > 20 for role in FULL_ROLES)
