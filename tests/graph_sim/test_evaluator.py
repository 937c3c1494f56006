"""The sign-in evaluator, the What-If endpoint, registration/auto-transition and the coverage check."""

from __future__ import annotations

import time

from graph_sim import clock
from graph_sim.evaluator import coverage_gaps, requires_mfa
from tests.graph_sim.conftest import CONTOSO, FABRIKAM, NORTHWIND, WOODGROVE

MFA_ALL = {
    "displayName": "[GRANT] Require MFA all users",
    "state": "enabledForReportingButNotEnforced",
    "conditions": {
        "users": {"includeUsers": ["All"]},
        "applications": {"includeApplications": ["All"]},
        "clientAppTypes": ["all"],
    },
    "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
}


def _user(sim, tenant: str, state: str):
    return next(u for u in sim.tenant(tenant).users if u.per_user_state == state and not u.break_glass)


def _create(c, body: dict) -> str:
    r = c.post("/v1.0/identity/conditionalAccess/policies", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _what_if(c, user_id: str, **extra) -> list[dict]:
    r = c.post(
        "/beta/identity/conditionalAccess/evaluate",
        json={
            "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": user_id},
            "signInContext": {
                "@odata.type": "#microsoft.graph.applicationContext",
                "includeApplications": ["00000003-0000-0ff1-ce00-000000000000"],
            },
            "signInConditions": {},
            **extra,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["@odata.context"].endswith("Collection(microsoft.graph.whatIfAnalysisResult)")
    return r.json()["value"]


def test_it_requires_mfa_from_per_user_state_and_security_defaults(sim):
    contoso = sim.tenant(CONTOSO)
    assert requires_mfa(contoso, _user(sim, CONTOSO, "enforced")) == (True, ["perUserMfa:enforced"])
    assert requires_mfa(contoso, _user(sim, CONTOSO, "enabled"))[0] is True
    assert requires_mfa(contoso, _user(sim, CONTOSO, "disabled")) == (False, [])
    fabrikam = sim.tenant(FABRIKAM)
    assert requires_mfa(fabrikam, _user(sim, FABRIKAM, "disabled")) == (True, ["securityDefaults"])


def test_it_counts_only_enabled_policies_and_honours_exclusions(sim, graph):
    c = graph(CONTOSO)
    contoso = sim.tenant(CONTOSO)
    user, other = [u for u in contoso.users if u.per_user_state == "disabled" and not u.break_glass][:2]
    pid = _create(
        c,
        {
            **MFA_ALL,
            "conditions": {
                **MFA_ALL["conditions"],
                "users": {"includeUsers": ["All"], "excludeUsers": [other.id]},
            },
        },
    )
    assert requires_mfa(contoso, user)[0] is False  # report-only does not count
    c.patch(f"/v1.0/identity/conditionalAccess/policies/{pid}", json={"state": "enabled"})
    assert requires_mfa(contoso, user) == (True, [f"conditionalAccess:{pid}"])
    assert requires_mfa(contoso, other)[0] is False
    c.patch(f"/v1.0/identity/conditionalAccess/policies/{pid}", json={"state": "disabled"})
    assert requires_mfa(contoso, user)[0] is False


def test_it_resolves_group_includes_and_exclusions(sim, graph):
    woodgrove = sim.tenant(WOODGROVE)
    bg_group = sim.fleet["tenants"][6]["groups"]["Emergency Access Accounts"]
    _create(
        graph(WOODGROVE),
        {
            **MFA_ALL,
            "state": "enabled",
            "conditions": {
                **MFA_ALL["conditions"],
                "users": {"includeUsers": ["All"], "excludeGroups": [bg_group]},
            },
        },
    )
    bg = woodgrove.find_user("emergency.access1@woodgrove.onmicrosoft.com")
    assert requires_mfa(woodgrove, bg)[0] is False
    member = _user(sim, WOODGROVE, "disabled")
    assert requires_mfa(woodgrove, member)[0] is True
    pilot = sim.tenant(CONTOSO).groups[sim.fleet["tenants"][0]["groups"]["MFA Pilot"]]
    _create(
        graph(CONTOSO),
        {
            **MFA_ALL,
            "state": "enabled",
            "conditions": {**MFA_ALL["conditions"], "users": {"includeGroups": [pilot.id]}},
        },
    )
    contoso = sim.tenant(CONTOSO)
    inside = next(contoso.by_id[m] for m in pilot.member_ids if contoso.by_id[m].per_user_state == "disabled")
    outside = next(
        u for u in contoso.users if u.per_user_state == "disabled" and u.id not in pilot.member_ids
    )
    assert requires_mfa(contoso, inside)[0] is True and requires_mfa(contoso, outside)[0] is False


def test_it_answers_what_if_per_policy(sim, graph):
    c = graph(NORTHWIND)
    northwind = sim.tenant(NORTHWIND)
    bg = northwind.find_user(northwind.break_glass_upns[0])
    user = _user(sim, NORTHWIND, "disabled")
    pid = _create(
        c,
        {
            **MFA_ALL,
            "conditions": {
                **MFA_ALL["conditions"],
                "users": {"includeUsers": ["All"], "excludeUsers": [bg.id]},
            },
        },
    )
    results = {p["id"]: p for p in _what_if(c, user.id)}
    assert results[pid]["policyApplies"] is True and results[pid]["analysisReasons"] == "notSet"
    legacy = next(p for p in results.values() if p["displayName"] == "Block legacy authentication")
    assert legacy["policyApplies"] is False and legacy["analysisReasons"] == "clientApps"
    bg_results = {p["id"]: p for p in _what_if(c, bg.id)}
    assert bg_results[pid]["policyApplies"] is False and bg_results[pid]["analysisReasons"] == "users"
    applied = _what_if(c, bg.id, appliedPoliciesOnly=True)
    assert pid not in [p["id"] for p in applied]
    c.patch(f"/v1.0/identity/conditionalAccess/policies/{pid}", json={"state": "disabled"})
    assert {p["id"]: p for p in _what_if(c, user.id)}[pid]["analysisReasons"] == "policyNotEnabled"
    r = c.post("/beta/identity/conditionalAccess/evaluate", json={"signInIdentity": {"userId": user.id}})
    assert r.status_code == 400


def test_it_says_not_enough_information_for_location_policies_without_an_ip(sim, graph):
    c = graph(CONTOSO)
    loc = c.post(
        "/v1.0/identity/conditionalAccess/namedLocations",
        json={
            "@odata.type": "#microsoft.graph.ipNamedLocation",
            "displayName": "HQ",
            "isTrusted": True,
            "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.0/24"}],
        },
    ).json()
    pid = _create(
        c,
        {
            **MFA_ALL,
            "conditions": {
                **MFA_ALL["conditions"],
                "locations": {"includeLocations": ["All"], "excludeLocations": [loc["id"]]},
            },
        },
    )
    user = _user(sim, CONTOSO, "disabled")
    assert {p["id"]: p for p in _what_if(c, user.id)}[pid]["analysisReasons"] == "notEnoughInformation"
    inside = _what_if(c, user.id, signInConditions={"ipAddress": "203.0.113.9"})
    assert {p["id"]: p for p in inside}[pid]["analysisReasons"] == "location"
    outside = _what_if(c, user.id, signInConditions={"ipAddress": "198.51.100.1"})
    assert {p["id"]: p for p in outside}[pid]["policyApplies"] is True


