"""The Graph client against the simulator over real HTTPS: tokens, hosts, paging, retries, batches."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from migrations_engine.graph import (
    REQUIRED_ROLES,
    BatchItem,
    ConsentMissing,
    GraphAuditMissing,
    GraphClient,
    GraphConfig,
    GraphError,
    GraphHostNotAllowed,
    GraphUnavailable,
    TokenError,
)
from migrations_engine.graph.auth import AppToken, acquire_app_token
from migrations_engine.graph.resources.users import resolve_user
from tests.conftest import fleet_tenant, point_settings_at


def run(coro):
    return asyncio.run(coro)


def full_consent(entry):
    return entry["consent_granted"] and set(entry["roles"]) >= set(REQUIRED_ROLES)


def requests_for(sim, tenant_id, method=None, contains=""):
    log = sim.admin("GET", f"/_sim/requests?tenant={tenant_id}")["requests"]
    return [r for r in log if (method is None or r["method"] == method) and contains in r["path"]]


def test_it_gets_a_token_with_the_certificate_and_reads_the_roles(demo_graph):
    entry = fleet_tenant(demo_graph, full_consent)

    async def go():
        async with GraphClient(entry["tenant_id"]) as client:
            return await client.app_token()

    token = run(go())
    assert token.tenant_id == entry["tenant_id"]
    assert set(REQUIRED_ROLES) <= set(token.roles)
    assert token.access_token not in repr(token)


def test_it_gets_a_token_with_a_secret_and_a_domain_as_tenant(settings, demo_sim):
    point_settings_at(settings, demo_sim, certificate=False)
    entry = fleet_tenant(demo_sim, full_consent)

    async def go():
        async with GraphClient(entry["domain"]) as client:
            return await client.app_token()

    assert run(go()).tenant_id == entry["tenant_id"]


def test_it_ignores_requests_ca_bundle_from_the_environment(demo_graph, monkeypatch, tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bogus))
    monkeypatch.setenv("SSL_CERT_FILE", str(bogus))
    entry = fleet_tenant(demo_graph, full_consent)

    async def go():
        async with GraphClient(entry["tenant_id"]) as client:
            return await client.get_json("/organization")

    assert run(go())["value"][0]["id"] == entry["tenant_id"]


def test_a_changed_ca_bundle_gets_an_msal_app_of_its_own(settings, fresh_graph, tmp_path):
    # msal apps are cached per authority. A login service that later answers on the same host and port
    # (another simulator, a changed setting) with another CA bundle must not meet the old app's session,
    # which would still point at the first bundle, by then deleted.
    entry = fleet_tenant(fresh_graph, lambda e: not e["consent_granted"])
    first = tmp_path / "first-ca.pem"
    first.write_bytes(open(fresh_graph.ca_bundle, "rb").read())
    settings.GRAPH_CA_BUNDLE = str(first)
    with pytest.raises(ConsentMissing):  # the app is cached, with no token in it
        acquire_app_token(GraphConfig.from_settings(), entry["tenant_id"])
    first.unlink()
    fresh_graph.admin(
        "POST",
        f"/_sim/tenants/{entry['tenant_id']}/consent",
        json={"granted": True, "roles": list(REQUIRED_ROLES)},
    )
    settings.GRAPH_CA_BUNDLE = fresh_graph.ca_bundle
    assert acquire_app_token(GraphConfig.from_settings(), entry["tenant_id"]).tenant_id == entry["tenant_id"]


def test_it_reports_a_tenant_without_consent(demo_graph):
    entry = fleet_tenant(demo_graph, lambda e: not e["consent_granted"])

    async def go():
        async with GraphClient(entry["tenant_id"]) as client:
            return await client.app_token()

    with pytest.raises(ConsentMissing) as caught:
        run(go())
    assert caught.value.aadsts is not None


def test_a_token_names_the_tenant_it_was_issued_for():
    """`tid` is a GUID: the same tenant in capitals is the same tenant; any other, or none, is refused."""
    tid = "6f0c5a4e-1b2d-4c3e-8f9a-0b1c2d3e4f5a"
    token = AppToken(access_token="x", tenant_id=tid.upper(), app_id="app", roles=())
    assert token.wrong_tenant(tid) is None
    other = "0b1c2d3e-4f5a-4c3e-8f9a-6f0c5a4e1b2d"
    assert token.wrong_tenant(other) == f"The token is for tenant {tid.upper()}, not {other}."
    assert AppToken("x", "", "app", ()).wrong_tenant(tid) == f"The token is for tenant (none), not {tid}."


def test_it_reports_a_wrong_secret_as_a_token_error_not_missing_consent(settings, demo_sim):
    point_settings_at(settings, demo_sim, certificate=False)
    settings.GRAPH_CLIENT_SECRET = "wrong"
    entry = fleet_tenant(demo_sim, full_consent)

    async def go():
        async with GraphClient(entry["tenant_id"]) as client:
            return await client.app_token()

    with pytest.raises(TokenError) as caught:
        run(go())
    assert not isinstance(caught.value, ConsentMissing)
    assert caught.value.code == "invalid_client"


def test_it_refuses_to_send_the_token_to_another_host(demo_graph):
    entry = fleet_tenant(demo_graph, full_consent)
    before = len(requests_for(demo_graph, entry["tenant_id"]))

    async def go():
        async with GraphClient(entry["tenant_id"]) as client:
            await client.request("GET", "https://graph.evil.example/v1.0/users")

    with pytest.raises(GraphHostNotAllowed):
        run(go())
    assert len(requests_for(demo_graph, entry["tenant_id"])) == before


def test_it_follows_next_links_until_every_user_is_read(demo_graph):
    entry = max(demo_graph.fleet["tenants"], key=lambda e: e["user_count"] if full_consent(e) else 0)
    assert entry["user_count"] > 100

    async def go():
        pages = []
        async with GraphClient(entry["tenant_id"]) as client:
            async for page in client.iter_pages("/users", query={"$select": "id", "$top": 37}):
                pages.append(page)
        return pages

    pages = run(go())
    ids = [u["id"] for page in pages for u in page]
    assert len(ids) == entry["user_count"] == len(set(ids))
    assert len(pages) == -(-entry["user_count"] // 37)
    assert set(pages[0][0]) <= {"id", "@odata.type"}


def test_it_waits_out_throttling_and_then_succeeds(fresh_graph):
    entry = fleet_tenant(fresh_graph, full_consent)
    fresh_graph.admin("POST", f"/_sim/tenants/{entry['tenant_id']}/faults", json={"rate_429": 0.6})

    async def go():
        async with GraphClient(entry["tenant_id"]) as client:
            return [
                await client.get_json("/policies/identitySecurityDefaultsEnforcementPolicy") for _ in range(5)
            ]

    bodies = run(go())
    assert all("isEnabled" in b for b in bodies)
    statuses = [r["status"] for r in requests_for(fresh_graph, entry["tenant_id"], "GET", "identitySecurity")]
    assert statuses.count(200) == 5 and 429 in statuses


@pytest.mark.django_db(transaction=True)
def test_it_never_resends_a_write_that_failed_with_5xx_and_audits_it_as_unknown(fresh_graph):
    from migrations_engine.audit.writer import AuditContext
    from migrations_engine.models import AuditEvent
    from tenants.services import add_tenant

    entry = fleet_tenant(fresh_graph, full_consent)
    tenant = add_tenant(tenant_id=entry["tenant_id"], domain=entry["domain"], display_name="T", actor="test")
    fresh_graph.admin("POST", f"/_sim/tenants/{entry['tenant_id']}/faults", json={"rate_5xx": 1.0})

    async def go():
        audit = AuditContext(actor="test", tenant_id=tenant.pk, step="probe")
        async with GraphClient(entry["tenant_id"], audit=audit) as client:
            await client.write(
                "PATCH",
                "/policies/identitySecurityDefaultsEnforcementPolicy",
                body={"isEnabled": True},
                action="sd.enable",
            )

    with pytest.raises(GraphError) as caught:
        run(go())
    # The audit rows were written from asgiref's thread: close its connection as the runner does.
    run(sync_to_async(connections.close_all, thread_sensitive=True)())
    assert caught.value.status >= 500 and caught.value.request_id
    assert len(requests_for(fresh_graph, entry["tenant_id"], "PATCH", "identitySecurity")) == 1
    outcomes = list(
        AuditEvent.objects.filter(tenant=tenant).values_list("outcome", flat=True).order_by("seq")
    )
    assert outcomes == ["intent", "unknown"]


def test_it_refuses_writes_outside_the_audited_path(demo_graph):
    entry = fleet_tenant(demo_graph, full_consent)

    async def unaudited_send():
        async with GraphClient(entry["tenant_id"]) as client:
            await client.send("PATCH", "/policies/identitySecurityDefaultsEnforcementPolicy", body={})

    async def no_audit_context():
        async with GraphClient(entry["tenant_id"]) as client:
            await client.write("PATCH", "/policies/identitySecurityDefaultsEnforcementPolicy", body={})

    for attempt in (unaudited_send, no_audit_context):
        with pytest.raises(GraphAuditMissing):
            run(attempt())
    assert requests_for(demo_graph, entry["tenant_id"], "PATCH") == []


def test_it_gives_up_on_a_silent_graph_with_a_clear_error(settings, fresh_graph):
    settings.GRAPH_READ_TIMEOUT = 0.3
    settings.GRAPH_MAX_ATTEMPTS = 2
    entry = fleet_tenant(fresh_graph, full_consent)

    async def go():
        async with GraphClient(entry["tenant_id"]) as client:
            await client.app_token()  # the login side stays fast
            fresh_graph.admin("POST", f"/_sim/tenants/{entry['tenant_id']}/faults", json={"latency_ms": 1500})
            await client.get_json("/subscribedSkus")

    started = time.monotonic()
    with pytest.raises(GraphUnavailable, match="subscribedSkus"):
        run(go())
    assert time.monotonic() - started < 10


def test_it_refuses_an_oversized_batch_before_sending(demo_graph):
    entry = fleet_tenant(demo_graph, full_consent)

    async def go():
        async with GraphClient(entry["tenant_id"]) as client:
            await client.batch([BatchItem(str(i), "GET", "/organization") for i in range(21)])

    with pytest.raises(ValueError, match="at most 20"):
        run(go())


def test_it_retries_only_the_throttled_items_of_a_batch(fresh_graph):
    entry = fleet_tenant(fresh_graph, full_consent)
    state = fresh_graph.admin("GET", f"/_sim/tenants/{entry['tenant_id']}/state")
    users = [u["id"] for u in state["users"]][:20]
    fresh_graph.admin("POST", f"/_sim/tenants/{entry['tenant_id']}/faults", json={"rate_429": 0.4})
    items = [
        BatchItem(str(i), "GET", f"/users/{uid}/authentication/requirements") for i, uid in enumerate(users)
    ]

    async def go():
        async with GraphClient(entry["tenant_id"]) as client:
            return await client.batch_reads(items, version="beta")

    results = run(go())
    assert sorted(results) == sorted(i.id for i in items)
    assert all(r.status == 200 for r in results.values())
    expected = {str(i): u["perUserMfaState"] for i, u in enumerate(state["users"][:20])}
    assert {k: r.body["perUserMfaState"] for k, r in results.items()} == expected


def test_it_uses_the_configured_timeouts(settings):
    settings.GRAPH_AUTHORITY_HOST = "https://login.example.com"
    settings.GRAPH_BASE_URL = "https://graph.example.com"
    settings.GRAPH_CLIENT_ID = "11111111-1111-1111-1111-111111111111"
    settings.GRAPH_CLIENT_SECRET = "x"
    settings.GRAPH_CLIENT_PRIVATE_KEY_FILE = ""
    settings.GRAPH_CA_BUNDLE = ""
    settings.GRAPH_READ_TIMEOUT = 7.5
    config = GraphConfig.from_settings()

    async def go():
        async with GraphClient("contoso.com", config) as client:
            return client._http.timeout

    timeout = run(go())
    assert timeout.read == 7.5 and timeout.connect == config.connect_timeout


def test_a_token_graph_refuses_is_asked_for_afresh_once_and_the_request_sent_again(fresh_graph):
    """A 401 means Graph did not take the token (signing keys rolled, a revoked token): nothing was
    processed, so the client drops its token, asks the login service again and resends once."""
    entry = fleet_tenant(fresh_graph, full_consent)
    fresh_graph.add_fault_rules(
        entry["tenant_id"], {"method": "GET", "path_contains": "identitySecurity", "status": 401, "times": 1}
    )

    async def go():
        async with GraphClient(entry["tenant_id"]) as client:
            return await client.get_json("/policies/identitySecurityDefaultsEnforcementPolicy")

    assert "isEnabled" in run(go())
    statuses = [r["status"] for r in requests_for(fresh_graph, entry["tenant_id"], "GET", "identitySecurity")]
    assert statuses == [401, 200]

    fresh_graph.add_fault_rules(
        entry["tenant_id"], {"method": "GET", "path_contains": "identitySecurity", "status": 401, "times": 0}
    )
    with pytest.raises(GraphError) as refused:
        run(go())
    assert refused.value.status == 401  # a second refusal is the answer: no loop
    statuses = [r["status"] for r in requests_for(fresh_graph, entry["tenant_id"], "GET", "identitySecurity")]
    assert statuses[2:] == [401, 401]


@pytest.mark.parametrize(
    "upn",
    [
        "$svc.scanner@woodgrove.onmicrosoft.com",
        "jane.doe_gmail.com#EXT#@woodgrove.onmicrosoft.com",
        "o'brien@woodgrove.onmicrosoft.com",
    ],
)
def test_it_resolves_users_whose_upn_needs_the_documented_url_form(fresh_graph, upn):
    """Get user (https://learn.microsoft.com/graph/api/user-get): '$' UPNs in users('…'), '#' encoded."""
    entry = fleet_tenant(fresh_graph, lambda t: t["domain"].startswith("woodgrove"))
    if upn.startswith("$"):
        fresh_graph.admin(
            "POST", f"/_sim/tenants/{entry['tenant_id']}/users", json={"userPrincipalName": upn}
        )

    async def go():
        async with GraphClient(entry["tenant_id"]) as client:
            return await resolve_user(client, upn)

    user = run(go())
    assert user is not None and user["userPrincipalName"].lower() == upn.lower()
