"""The optional steps (trusted IPs → named location, remember MFA → sign-in frequency) and the
authentication-strength grant: plan, apply, verify, re-run, lost answers, rollback and drift, on real
rq workers against the simulator over HTTPS."""

from __future__ import annotations

import ipaddress
import time
from collections import Counter

import httpx
import pytest

from migrations_engine.choices import AuditKind, AuditOutcome, DriftKind
from migrations_engine.drift.services import check_tenant
from migrations_engine.graph.resources.grants import STRENGTH_MFA, STRENGTH_PHISHING_RESISTANT
from migrations_engine.graph.resources.mfa_policy import POLICY_NAME
from migrations_engine.graph.resources.session_policy import SESSION_POLICY_NAME
from migrations_engine.models import AuditEvent, DriftFinding
from migrations_engine.runs.services import resume_stalled, start_rollback, start_run
from tests.migrations_engine.pipeline_helpers import (
    FAST,
    audit_matches_simulator,
    coverage_gaps,
    effective_writes,
    item_of,
    seed,
    sim_clock,
    sim_log,
    sim_state,
    tenant_named,
    work,
    worker_process,
)

pytestmark = pytest.mark.django_db(transaction=True)

LOCATION = "Office IPs"
TYPED = ["203.0.113.0/24", "2001:db8:abcd::/48"]
LEGACY = {
    "trustedIps": {"isEnabled": True, "ipRanges": ["198.51.100.16/28"]},
    "skipMfaForFederatedUsers": False,
    "rememberMfaOnTrustedDevices": {"isEnabled": True, "days": 14},
    "appPasswords": {"isAllowed": False},
}
LOCATIONS_PATH = "/v1.0/identity/conditionalAccess/namedLocations"
POLICIES_PATH = "/v1.0/identity/conditionalAccess/policies"


def options(**extra) -> dict:
    return {
        **FAST,
        "named_location": {"cidrs": TYPED, "from_legacy": True, "display_name": LOCATION},
        "sign_in_frequency": {"value": 7, "type": "days"},
        **extra,
    }


def set_legacy(sim, tenant, body: dict | None) -> None:
    """The tenant's legacy MFA service settings (None: Graph answers like an unknown segment)."""
    path = f"/_sim/tenants/{tenant.tenant_id}/mfa-service-policy"
    if body is None:
        sim.admin("DELETE", path)
    else:
        sim.admin("POST", path, json=body)


def graph_call(sim, tenant, method: str, path: str, body: dict | None = None) -> httpx.Response:
    """A Graph call made by someone else (an admin in the portal), outside the console."""
    with sim.graph(str(tenant.tenant_id)) as client:
        for _ in range(50):  # Conditional Access answers 429 past 1 request/s (no Retry-After)
            response = client.request(method, path, json=body)
            if response.status_code != 429:
                break
            time.sleep(0.1)
    response.raise_for_status()
    return response


def run_and_work(queue, tenant, mode: str = "full", **opts):
    run = start_run(mode=mode, tenants=[tenant], actor="test", options=opts or options())
    work(queue)
    return run, item_of(run)


