"""Issue 8 reads for readiness and the trusted-IP step: the undocumented legacy MFA service settings,
sign-in logs, directory audits (Microsoft-managed policy markers) and mailbox settings (shared/room
mailboxes), with their permissions, licence rules, filters, paging and throttle families."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from graph_sim.audit_logs import MANAGED_POLICY_MANAGER, parse_datetime
from tests.graph_sim.conftest import (
    CONTOSO,
    FABRIKAM,
    LITWARE,
    NORTHWIND,
    TAILSPIN,
    WOODGROVE,
    grant_mailbox_settings,
)

MSP = "/beta/policies/mfaServicePolicy"
SIGN_INS = "/v1.0/auditLogs/signIns"
AUDITS = "/v1.0/auditLogs/directoryAudits"
SIGN_IN_FIELDS = {
    "id",
    "createdDateTime",
    "userId",
    "userPrincipalName",
    "userDisplayName",
    "clientAppUsed",
    "appDisplayName",
    "appId",
    "ipAddress",
    "status",
    "isInteractive",
    "conditionalAccessStatus",
    "appliedConditionalAccessPolicies",
    "location",
    "deviceDetail",
}


def _consent(sim, tenant: str, *roles: str) -> None:
    sim.admin("POST", f"/_sim/tenants/{tenant}/consent", json={"granted": True, "roles": list(roles)})


def _all_pages(c, url: str) -> tuple[list[dict], int]:
    items, pages = [], 0
    while url:
        r = c.get(url)
        assert r.status_code == 200, r.text
        items += r.json()["value"]
        pages += 1
        url = r.json().get("@odata.nextLink")
    return items, pages


# -- legacy MFA service settings ----------------------------------------------------------------------
def test_it_serves_the_assumed_mfa_service_policy_shape_where_a_tenant_has_one(graph):
    body = graph(CONTOSO).get(MSP).json()
    assert body["@odata.context"].endswith("/beta/$metadata#policies/mfaServicePolicy/$entity")
    assert {k: v for k, v in body.items() if k != "@odata.context"} == {
        "id": "mfaServicePolicy",
        "trustedIps": {"isEnabled": True, "ipRanges": ["203.0.113.0/24", "198.51.100.16/28"]},
        "skipMfaForFederatedUsers": False,
        "rememberMfaOnTrustedDevices": {"isEnabled": True, "days": 14},
        "appPasswords": {"isAllowed": True},
    }
    woodgrove = graph(WOODGROVE).get(MSP).json()
    assert woodgrove["appPasswords"] == {"isAllowed": False} and woodgrove["skipMfaForFederatedUsers"] is True
    assert woodgrove["rememberMfaOnTrustedDevices"] == {"isEnabled": True, "days": 14}
    northwind = graph(NORTHWIND).get(MSP).json()
    assert northwind["trustedIps"] == {"isEnabled": False, "ipRanges": []}


@pytest.mark.parametrize(("tenant", "path"), [(FABRIKAM, MSP), (CONTOSO, "/v1.0/policies/mfaServicePolicy")])
def test_it_answers_like_an_unknown_segment_where_there_is_no_mfa_service_policy(graph, tenant, path):
    r = graph(tenant).get(path)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "BadRequest"
    assert r.json()["error"]["message"] == "Resource not found for the segment 'mfaServicePolicy'."


def test_it_needs_policy_read_all_for_the_mfa_service_policy_but_answers_absence_first(sim, graph):
    _consent(sim, CONTOSO, "User.Read.All", "Policy.ReadWrite.ConditionalAccess")
    r = graph(CONTOSO).get(MSP)
    assert r.status_code == 403 and r.json()["error"]["code"] == "Authorization_RequestDenied"
    _consent(sim, FABRIKAM, "User.Read.All")
    assert graph(FABRIKAM).get(MSP).status_code == 400  # an unknown segment fails before the role check


def test_it_lets_tests_set_and_clear_the_mfa_service_policy(sim, graph):
    odd = {
        "trustedIps": {"isEnabled": True, "ipRanges": ["2001:db8::/48"]},
        "appPasswords": {"isAllowed": True},
    }
    body = sim.admin("POST", f"/_sim/tenants/{FABRIKAM}/mfa-service-policy", json=odd)
    assert body["mfa_service_policy"]["trustedIps"]["ipRanges"] == ["2001:db8::/48"]
    assert graph(FABRIKAM).get(MSP).json()["trustedIps"]["ipRanges"] == ["2001:db8::/48"]
    sim.admin("DELETE", f"/_sim/tenants/{CONTOSO}/mfa-service-policy")
    assert graph(CONTOSO).get(MSP).status_code == 400
    assert sim.admin("GET", f"/_sim/tenants/{CONTOSO}/state")["mfa_service_policy"] is None
    event = sim.tenant(CONTOSO).timeline[-1]
    assert (event.kind, event.source, event.new) == ("mfa_service_policy", "admin", None)
    assert (
        sim.admin_response("POST", f"/_sim/tenants/{CONTOSO}/mfa-service-policy", json={}).status_code == 400
    )


# -- sign-in logs --------------------------------------------------------------------------------------
def test_it_lists_sign_ins_newest_first_with_the_documented_fields(graph):
    r = graph(CONTOSO).get(SIGN_INS)
    body = r.json()
    assert r.status_code == 200 and body["@odata.context"].endswith("/v1.0/$metadata#auditLogs/signIns")
    entries = body["value"]
    assert "@odata.nextLink" not in body and len(entries) == 92  # default page size 1,000
    assert all(SIGN_IN_FIELDS <= e.keys() for e in entries)
    times = [parse_datetime(e["createdDateTime"]) for e in entries]
    assert times == sorted(times, reverse=True)
    assert {e["clientAppUsed"] for e in entries} == {
        "Browser",
        "Mobile Apps and Desktop clients",
        "IMAP4",
        "Authenticated SMTP",
        "Exchange ActiveSync",
        "POP3",
    }
    assert set(entries[0]["status"]) == {"errorCode", "failureReason", "additionalDetails"}


def test_it_pages_sign_ins_with_top_and_an_opaque_next_link(graph, sim):
    c = graph(CONTOSO)
    first = c.get(f"{SIGN_INS}?$top=25").json()
    assert len(first["value"]) == 25 and first["@odata.nextLink"].startswith(sim.graph_base_url)
    assert "$skiptoken=" in first["@odata.nextLink"] and "$top=25" in first["@odata.nextLink"]
    entries, pages = _all_pages(c, f"{SIGN_INS}?$top=25")
    assert pages == 4 and len(entries) == len({e["id"] for e in entries}) == 92
    for top in ("0", "1001", "x"):
        r = c.get(f"{SIGN_INS}?$top={top}")
        assert r.status_code == 400 and r.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_it_filters_sign_ins_by_client_app_user_and_time(graph, sim):
    c = graph(CONTOSO)
    imap = c.get(f"{SIGN_INS}?$filter=clientAppUsed eq 'IMAP4'").json()["value"]
    assert len(imap) == 3 and len({e["userId"] for e in imap}) == 1
    user = sim.tenant(CONTOSO).by_id[imap[0]["userId"]]
    assert user.per_user_state == "enforced" and all(e["status"]["errorCode"] == 0 for e in imap)
    mine = c.get(f"{SIGN_INS}?$filter=userId eq '{user.id}'").json()["value"]
    assert {e["id"] for e in imap} <= {e["id"] for e in mine} and {e["userId"] for e in mine} == {user.id}
    since = (datetime.now(UTC) - timedelta(hours=48)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = c.get(f"{SIGN_INS}?$filter=createdDateTime ge {since}").json()["value"]
    assert recent and all(parse_datetime(e["createdDateTime"]) >= parse_datetime(since) for e in recent)
    both = c.get(
        f"{SIGN_INS}?$filter=createdDateTime ge {since} and clientAppUsed eq 'Authenticated SMTP'"
    ).json()["value"]
    assert both and {e["clientAppUsed"] for e in both} == {"Authenticated SMTP"}
    upn = quote(f"userPrincipalName eq '{user.upn}'")
    assert len(c.get(f"{SIGN_INS}?$filter={upn}").json()["value"]) == len(mine)


@pytest.mark.parametrize(
    ("expression", "code"),
    [
        ("riskState eq 'none'", "Request_UnsupportedQuery"),
        ("clientAppUsed ge 'IMAP4'", "Request_UnsupportedQuery"),
        ("clientAppUsed eq IMAP4", "BadRequest"),
        ("createdDateTime ge yesterday", "BadRequest"),
        # https://learn.microsoft.com/graph/api/resources/signin: clientAppUsed supports $filter (eq) only.
        ("clientAppUsed ne 'Browser'", "Request_UnsupportedQuery"),
        ("startsWith(clientAppUsed,'IMAP')", "Request_UnsupportedQuery"),
    ],
)
def test_it_refuses_sign_in_filters_it_does_not_evaluate(graph, expression, code):
    r = graph(CONTOSO).get(f"{SIGN_INS}?$filter={quote(expression)}")
    assert r.status_code == 400 and r.json()["error"]["code"] == code


def test_it_answers_the_documented_starts_with_filter_on_app_display_name(graph):
    """signin-list: "Retrieve the first 10 sign-ins to apps with the appDisplayName that starts with
    'Azure'" (startsWith on appDisplayName and userPrincipalName, per the signIn resource page)."""
    c = graph(CONTOSO)
    every = c.get(SIGN_INS).json()["value"]
    name = every[0]["appDisplayName"]
    prefix = name[:3]
    got = c.get(
        f"{SIGN_INS}?$filter={quote(f'startswith(appDisplayName,{chr(39)}{prefix}{chr(39)})')}&$top=10"
    )
    assert got.status_code == 200
    values = got.json()["value"]
    assert values and all(v["appDisplayName"].lower().startswith(prefix.lower()) for v in values)
    assert len(values) == min(
        10, sum(1 for e in every if e["appDisplayName"].lower().startswith(prefix.lower()))
    )