def test_it_moves_enabled_users_to_enforced_when_they_register(sim):
    contoso = sim.tenant(CONTOSO)
    user = next(u for u in contoso.users if u.per_user_state == "enabled" and not u.is_mfa_registered)
    r = sim.admin_response(
        "POST", f"/_sim/tenants/{CONTOSO}/users/{user.id}/register", json={"methods": ["mobilePhone"]}
    )
    assert r.json()["perUserMfaState"] == "enforced" and r.json()["isMfaRegistered"] is True


def test_it_moves_registered_users_set_to_enabled_at_their_next_sign_in(sim, graph):
    # with Graph's own enabled -> enforced move held back (the enforce_after_s knob), a sign-in makes it
    sim.admin("POST", f"/_sim/tenants/{CONTOSO}/faults", json={"enforce_after_s": 3600})
    contoso = sim.tenant(CONTOSO)
    user = next(u for u in contoso.users if u.per_user_state == "disabled" and u.is_mfa_registered)
    c = graph(CONTOSO)
    c.patch(f"/beta/users/{user.id}/authentication/requirements", json={"perUserMfaState": "enabled"})
    assert user.per_user_state == "enabled"  # no sign-in yet
    r = sim.admin_response("POST", f"/_sim/tenants/{CONTOSO}/users/{user.id}/signin").json()
    assert r["mfaRequired"] is True and r["perUserMfaState"] == "enforced"
    unregistered = next(u for u in contoso.users if u.per_user_state == "enabled" and not u.is_mfa_registered)
    r = sim.admin_response("POST", f"/_sim/tenants/{CONTOSO}/users/{unregistered.id}/signin").json()
    assert r["registeredNow"] is True and r["perUserMfaState"] == "enforced"


