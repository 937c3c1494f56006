"""Issue 8 policy controls: built-in authentication strengths and their use as a grant, the sign-in
frequency session control, named-location rules, and What-If / coverage with network locations,
authentication strengths and session-only policies."""

from __future__ import annotations

import asyncio

import pytest

from graph_sim.auth_strengths import MFA_STRENGTH_ID, PHISHING_RESISTANT_STRENGTH_ID
from graph_sim.conditional_access import MFA_TRUSTED_IPS_LOCATION_ID
from tests.graph_sim.conftest import CONTOSO, FABRIKAM, WOODGROVE, grant_mailbox_settings
from tests.graph_sim.test_sdk import _client

POLICIES = "/v1.0/identity/conditionalAccess/policies"
LOCATIONS = "/v1.0/identity/conditionalAccess/namedLocations"
STRENGTHS = "/v1.0/policies/authenticationStrengthPolicies"
IPV4 = "#microsoft.graph.iPv4CidrRange"
IPV6 = "#microsoft.graph.iPv6CidrRange"


def _policy(state: str = "enabledForReportingButNotEnforced", grant: dict | None = None, **extra) -> dict:
    body = {
        "displayName": "[TEST] policy",
        "state": state,
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["all"],
        },
        "grantControls": grant if grant is not None else {"operator": "OR", "builtInControls": ["mfa"]},
    }
    for key, value in extra.items():
        if key == "locations":
            body["conditions"]["locations"] = value
        else:
            body[key] = value
    return body


def _strength_grant(strength_id: str = MFA_STRENGTH_ID) -> dict:
    return {"operator": "OR", "authenticationStrength": {"id": strength_id}}