def test_it_shows_legacy_sign_ins_failing_without_app_passwords_in_woodgrove(graph, sim):
    c = graph(WOODGROVE)
    legacy = [
        e
        for e in c.get(SIGN_INS).json()["value"]
        if e["clientAppUsed"] in ("IMAP4", "Authenticated SMTP", "Exchange ActiveSync")
    ]
    assert len(legacy) == 9 and {e["status"]["errorCode"] for e in legacy} == {50076}
    users = [sim.tenant(WOODGROVE).by_id[uid] for uid in {e["userId"] for e in legacy}]
    assert "o'brien@woodgrove.onmicrosoft.com" in {u.upn for u in users}
    assert {u.per_user_state for u in users} == {"enforced"}
    failing = c.get(f"{SIGN_INS}?$filter=status/errorCode eq 50076").json()["value"]
    assert {e["id"] for e in failing} == {e["id"] for e in legacy}


def test_it_needs_audit_log_read_and_a_premium_licence_for_sign_ins(sim, graph):
    r = graph(TAILSPIN).get(SIGN_INS)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
    assert r.json()["error"]["message"] == "Neither tenant is B2C or tenant doesn't have premium license"
    _consent(sim, CONTOSO, "User.Read.All", "Policy.Read.All")
    r = graph(CONTOSO).get(SIGN_INS)
    assert r.status_code == 403 and r.json()["error"]["code"] == "Authorization_RequestDenied"