def test_it_finds_a_coverage_gap_when_per_user_mfa_goes_before_the_policy(sim, graph):
    contoso = sim.tenant(CONTOSO)
    user = _user(sim, CONTOSO, "enforced")
    c = graph(CONTOSO)
    since = clock.monotonic()
    pid = _create(c, MFA_ALL)
    c.patch(f"/beta/users/{user.id}/authentication/requirements", json={"perUserMfaState": "disabled"})
    time.sleep(0.01)
    c.patch(f"/v1.0/identity/conditionalAccess/policies/{pid}", json={"state": "enabled"})
    gaps = coverage_gaps(contoso, since)
    assert [(g.user_id, g.end is not None) for g in gaps] == [(user.id, True)]
    assert gaps[0].end > gaps[0].start
    over_http = sim.admin("GET", f"/_sim/tenants/{CONTOSO}/coverage?since={since}")["gaps"]
    assert [g["user_id"] for g in over_http] == [user.id]
    assert requires_mfa(contoso, user, at=gaps[0].start)[0] is False
    assert requires_mfa(contoso, user, at=since)[0] is True


def test_it_reports_no_gap_when_the_policy_is_enforced_first(sim, graph):
    contoso = sim.tenant(CONTOSO)
    c = graph(CONTOSO)
    since = clock.monotonic()
    pid = _create(c, MFA_ALL)
    c.patch(f"/v1.0/identity/conditionalAccess/policies/{pid}", json={"state": "enabled"})
    for u in [u for u in contoso.users if u.per_user_state != "disabled" and not u.break_glass][:10]:
        c.patch(f"/beta/users/{u.id}/authentication/requirements", json={"perUserMfaState": "disabled"})
    assert coverage_gaps(contoso, since) == []


def test_it_ignores_break_glass_accounts_and_sees_sd_hand_off_gaps(sim, graph):
    fabrikam = sim.tenant(FABRIKAM)
    c = graph(FABRIKAM)
    since = clock.monotonic()
    pid = _create(c, MFA_ALL)
    c.patch("/v1.0/policies/identitySecurityDefaultsEnforcementPolicy", json={"isEnabled": False})
    c.patch(f"/v1.0/identity/conditionalAccess/policies/{pid}", json={"state": "enabled"})
    gaps = coverage_gaps(fabrikam, since)
    uncovered = {u.id for u in fabrikam.users if u.per_user_state == "disabled" and not u.break_glass}
    assert {g.user_id for g in gaps} == uncovered and all(g.end is not None for g in gaps)
    assert not any(fabrikam.by_id[g.user_id].break_glass for g in gaps)