def _create(c, body: dict) -> dict:
    r = c.post(POLICIES, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _ip_location(c, name: str, *cidrs: str, trusted: bool = True) -> dict:
    ranges = [{"@odata.type": IPV6 if ":" in cidr else IPV4, "cidrAddress": cidr} for cidr in cidrs]
    r = c.post(
        LOCATIONS,
        json={
            "@odata.type": "#microsoft.graph.ipNamedLocation",
            "displayName": name,
            "isTrusted": trusted,
            "ipRanges": ranges,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def _what_if(c, user_id: str, ip: str | None = None) -> dict[str, dict]:
    conditions = {"ipAddress": ip} if ip else {}
    r = c.post(
        "/beta/identity/conditionalAccess/evaluate",
        json={
            "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": user_id},
            "signInContext": {
                "@odata.type": "#microsoft.graph.applicationContext",
                "includeApplications": ["00000003-0000-0ff1-ce00-000000000000"],
            },
            "signInConditions": conditions,
        },
    )
    assert r.status_code == 200, r.text
    return {p["id"]: p for p in r.json()["value"]}


def _disabled_user(sim, tenant: str):
    return next(u for u in sim.tenant(tenant).users if u.per_user_state == "disabled" and not u.break_glass)


def _requires(sim, tenant: str, user_id: str, ip: str | None = None) -> dict:
    query = f"?ip={ip}" if ip else ""
    return sim.admin("GET", f"/_sim/tenants/{tenant}/users/{user_id}/requires-mfa{query}")


# -- authentication strengths -------------------------------------------------------------------------
def test_it_lists_the_three_built_in_authentication_strengths_as_documented(graph):
    r = graph(CONTOSO).get(STRENGTHS)
    assert r.status_code == 200
    assert r.json()["@odata.context"].endswith("/v1.0/$metadata#policies/authenticationStrengthPolicies")
    strengths = {s["id"]: s for s in r.json()["value"]}
    assert {sid: s["displayName"] for sid, s in strengths.items()} == {
        "00000000-0000-0000-0000-000000000002": "Multifactor authentication",
        "00000000-0000-0000-0000-000000000003": "Passwordless MFA",
        "00000000-0000-0000-0000-000000000004": "Phishing resistant MFA",
    }
    assert {(s["policyType"], s["requirementsSatisfied"]) for s in strengths.values()} == {("builtIn", "mfa")}
    assert strengths[PHISHING_RESISTANT_STRENGTH_ID]["allowedCombinations"] == [
        "windowsHelloForBusiness",
        "fido2",
        "x509CertificateMultiFactor",
    ]
    mfa = strengths[MFA_STRENGTH_ID]
    assert len(mfa["allowedCombinations"]) == 19 and "password,sms" in mfa["allowedCombinations"]
    assert mfa["combinationConfigurations"] == [] and mfa["createdDateTime"] == "2021-12-01T00:00:00Z"


def test_it_gets_filters_and_guards_authentication_strengths(sim, graph):
    c = graph(CONTOSO)
    one = c.get(f"/beta/policies/authenticationStrengthPolicies/{MFA_STRENGTH_ID}").json()
    assert one["displayName"] == "Multifactor authentication" and one["@odata.context"].endswith("/$entity")
    assert c.get(f"{STRENGTHS}/00000000-0000-0000-0000-000000000009").status_code == 404
    assert len(c.get(f"{STRENGTHS}?$filter=policyType eq 'builtIn'").json()["value"]) == 3
    assert c.get(f"{STRENGTHS}?$filter=policyType eq 'custom'").json()["value"] == []
    sim.admin(
        "POST",
        f"/_sim/tenants/{CONTOSO}/consent",
        json={"granted": True, "roles": ["Policy.Read.AuthenticationMethod"]},
    )
    assert graph(CONTOSO).get(STRENGTHS).status_code == 200
    sim.admin("POST", f"/_sim/tenants/{CONTOSO}/consent", json={"granted": True, "roles": ["User.Read.All"]})
    r = graph(CONTOSO).get(STRENGTHS)
    assert r.status_code == 403 and r.json()["error"]["code"] == "Authorization_RequestDenied"


def test_it_expands_an_authentication_strength_grant_on_every_read(graph):
    c = graph(CONTOSO)
    created = _create(c, _policy(grant=_strength_grant()))
    grant = created["grantControls"]
    assert grant["authenticationStrength"]["displayName"] == "Multifactor authentication"
    assert grant["authenticationStrength"]["requirementsSatisfied"] == "mfa"
    assert grant["authenticationStrength@odata.context"].endswith(
        f"policies('{created['id']}')/grantControls/authenticationStrength/$entity"
    )
    assert grant["builtInControls"] == []
    got = c.get(f"{POLICIES}/{created['id']}").json()["grantControls"]["authenticationStrength"]
    assert got["allowedCombinations"] == grant["authenticationStrength"]["allowedCombinations"]
    patch = {"grantControls": {"authenticationStrength": {"id": PHISHING_RESISTANT_STRENGTH_ID}}}
    assert c.patch(f"{POLICIES}/{created['id']}", json=patch).status_code == 204
    listed = next(p for p in c.get(POLICIES).json()["value"] if p["id"] == created["id"])
    assert listed["grantControls"]["authenticationStrength"]["displayName"] == "Phishing resistant MFA"


@pytest.mark.parametrize(
    "grant",
    [
        {"operator": "OR", "authenticationStrength": {"id": "00000000-0000-0000-0000-000000000042"}},
        {"operator": "OR", "builtInControls": ["mfa"], "authenticationStrength": {"id": MFA_STRENGTH_ID}},
        {"operator": "OR", "authenticationStrength": "Multifactor authentication"},
    ],
)
def test_it_refuses_unknown_or_conflicting_authentication_strengths(graph, grant):
    r = graph(CONTOSO).post(POLICIES, json=_policy(grant=grant))
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"


def test_it_refuses_adding_the_mfa_control_next_to_a_strength_on_patch(sim, graph):
    c = graph(CONTOSO)
    pid = _create(c, _policy(grant=_strength_grant()))["id"]
    r = c.patch(f"{POLICIES}/{pid}", json={"grantControls": {"builtInControls": ["mfa"]}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"
    assert sim.tenant(CONTOSO).policies[pid]["grantControls"]["builtInControls"] == []


# -- sign-in frequency ---------------------------------------------------------------------------------
def _sif(**fields) -> dict:
    return {"signInFrequency": {"isEnabled": True, "type": "days", "value": 14, **fields}}


def test_it_accepts_a_session_only_policy_and_returns_its_sign_in_frequency(graph):
    c = graph(CONTOSO)
    body = _policy(sessionControls=_sif(frequencyInterval="timeBased"))
    body["grantControls"] = None
    created = _create(c, body)
    assert created["grantControls"] is None
    sif = c.get(f"{POLICIES}/{created['id']}").json()["sessionControls"]["signInFrequency"]
    assert sif == {
        "isEnabled": True,
        "type": "days",
        "value": 14,
        "authenticationType": "primaryAndSecondaryAuthentication",
        "frequencyInterval": "timeBased",
    }
    patch = {"sessionControls": {"signInFrequency": {"type": "hours", "value": 8}}}
    assert c.patch(f"{POLICIES}/{created['id']}", json=patch).status_code == 204
    sif = c.get(f"{POLICIES}/{created['id']}").json()["sessionControls"]["signInFrequency"]
    assert (sif["type"], sif["value"], sif["isEnabled"]) == ("hours", 8, True)
    every = _policy(sessionControls=_sif(type=None, value=None, frequencyInterval="everyTime"))
    assert c.post(POLICIES, json=every).status_code == 201


@pytest.mark.parametrize(
    "session",
    [
        _sif(type="hours", value=24),
        _sif(value=366),
        _sif(value=0),
        _sif(type="weeks"),
        _sif(value="14"),
        _sif(type=None),
        _sif(frequencyInterval="everyTime"),
        _sif(frequencyInterval="sometimes"),
        _sif(authenticationType="passwordOnly"),
        _sif(remember=True),
        {"signInFrequency": {"type": "days", "value": 7}},
        {"signInFrequency": "14 days"},
    ],
)
def test_it_refuses_bad_sign_in_frequency_settings(graph, session):
    body = _policy(sessionControls=session)
    body["grantControls"] = None
    r = graph(CONTOSO).post(POLICIES, json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"
    assert "signInFrequency" in r.json()["error"]["message"]


def test_it_refuses_a_policy_with_neither_grant_nor_session_controls(graph):
    body = _policy(sessionControls={"signInFrequency": None})
    body["grantControls"] = None
    r = graph(CONTOSO).post(POLICIES, json=body)
    assert (
        r.status_code == 400
        and "at least one grant control or session control" in r.json()["error"]["message"]
    )


# -- named locations -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("odata_type", "cidr"),
    [
        (IPV4, "10.0.0.0/8"),
        (IPV4, "203.0.113.7"),
        (IPV4, "2001:db8::/48"),
        (IPV6, "203.0.113.0/24"),
        (IPV6, "2001::/8"),
        (IPV4, "203.0.113.0/33"),
    ],
)
def test_it_validates_ip_ranges_of_named_locations(graph, odata_type, cidr):
    body = {
        "@odata.type": "#microsoft.graph.ipNamedLocation",
        "displayName": "Bad",
        "ipRanges": [{"@odata.type": odata_type, "cidrAddress": cidr}],
    }
    r = graph(CONTOSO).post(LOCATIONS, json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"


def test_it_refuses_to_delete_a_named_location_a_policy_uses(sim, graph):
    c = graph(CONTOSO)
    loc = _ip_location(c, "VPN", "198.51.100.0/24", "2001:db8:2000::/48", trusted=False)
    assert [r["cidrAddress"] for r in loc["ipRanges"]] == ["198.51.100.0/24", "2001:db8:2000::/48"]
    pid = _create(c, _policy(locations={"includeLocations": ["All"], "excludeLocations": [loc["id"]]}))["id"]
    r = c.delete(f"{LOCATIONS}/{loc['id']}")
    assert r.status_code == 400 and pid in r.json()["error"]["message"]
    assert loc["id"] in sim.tenant(CONTOSO).named_locations
    assert c.patch(f"{POLICIES}/{pid}", json={"conditions": {"locations": None}}).status_code == 204
    assert c.delete(f"{LOCATIONS}/{loc['id']}").status_code == 204
    audits = [e["activityDisplayName"] for e in c.get("/v1.0/auditLogs/directoryAudits").json()["value"]]
    assert audits[0] == "Delete named location" and "Add named location" in audits


def test_it_refuses_policies_that_name_missing_locations(graph):
    c = graph(CONTOSO)
    ghost = "0b1e6a2c-0000-4000-8000-000000000001"
    r = c.post(POLICIES, json=_policy(locations={"includeLocations": ["All"], "excludeLocations": [ghost]}))
    assert r.status_code == 400 and ghost in r.json()["error"]["message"]
    special = {"includeLocations": ["All"], "excludeLocations": ["AllTrusted", MFA_TRUSTED_IPS_LOCATION_ID]}
    assert c.post(POLICIES, json=_policy(locations=special)).status_code == 201


def test_it_counts_named_locations_in_the_conditional_access_throttle(sim, graph):
    sim.admin("POST", "/_sim/throttle", json={"enabled": True, "reset": True})
    c = graph(WOODGROVE)
    assert c.get(LOCATIONS).status_code == 200
    r = c.get(LOCATIONS)
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert sim.state.log.entries[-1]["throttled"] == "ca"
    assert c.get(STRENGTHS).status_code == 200  # authentication strengths are not in the CA family
    assert c.get(STRENGTHS).status_code == 200


# -- What-If and coverage ------------------------------------------------------------------------------
def test_it_applies_location_scoped_policies_by_the_sign_in_ip(sim, graph):
    c = graph(WOODGROVE)
    user = _disabled_user(sim, WOODGROVE)
    pid = _create(
        c, _policy("enabled", locations={"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]})
    )["id"]
    assert _what_if(c, user.id)[pid]["analysisReasons"] == "notEnoughInformation"
    for inside in ("192.0.2.5", "2001:db8:1000::5"):  # Woodgrove HQ, IPv4 and IPv6
        result = _what_if(c, user.id, inside)[pid]
        assert (result["policyApplies"], result["analysisReasons"]) == (False, "location")
    outside = _what_if(c, user.id, "198.51.100.9")[pid]
    assert (outside["policyApplies"], outside["analysisReasons"]) == (True, "notSet")
    hq = next(iter(sim.tenant(WOODGROVE).named_locations))
    only_hq = _create(c, _policy(locations={"includeLocations": [hq]}))["id"]
    assert _what_if(c, user.id, "192.0.2.5")[only_hq]["policyApplies"] is True
    assert _what_if(c, user.id, "198.51.100.9")[only_hq]["analysisReasons"] == "location"
    r = c.post(
        "/beta/identity/conditionalAccess/evaluate",
        json={
            "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": user.id},
            "signInContext": {
                "@odata.type": "#microsoft.graph.applicationContext",
                "includeApplications": ["All"],
            },
            "signInConditions": {"ipAddress": "not-an-ip"},
        },
    )
    assert r.status_code == 400


def test_it_treats_the_legacy_mfa_trusted_ips_as_trusted_locations(sim, graph):
    c = graph(CONTOSO)
    user = _disabled_user(sim, CONTOSO)
    all_trusted = _create(
        c, _policy(locations={"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]})
    )
    legacy_only = _create(
        c, _policy(locations={"includeLocations": ["All"], "excludeLocations": [MFA_TRUSTED_IPS_LOCATION_ID]})
    )
    results = _what_if(c, user.id, "203.0.113.20")  # in Contoso's legacy trusted IPs
    assert results[all_trusted["id"]]["analysisReasons"] == "location"
    assert results[legacy_only["id"]]["analysisReasons"] == "location"
    sim.admin("DELETE", f"/_sim/tenants/{CONTOSO}/mfa-service-policy")
    results = _what_if(c, user.id, "203.0.113.20")
    assert results[all_trusted["id"]]["policyApplies"] is True
    assert results[legacy_only["id"]]["policyApplies"] is True


def test_it_counts_an_mfa_authentication_strength_as_requiring_mfa(sim, graph):
    c = graph(CONTOSO)
    user = _disabled_user(sim, CONTOSO)
    enforced = next(
        u for u in sim.tenant(CONTOSO).users if u.per_user_state == "enforced" and not u.break_glass
    )
    since = sim.clock.monotonic()
    pid = _create(c, _policy("enabled", grant=_strength_grant(PHISHING_RESISTANT_STRENGTH_ID)))["id"]
    assert _requires(sim, CONTOSO, user.id) == {
        "userId": user.id,
        "mfaRequired": True,
        "reasons": [f"conditionalAccess:{pid}"],
    }
    assert _what_if(c, user.id)[pid]["policyApplies"] is True
    c.patch(f"/beta/users/{enforced.id}/authentication/requirements", json={"perUserMfaState": "disabled"})
    assert sim.admin("GET", f"/_sim/tenants/{CONTOSO}/coverage?since={since}")["gaps"] == []


def test_it_does_not_count_a_session_only_policy_as_mfa(sim, graph):
    c = graph(CONTOSO)
    user = _disabled_user(sim, CONTOSO)
    enforced = next(
        u for u in sim.tenant(CONTOSO).users if u.per_user_state == "enforced" and not u.break_glass
    )
    since = sim.clock.monotonic()
    body = _policy("enabled", sessionControls=_sif())
    body["grantControls"] = None
    pid = _create(c, body)["id"]
    assert _what_if(c, user.id)[pid]["policyApplies"] is True  # it applies, but asks for no MFA
    assert _requires(sim, CONTOSO, user.id)["mfaRequired"] is False
    c.patch(f"/beta/users/{enforced.id}/authentication/requirements", json={"perUserMfaState": "disabled"})
    gaps = sim.admin("GET", f"/_sim/tenants/{CONTOSO}/coverage?since={since}")["gaps"]
    assert [g["user_id"] for g in gaps] == [enforced.id]


def test_it_covers_users_with_a_location_scoped_policy_only_where_it_applies(sim, graph):
    c = graph(FABRIKAM)
    c.patch("/v1.0/policies/identitySecurityDefaultsEnforcementPolicy", json={"isEnabled": False})
    user = _disabled_user(sim, FABRIKAM)
    office = _ip_location(c, "Office", "192.0.2.0/24")
    since = sim.clock.monotonic()
    locations = {"includeLocations": ["All"], "excludeLocations": [office["id"]]}
    pid = _create(c, _policy("enabled", locations=locations))["id"]
    assert _requires(sim, FABRIKAM, user.id)["mfaRequired"] is False  # no IP: trusted office left out
    assert _requires(sim, FABRIKAM, user.id, "198.51.100.1")["reasons"] == [f"conditionalAccess:{pid}"]
    assert _requires(sim, FABRIKAM, user.id, "192.0.2.1")["mfaRequired"] is False
    enforced = next(
        u for u in sim.tenant(FABRIKAM).users if u.per_user_state == "enforced" and not u.break_glass
    )
    c.patch(f"/beta/users/{enforced.id}/authentication/requirements", json={"perUserMfaState": "disabled"})
    gaps = sim.admin("GET", f"/_sim/tenants/{FABRIKAM}/coverage?since={since}")["gaps"]
    assert enforced.id in {g["user_id"] for g in gaps}


def test_it_serves_the_new_reads_to_msgraph_sdk(sim, msal_app):
    grant_mailbox_settings(sim, WOODGROVE)

    async def run():
        client = _client(sim, msal_app(WOODGROVE))
        strengths = await client.policies.authentication_strength_policies.get()
        assert {s.display_name for s in strengths.value} >= {"Multifactor authentication", "Passwordless MFA"}
        sign_ins = await client.audit_logs.sign_ins.get()
        assert sign_ins.value and {s.client_app_used for s in sign_ins.value} >= {"IMAP4", "Browser"}
        settings = await client.users.by_user_id("boardroom@woodgrove.onmicrosoft.com").mailbox_settings.get()
        assert settings.user_purpose.value == "room"
        locations = await client.identity.conditional_access.named_locations.get()
        assert [loc.display_name for loc in locations.value] == ["Woodgrove HQ"]

    asyncio.run(run())