def test_it_gets_one_sign_in_and_lets_tests_add_more(sim, graph):
    c = graph(LITWARE)
    user = next(u for u in sim.tenant(LITWARE).users if u.per_user_state == "enforced")
    added = sim.admin(
        "POST",
        f"/_sim/tenants/{LITWARE}/signins",
        json={"signIns": [{"userPrincipalName": user.upn, "clientAppUsed": "POP3", "hoursAgo": 1}]},
    )["added"]
    assert added[0]["userId"] == user.id and added[0]["appDisplayName"] == "Office 365 Exchange Online"
    got = c.get(f"{SIGN_INS}/{added[0]['id']}").json()
    assert got["clientAppUsed"] == "POP3" and got["@odata.context"].endswith("auditLogs/signIns/$entity")
    assert c.get(f"{SIGN_INS}/{'0' * 8}-0000-0000-0000-{'0' * 12}").status_code == 404
    r = sim.admin_response(
        "POST", f"/_sim/tenants/{LITWARE}/signins", json=[{"userPrincipalName": "ghost@x"}]
    )
    assert r.status_code == 400
    assert sim.admin("DELETE", f"/_sim/tenants/{LITWARE}/signins")["count"] == 0
    assert c.get(SIGN_INS).json()["value"] == []


def test_it_counts_sign_ins_in_the_reports_throttle(sim, graph):
    sim.admin("POST", "/_sim/throttle", json={"enabled": True, "reset": True})
    c = graph(CONTOSO)
    assert [c.get(f"{SIGN_INS}?$top=1").status_code for _ in range(5)] == [200] * 5
    r = c.get(f"{SIGN_INS}?$top=1")
    assert r.status_code == 429 and 0 < float(r.headers["Retry-After"]) <= 10
    assert sim.state.log.entries[-1]["throttled"] == "reports"
    assert c.get(MSP).status_code == 200  # identity & access (RU), not the reports bucket