def ours(state: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """(our named locations, our session policies, our main policies) in a simulator state."""
    return (
        [loc for loc in state["named_locations"] if loc["displayName"] == LOCATION],
        [p for p in state["policies"] if p["displayName"] == SESSION_POLICY_NAME],
        [p for p in state["policies"] if p["displayName"] == POLICY_NAME],
    )


def timeline(sim, tenant) -> list[dict]:
    return sim.admin("GET", f"/_sim/tenants/{tenant.tenant_id}/timeline")["events"]


def writes_to(sim, tenant, path: str, since_seq: int = 0) -> Counter:
    return Counter(
        r["method"] for r in sim_log(sim, tenant, since_seq) if r.get("write_effective") and path in r["path"]
    )


def last_seq(sim, tenant) -> int:
    return max((r["seq"] for r in sim_log(sim, tenant)), default=0)


# --- plan ------------------------------------------------------------------------------------------


def test_a_plan_records_the_location_the_session_policy_and_the_strength_and_writes_nothing(
    fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    set_legacy(fast_graph, tenant, LEGACY)
    _, item = run_and_work(queue, tenant, "plan", **options(grant="mfa_strength"))
    assert item.status == "succeeded", item.failure_reason
    assert effective_writes(fast_graph, tenant) == []
    assert [
        r for r in sim_log(fast_graph, tenant) if r["method"] not in ("GET",) and "$batch" not in r["path"]
    ] == []
    diff = {d["change"]: d for d in item.plan_diff}
    assert diff["create named location"]["ranges"] == [*TYPED, "198.51.100.16/28"]
    assert diff["create sign-in frequency policy"]["frequency"] == "every 7 days"
    assert "enable sign-in frequency policy" in diff
    planned = {e.action: e for e in AuditEvent.objects.filter(tenant=tenant, outcome=AuditOutcome.DRY_RUN)}
    assert {"named_location.create", "session_policy.create", "session_policy.enable"} <= set(planned)
    assert planned["policy.create"].request_body["grantControls"]["authenticationStrength"] == {
        "id": STRENGTH_MFA
    }
    assert not AuditEvent.objects.filter(tenant=tenant, outcome=AuditOutcome.INTENT).exists()


@pytest.mark.parametrize(
    ("legacy", "said"),
    [
        (None, "does not serve /beta/policies/mfaServicePolicy"),
        ({"legacyThing": {"x": 1}}, "an unknown shape"),
    ],
    ids=["absent", "unknown-shape"],
)
def test_without_usable_mfa_service_settings_the_typed_ranges_are_used_and_the_message_says_so(
    fast_graph, tmp_path, queue, legacy, said
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    set_legacy(fast_graph, tenant, legacy)
    _, item = run_and_work(queue, tenant, "plan", **options(sign_in_frequency=None))
    assert item.status == "succeeded", item.failure_reason
    step = next(e for e in item.step_log if e["key"] == "named_location")
    assert said in step["message"] and f"using the {len(TYPED)} typed ranges only" in step["message"]
    assert next(d for d in item.plan_diff if d["change"] == "create named location")["ranges"] == TYPED


def test_fabrikam_has_no_mfa_service_settings_so_remember_mfa_days_cannot_be_taken_from_them(
    fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("fabrikam")
    _, item = run_and_work(
        queue, tenant, "plan", **options(named_location=None, sign_in_frequency={"from_legacy": True})
    )
    assert item.status == "failed"
    assert item.step_log[-1]["key"] == "sign_in_frequency"
    assert "Start the run with a sign-in frequency value" in item.failure_reason
    assert "could not be read" in item.failure_reason


def test_bad_trusted_ips_in_the_mfa_service_settings_are_skipped_and_reported(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    bad = ["10.0.0.1", "300.1.1.0/24", "10.0.0.0/33", {"cidrAddress": "10.1.2.3/24"}, 42, "0.0.0.0/0"]
    set_legacy(
        fast_graph,
        tenant,
        {
            **LEGACY,
            "trustedIps": {"isEnabled": True, "ipRanges": ["198.51.100.16/28", *bad, "2001:db8:1::/64"]},
        },
    )
    _, item = run_and_work(queue, tenant, "plan", **options(sign_in_frequency={"from_legacy": True}))
    assert item.status == "succeeded", item.failure_reason
    ranges = next(d for d in item.plan_diff if d["change"] == "create named location")["ranges"]
    assert ranges == [*TYPED, "198.51.100.16/28", "2001:db8:1::/64"]
    message = next(e for e in item.step_log if e["key"] == "named_location")["message"]
    assert f"skipped {len(bad)} unusable" in message and "did you mean 10.1.2.0/24" in message
    assert any("skipped 6 unusable" in w for w in item.state["warnings"])
    # the remember-MFA days came from the same settings
    assert next(d for d in item.plan_diff if d["change"] == "create sign-in frequency policy")[
        "frequency"
    ] == ("every 14 days")


def test_a_policy_that_excludes_trusted_locations_from_mfa_is_warned_about(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    graph_call(
        fast_graph,
        tenant,
        "POST",
        POLICIES_PATH,
        {
            "displayName": "MFA for Exchange, not at the office",
            "state": "enabled",
            "conditions": {
                "users": {"includeUsers": ["All"]},
                "applications": {"includeApplications": ["00000002-0000-0ff1-ce00-000000000000"]},
                "locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]},
                "clientAppTypes": ["all"],
            },
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
        },
    )
    _, item = run_and_work(queue, tenant, "plan", **options())
    assert item.status == "succeeded", item.failure_reason
    message = next(e for e in item.step_log if e["key"] == "named_location")["message"]
    assert "WARNING: 1 MFA policies exclude trusted locations" in message
    assert "use the trusted location for sign-in frequency instead" in message
    assert any("MFA for Exchange, not at the office" in w for w in item.state["warnings"])
    session_message = next(e for e in item.step_log if e["key"] == "sign_in_frequency")["message"]
    assert "applies at every location" in session_message


# --- apply, verify, rollback -----------------------------------------------------------------------


def test_it_creates_one_trusted_location_and_a_session_policy_enabled_with_the_strength_policy_and_rolls_back(
    fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    set_legacy(fast_graph, tenant, LEGACY)
    had_none = {u["id"] for u in sim_state(fast_graph, tenant)["users"] if u["perUserMfaState"] == "disabled"}
    t0 = sim_clock(fast_graph)
    run, item = run_and_work(queue, tenant, **options(grant="mfa_strength"))
    assert item.status == "succeeded", item.failure_reason
    assert "sign-in frequency every 7 days enforced" in item.verdict
    assert f"named location '{LOCATION}' trusted with 3 ranges" in item.verdict
    state = sim_state(fast_graph, tenant)
    [location], [session], [main] = ours(state)
    assert location["isTrusted"] is True
    assert {(r["@odata.type"], r["cidrAddress"]) for r in location["ipRanges"]} == {
        ("#microsoft.graph.iPv4CidrRange", "203.0.113.0/24"),
        ("#microsoft.graph.iPv6CidrRange", "2001:db8:abcd::/48"),
        ("#microsoft.graph.iPv4CidrRange", "198.51.100.16/28"),
    }
    # the MFA policy asks for the built-in MFA strength, not the mfa control, and for every location
    assert main["state"] == "enabled"
    assert main["grantControls"]["authenticationStrength"]["id"] == STRENGTH_MFA
    assert "mfa" not in main["grantControls"]["builtInControls"]
    assert not main["conditions"].get("locations")
    # the session policy: same users (break-glass excluded), every app and location, no grant, enabled
    assert session["state"] == "enabled" and not session["conditions"].get("locations")
    sif = session["sessionControls"]["signInFrequency"]
    assert (sif["isEnabled"], sif["value"], sif["type"], sif["frequencyInterval"]) == (
        True,
        7,
        "days",
        "timeBased",
    )
    assert not (session.get("grantControls") or {}).get("builtInControls")
    assert session["conditions"]["users"]["excludeUsers"] == main["conditions"]["users"]["excludeUsers"]
    assert session["conditions"]["users"]["excludeGroups"] == main["conditions"]["users"]["excludeGroups"]
    # report-only first, enabled only right after the MFA policy read back enabled
    events = [e for e in timeline(fast_graph, tenant) if e["kind"] == "policy"]
    session_events = [e for e in events if e["subject"] == session["id"]]
    assert (
        session_events[0]["old"] is None
        and session_events[0]["new"]["state"] == "enabledForReportingButNotEnforced"
    )
    main_enabled = next(
        e["seq"] for e in events if e["subject"] == main["id"] and e["new"]["state"] == "enabled"
    )
    session_enabled = next(e["seq"] for e in session_events if e["new"]["state"] == "enabled")
    assert session_enabled > main_enabled
    # What-If: the strength policy still requires MFA of an ordinary user; nobody had a gap
    user = next(u for u in state["users"] if not u["breakGlass"] and u["userType"] == "Member")
    verdict = fast_graph.admin("GET", f"/_sim/tenants/{tenant.tenant_id}/users/{user['id']}/requires-mfa")
    assert verdict["mfaRequired"] and f"conditionalAccess:{main['id']}" in verdict["reasons"]
    assert coverage_gaps(fast_graph, tenant, since=t0) == []
    audit_matches_simulator(fast_graph, tenant)
    assert item.state["named_location_created"] and item.state["session_policy_created"]
    assert item.state["session_policy_baseline"]["id"] == session["id"]

    t1 = sim_clock(fast_graph)
    rollback = start_rollback(run, actor="test")
    work(queue)
    rb = item_of(rollback)
    assert rb.status == "succeeded", rb.failure_reason
    assert "sign-in frequency policy deleted" in rb.verdict and "named location deleted" in rb.verdict
    after = sim_state(fast_graph, tenant)
    assert ours(after)[:2] == ([], [])
    assert ours(after)[2][0]["state"] == "disabled"
    # Only users who had no per-user MFA before the run are without MFA again (as the snapshot had them).
    assert {g["user_id"] for g in coverage_gaps(fast_graph, tenant, since=t1)} <= had_none
    audit_matches_simulator(fast_graph, tenant)


def test_a_re_run_with_the_same_options_changes_nothing(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    set_legacy(fast_graph, tenant, LEGACY)
    _, first = run_and_work(queue, tenant)
    assert first.status == "succeeded", first.failure_reason
    seq = last_seq(fast_graph, tenant)
    _, second = run_and_work(queue, tenant)
    assert second.status == "succeeded", second.failure_reason
    assert [r for r in sim_log(fast_graph, tenant, seq) if r.get("write_effective")] == []
    assert [len(found) for found in ours(sim_state(fast_graph, tenant))] == [1, 1, 1]
    assert "the named location" in next(e for e in second.step_log if e["key"] == "named_location")["message"]


def test_lost_create_answers_are_found_by_listing_and_nothing_is_created_twice(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    tid = str(tenant.tenant_id)
    set_legacy(fast_graph, tenant, LEGACY)
    fast_graph.admin("POST", f"/_sim/tenants/{tid}/faults", json={"replication_lag_s": 3})
    fast_graph.add_fault_rules(
        tid,
        {"method": "POST", "path_contains": "conditionalAccess/namedLocations", "drop_after_commit": True},
        {
            "method": "POST",
            "path_contains": "conditionalAccess/policies",
            "body_contains": {"displayName": SESSION_POLICY_NAME},
            "drop_after_commit": True,
        },
    )
    t0 = sim_clock(fast_graph)
    _, item = run_and_work(queue, tenant)
    assert item.status == "succeeded", item.failure_reason
    assert [rule["fired"] for rule in fast_graph.fault_rules(tid)] == [1, 1]
    assert [len(found) for found in ours(sim_state(fast_graph, tenant))] == [1, 1, 1]
    assert writes_to(fast_graph, tenant, LOCATIONS_PATH)["POST"] == 1
    assert item.state["named_location_created"] and item.state["session_policy_created"]
    settled = AuditEvent.objects.filter(tenant=tenant, kind=AuditKind.RECONCILIATION).values_list(
        "intent__action", flat=True
    )
    assert {"named_location.create", "session_policy.create"} <= set(settled)
    assert coverage_gaps(fast_graph, tenant, since=t0) == []
    audit_matches_simulator(fast_graph, tenant)


def test_an_existing_location_is_merged_and_put_back_on_rollback(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    set_legacy(fast_graph, tenant, None)
    existing = graph_call(
        fast_graph,
        tenant,
        "POST",
        LOCATIONS_PATH,
        {
            "@odata.type": "#microsoft.graph.ipNamedLocation",
            "displayName": LOCATION,
            "isTrusted": False,
            "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "192.0.2.0/24"}],
        },
    ).json()
    run, item = run_and_work(queue, tenant)
    assert item.status == "succeeded", item.failure_reason
    [location], _, _ = ours(sim_state(fast_graph, tenant))
    assert location["id"] == existing["id"] and location["isTrusted"] is True
    assert sorted(r["cidrAddress"] for r in location["ipRanges"]) == sorted(["192.0.2.0/24", *TYPED])
    message = next(e for e in item.step_log if e["key"] == "named_location")["message"]
    assert "2 ranges added to its 1 (none removed)" in message and "marked trusted" in message
    assert item.state["named_location_before"]["isTrusted"] is False
    assert writes_to(fast_graph, tenant, LOCATIONS_PATH) == Counter(
        {"POST": 1, "PATCH": 1}
    )  # ours: the PATCH

    rollback = start_rollback(run, actor="test")
    work(queue)
    rb = item_of(rollback)
    assert rb.status == "succeeded", rb.failure_reason
    [location], sessions, _ = ours(sim_state(fast_graph, tenant))
    assert location["isTrusted"] is False and [r["cidrAddress"] for r in location["ipRanges"]] == [
        "192.0.2.0/24"
    ]
    assert sessions == []
    assert "named location as before the run" in rb.verdict


def test_when_the_session_policy_cannot_be_enabled_the_mfa_policy_stays_enabled_and_the_run_says_so(
    fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    tid = str(tenant.tenant_id)
    made = graph_call(
        fast_graph,
        tenant,
        "POST",
        POLICIES_PATH,
        {
            "displayName": SESSION_POLICY_NAME,
            "state": "disabled",
            "conditions": {
                "users": {"includeUsers": ["All"]},
                "applications": {"includeApplications": ["All"]},
            },
            "sessionControls": {"signInFrequency": {"isEnabled": True, "value": 30, "type": "days"}},
        },
    ).json()
    fast_graph.add_fault_rules(
        tid,
        {
            "method": "PATCH",
            "path_contains": made["id"],
            "body_contains": {"state": "enabled"},
            "status": 403,
            "times": 0,
        },
    )
    t0 = sim_clock(fast_graph)
    _, item = run_and_work(queue, tenant, **options(named_location=None, settle_seconds=6))
    assert item.status == "failed"
    assert item.step_log[-1]["key"] == "verify"
    assert "sign-in frequency policy is enabledForReportingButNotEnforced" in item.failure_reason
    assert "enabling failed" in item.failure_reason
    cut_over = next(e for e in item.step_log if e["key"] == "cut_over")
    assert cut_over["status"] == "done" and "could NOT be enabled" in cut_over["message"]
    state = sim_state(fast_graph, tenant)
    _, [session], [main] = ours(state)
    assert main["state"] == "enabled"
    # adopted and fixed in report-only (disabled → report-only, 30 → 7 days, break-glass excluded)
    assert session["state"] == "enabledForReportingButNotEnforced"
    assert session["sessionControls"]["signInFrequency"]["value"] == 7
    assert set(item.state["break_glass_ids"]) <= set(session["conditions"]["users"]["excludeUsers"])
    assert all(u["perUserMfaState"] == "disabled" for u in state["users"] if not u["breakGlass"])
    assert coverage_gaps(fast_graph, tenant, since=t0) == []
    assert any("could not be enabled" in w for w in item.state["warnings"])


# --- authentication strength -----------------------------------------------------------------------


def test_an_adopted_policy_gets_the_strength_in_report_only_and_an_enforced_one_is_never_weakened(
    fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("northwind")  # a Microsoft-managed MFA policy in report-only, mfa control
    managed = next(p for p in sim_state(fast_graph, tenant)["policies"] if "Multifactor" in p["displayName"])
    t0 = sim_clock(fast_graph)
    plain = {**FAST}
    _, item = run_and_work(queue, tenant, **plain, grant="phishing_resistant")
    assert item.status == "succeeded", item.failure_reason
    policy = next(p for p in sim_state(fast_graph, tenant)["policies"] if p["id"] == managed["id"])
    assert policy["state"] == "enabled"
    assert policy["grantControls"]["authenticationStrength"]["id"] == STRENGTH_PHISHING_RESISTANT
    assert policy["grantControls"]["builtInControls"] == []
    changes = [
        e for e in timeline(fast_graph, tenant) if e["kind"] == "policy" and e["subject"] == managed["id"]
    ]
    strength_set = next(e for e in changes if (e["new"]["grantControls"] or {}).get("authenticationStrength"))
    assert strength_set["old"]["state"] == "enabledForReportingButNotEnforced"  # fixed before enforcing
    assert coverage_gaps(fast_graph, tenant, since=t0) == []

    seq = last_seq(fast_graph, tenant)
    _, again = run_and_work(queue, tenant, **plain)  # grant "mfa" (the default) against the enforced policy
    assert again.status == "succeeded", again.failure_reason
    policy = next(p for p in sim_state(fast_graph, tenant)["policies"] if p["id"] == managed["id"])
    assert policy["grantControls"]["authenticationStrength"]["id"] == STRENGTH_PHISHING_RESISTANT
    assert writes_to(fast_graph, tenant, POLICIES_PATH, seq) == Counter()
    assert any("never weakens an enforced policy" in w for w in again.state["warnings"])
    assert "never weakens" in again.verdict


# --- drift -----------------------------------------------------------------------------------------


def test_the_drift_watch_names_a_changed_sign_in_frequency_and_a_removed_range(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    set_legacy(fast_graph, tenant, None)
    _, item = run_and_work(queue, tenant)
    assert item.status == "succeeded", item.failure_reason
    assert check_tenant(tenant, actor="test").status == "clean"
    session_id, location_id = item.state["session_policy_id"], item.state["named_location_id"]
    fast_graph.admin(
        "POST",
        f"/_sim/tenants/{tenant.tenant_id}/policies/{session_id}",
        json={"sessionControls": {"signInFrequency": {"value": 90}}},
    )
    graph_call(
        fast_graph,
        tenant,
        "PATCH",
        f"{LOCATIONS_PATH}/{location_id}",
        {
            "@odata.type": "#microsoft.graph.ipNamedLocation",
            "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": TYPED[0]}],
        },
    )
    check = check_tenant(tenant, actor="test")
    assert check.status == "drift"
    finding = DriftFinding.objects.get(tenant=tenant, kind=DriftKind.POLICY_CHANGED, resolved_at__isnull=True)
    assert set(finding.detail["fields"]) == {"sign-in frequency", "named location ranges"}
    assert finding.detail["changes"]["sign-in frequency"] == {"was": "7 days", "now": "90 days"}
    removed = finding.detail["changes"]["named location ranges"]["removed"]
    assert removed == [str(ipaddress.ip_network(TYPED[1]))]
    assert "sign-in frequency policy or trusted named location" in finding.summary


# --- a worker killed between a write and its outcome -------------------------------------------------


@pytest.mark.parametrize(
    "point",
    [
        "after_write:named_location.create",
        "after_write:session_policy.create",
        "after_write:session_policy.enable",
    ],
)
def test_a_worker_killed_after_an_optional_write_resumes_without_writing_it_twice(
    fast_graph, tmp_path, queue, redis_url, point
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    set_legacy(fast_graph, tenant, LEGACY)
    t0 = sim_clock(fast_graph)
    run = start_run(mode="full", tenants=[tenant], actor="test", options=options())
    assert worker_process(redis_url, crash_points=point) == 137, f"no crash at {point}"
    assert resume_stalled(run, actor="test") == 1
    assert worker_process(redis_url) == 0
    item = item_of(run)
    assert item.status == "succeeded", (point, item.failure_reason, item.traceback)
    [location], [session], _ = ours(sim_state(fast_graph, tenant))
    assert session["state"] == "enabled" and location["isTrusted"] is True
    assert writes_to(fast_graph, tenant, LOCATIONS_PATH) == Counter({"POST": 1})
    session_writes = Counter(
        (r["method"], r["path"].rsplit("/", 1)[-1] == session["id"])
        for r in effective_writes(fast_graph, tenant)
        if POLICIES_PATH in r["path"]
    )
    assert session_writes[("PATCH", True)] == 1  # enabled once
    assert [p["displayName"] for p in sim_state(fast_graph, tenant)["policies"]].count(
        SESSION_POLICY_NAME
    ) == 1
    action = point.removeprefix("after_write:")
    unknown = AuditEvent.objects.filter(tenant=tenant, action=action, outcomes__outcome=AuditOutcome.UNKNOWN)
    assert unknown.exists()
    assert AuditEvent.objects.filter(kind=AuditKind.RECONCILIATION, intent__in=unknown).exists()
    assert coverage_gaps(fast_graph, tenant, since=t0) == []
    audit_matches_simulator(fast_graph, tenant)