# -- directory audits: how Microsoft marks Microsoft-managed policies -----------------------------------
def test_it_lists_microsoft_managed_policy_creation_by_the_managed_policy_manager(sim, graph):
    c = graph(NORTHWIND)
    expression = quote(f"initiatedBy/app/displayName eq '{MANAGED_POLICY_MANAGER}' and category eq 'Policy'")
    r = c.get(f"{AUDITS}?$filter={expression}")
    assert r.status_code == 200 and r.json()["@odata.context"].endswith("#auditLogs/directoryAudits")
    entries = r.json()["value"]
    managed = sim.tenant(NORTHWIND).managed_policy_ids
    assert {e["targetResources"][0]["id"] for e in entries} == managed
    assert {e["activityDisplayName"] for e in entries} == {"Add conditional access policy"}
    assert all(e["loggedByService"] == "Conditional Access" and e["result"] == "success" for e in entries)
    names = {p["displayName"] for p in c.get("/v1.0/identity/conditionalAccess/policies").json()["value"]}
    assert {"Multifactor authentication for all users", "Block legacy authentication"} <= names


def test_it_audits_the_apps_own_conditional_access_writes(sim, graph):
    c = graph(FABRIKAM)
    body = {
        "displayName": "[GRANT] Require MFA all users",
        "state": "disabled",
        "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }
    pid = c.post("/v1.0/identity/conditionalAccess/policies", json=body).json()["id"]
    entries = c.get(AUDITS).json()["value"]
    assert [(e["activityDisplayName"], e["targetResources"][0]["id"]) for e in entries] == [
        ("Add conditional access policy", pid)
    ]
    assert entries[0]["initiatedBy"]["app"]["appId"] == sim.fleet["client_id"]
    assert graph(TAILSPIN).get(AUDITS).status_code == 200  # audit logs are not a premium feature
    _consent(sim, FABRIKAM, "Policy.Read.All")
    assert graph(FABRIKAM).get(AUDITS).status_code == 403


# -- mailbox settings: shared and room mailboxes ------------------------------------------------------
@pytest.mark.parametrize(
    ("upn", "purpose"),
    [
        ("info@woodgrove.onmicrosoft.com", "shared"),
        ("boardroom@woodgrove.onmicrosoft.com", "room"),
        ("former.employee@woodgrove.onmicrosoft.com", "user"),
        ("o'brien@woodgrove.onmicrosoft.com", "user"),
    ],
)
def test_it_tells_shared_and_room_mailboxes_apart_by_user_purpose(graph, sim, upn, purpose):
    grant_mailbox_settings(sim, WOODGROVE)
    c = graph(WOODGROVE)
    key = quote(upn, safe="@")
    settings = c.get(f"/v1.0/users/{key}/mailboxSettings")
    assert settings.status_code == 200 and settings.json()["userPurpose"] == purpose
    assert settings.json()["@odata.context"].endswith("/mailboxSettings")
    assert {"timeZone", "language", "workingHours", "automaticRepliesSetting"} <= settings.json().keys()
    only = c.get(f"/v1.0/users/{key}/mailboxSettings?$select=userPurpose").json()
    assert set(only) == {"@odata.context", "userPurpose"}
    value = c.get(f"/v1.0/users/{key}/mailboxSettings/userPurpose").json()
    assert value["value"] == purpose and value["@odata.context"].endswith("/mailboxSettings/userPurpose")


def test_it_exposes_disabled_accounts_and_answers_mailboxless_users_like_exchange(graph, sim):
    grant_mailbox_settings(sim, WOODGROVE)
    c = graph(WOODGROVE)
    users = c.get("/v1.0/users?$select=userPrincipalName,accountEnabled,userType&$top=999").json()["value"]
    disabled = {u["userPrincipalName"].split("@")[0] for u in users if u["accountEnabled"] is False}
    assert disabled == {"info", "boardroom", "former.employee"}
    for upn in (
        "jane.doe_gmail.com#EXT#@woodgrove.onmicrosoft.com",
        "emergency.access1@woodgrove.onmicrosoft.com",
    ):
        r = c.get(f"/v1.0/users/{quote(upn, safe='@')}/mailboxSettings")
        assert r.status_code == 404 and r.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    grant_mailbox_settings(sim, NORTHWIND)
    northwind = graph(NORTHWIND).get("/v1.0/users/accounts@northwind.onmicrosoft.com/mailboxSettings").json()
    assert northwind["userPurpose"] == "shared"
    _consent(sim, WOODGROVE, "User.Read.All")
    r = graph(WOODGROVE).get("/v1.0/users/info@woodgrove.onmicrosoft.com/mailboxSettings")
    assert r.status_code == 403 and r.json()["error"]["code"] == "Authorization_RequestDenied"


def test_it_keeps_the_demo_fleet_counts_and_seeds_the_woodgrove_trusted_location(sim):
    fleet = {t["domain"].split(".")[0]: t for t in sim.fleet["tenants"]}
    assert fleet["contoso"]["user_count"] == 150 and fleet["woodgrove"]["user_count"] == 37
    state = sim.admin("GET", f"/_sim/tenants/{WOODGROVE}/state")
    [hq] = state["named_locations"]
    assert hq["displayName"] == "Woodgrove HQ" and hq["isTrusted"] is True
    assert {r["@odata.type"] for r in hq["ipRanges"]} == {
        "#microsoft.graph.iPv4CidrRange",
        "#microsoft.graph.iPv6CidrRange",
    }
    purposes = {u["userPrincipalName"].split("@")[0]: u["userPurpose"] for u in state["users"]}
    assert (
        purposes["info"] == "shared"
        and purposes["boardroom"] == "room"
        and purposes["emergency.access1"] is None
    )
    assert state["sign_in_count"] == 49


def test_a_quoted_value_may_contain_and():
    from graph_sim.audit_logs import _split_and

    raw = "createdDateTime ge 2026-01-01T00:00:00Z and clientAppUsed ne 'Mobile Apps and Desktop clients'"
    assert _split_and(raw) == [
        "createdDateTime ge 2026-01-01T00:00:00Z",
        "clientAppUsed ne 'Mobile Apps and Desktop clients'",
    ]
