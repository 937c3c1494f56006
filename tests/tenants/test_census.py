"""The census command against the demo fleet over real HTTPS, and as a job on a real RQ worker."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from migrations_engine.graph import REQUIRED_ROLES
from tenants.models import CustomerTenant

pytestmark = pytest.mark.django_db(transaction=True)  # the census writes users from a second thread


def seed(sim, tmp_path):
    import json

    fleet_file = tmp_path / "fleet.json"
    fleet_file.write_text(json.dumps(sim.fleet))
    call_command("seed_demo", "--fleet", str(fleet_file))


def truth(sim, tenant_id):
    """What the simulator holds for a tenant, independently of the console."""
    state = sim.admin("GET", f"/_sim/tenants/{tenant_id}/state")
    counts = {"enabled": 0, "enforced": 0, "disabled": 0}
    for user in state["users"]:
        counts[user["perUserMfaState"]] += 1
    return state, counts


def test_it_records_every_demo_tenant_as_the_simulator_holds_it(demo_graph, tmp_path, capsys):
    seed(demo_graph, tmp_path)
    call_command("census", "--all", "--no-progress")
    table = capsys.readouterr().out
    by_id = {str(t.tenant_id): t for t in CustomerTenant.objects.select_related("consent")}
    assert len(by_id) == len(demo_graph.fleet["tenants"]) >= 6

    for entry in demo_graph.fleet["tenants"]:
        tenant = by_id[entry["tenant_id"]]
        assert entry["domain"] in table
        if not entry["consent_granted"]:
            assert tenant.census_status == "no_consent"
            assert tenant.consent.status == "pending"
            assert tenant.consent.missing_roles == list(REQUIRED_ROLES)
            # The same sentence as a run's and the drift watch's (graph.errors.ConsentMissing.in_words).
            assert "consent is not granted, or was withdrawn (AADSTS" in tenant.census_message
            continue
        state, counts = truth(demo_graph, entry["tenant_id"])
        missing = [r for r in REQUIRED_ROLES if r not in entry["roles"]]
        assert tenant.consent.missing_roles == missing
        assert tenant.licence == entry["licence"].lower()
        assert tenant.users_total == len(state["users"]) == entry["user_count"]
        assert tenant.security_defaults == entry["security_defaults"]
        if "Policy.Read.All" in entry["roles"]:
            assert (tenant.per_user_enabled, tenant.per_user_enforced, tenant.per_user_disabled) == (
                counts["enabled"],
                counts["enforced"],
                counts["disabled"],
            )
        if entry["licence"] == "Free":
            assert tenant.census_status == "free"
            assert "buy P1/P2" in tenant.census_message
            assert tenant.registration_known is None
        elif missing:
            assert tenant.census_status == "partial"
            assert all(role in tenant.census_message for role in missing)
        else:
            assert tenant.census_status == "ok", tenant.census_message
            registered = sum(1 for u in state["users"] if u.get("isMfaRegistered"))
            assert tenant.mfa_registered == registered
            # Each user's row carries the registration report's answer, filled in page by page.
            rows = {
                u.user_id: (u.mfa_registered, u.per_user_state)
                for u in tenant.census_users.filter(generation=tenant.census_generation)
            }
            assert rows == {
                u["id"]: (bool(u.get("isMfaRegistered")), u["perUserMfaState"]) for u in state["users"]
            }


def test_it_recognises_p1_inside_a_bundle(demo_graph, tmp_path):
    seed(demo_graph, tmp_path)
    bundle = next(
        e
        for e in demo_graph.fleet["tenants"]
        if e["licence"] == "P1"
        and "Business Premium" in (e["notes"] + e["display_name"])
        and e["consent_granted"]
    )
    call_command("census", "--tenant", bundle["domain"], "--no-progress")
    tenant = CustomerTenant.objects.get(tenant_id=bundle["tenant_id"])
    assert tenant.licence == "p1" and tenant.licence_plans == ["AAD_PREMIUM"]


def test_it_sees_the_microsoft_managed_policy_in_report_only(demo_graph, tmp_path):
    seed(demo_graph, tmp_path)
    call_command("census", "--all", "--no-progress")
    managed = [
        t
        for t in CustomerTenant.objects.all()
        if any(p["requiresMfaForAll"] for p in t.census_detail.get("policies") or [])
    ]
    assert managed and all(t.mfa_policy_state == "enabledForReportingButNotEnforced" for t in managed)


def test_it_names_an_unknown_tenant(demo_graph, tmp_path):
    seed(demo_graph, tmp_path)
    with pytest.raises(CommandError, match="nosuch.example.com"):
        call_command("census", "--tenant", "nosuch.example.com", "--no-progress")


def test_it_says_when_graph_is_not_configured(settings, tmp_path, demo_sim):
    seed(demo_sim, tmp_path)
    settings.GRAPH_CLIENT_ID = ""
    with pytest.raises(CommandError, match="GRAPH_CLIENT_ID"):
        call_command("census", "--all", "--no-progress")


@pytest.mark.django_db(transaction=True)
def test_it_runs_the_census_as_a_job_on_a_real_rq_worker(demo_graph, tmp_path, redis_url, settings):
    import django_rq
    from rq import SimpleWorker

    from migrations_engine.census.services import enqueue_census

    settings.RQ_QUEUES = {"default": {"URL": redis_url, "DEFAULT_TIMEOUT": 600}}
    seed(demo_graph, tmp_path)
    tenant = CustomerTenant.objects.get(
        licence="unknown",
        primary_domain=next(e["domain"] for e in demo_graph.fleet["tenants"] if e["licence"] == "P2"),
    )
    queue = django_rq.get_queue("default")
    queue.empty()
    job = enqueue_census(tenant.pk, actor="test")
    assert enqueue_census(tenant.pk, actor="test").id == job.id  # a second ask joins the queued one
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job.refresh()
    assert job.get_status() == "finished", job.exc_info
    tenant.refresh_from_db()
    assert tenant.census_status == "ok" and tenant.licence == "p2"
    assert job.meta["users_done"] == tenant.users_total


def test_it_pages_and_batches_a_large_tenant_under_the_documented_throttles(settings, tmp_path):
    """3,000 users: pages of 999, per-user states in $batches of 20, the simulator's limits on."""
    from graph_sim.testing import running_simulator
    from tests.conftest import point_settings_at

    with running_simulator(fleet="generated", tenants=1, users=3000, seed=7) as sim:
        point_settings_at(settings, sim)
        seed(sim, tmp_path)
        call_command("census", "--all", "--no-progress")
        entry = sim.fleet["tenants"][0]
        _, counts = truth(sim, entry["tenant_id"])
        log = sim.admin("GET", f"/_sim/requests?tenant={entry['tenant_id']}&limit=100000")["requests"]

    tenant = CustomerTenant.objects.get(tenant_id=entry["tenant_id"])
    assert tenant.census_status == "ok", tenant.census_message
    assert tenant.users_total == entry["user_count"] >= 3000
    assert (tenant.per_user_enabled, tenant.per_user_enforced, tenant.per_user_disabled) == (
        counts["enabled"],
        counts["enforced"],
        counts["disabled"],
    )
    user_pages = [r for r in log if r["method"] == "GET" and r["path"].split("?")[0].endswith("/v1.0/users")]
    batches = [r for r in log if r["path"].endswith("/$batch") and not r.get("batch_parent")]
    assert len(user_pages) == -(-entry["user_count"] // 999)
    assert len(batches) >= entry["user_count"] // 20
    # The registration report (5 requests per 10 s, its own limit) is read while the users are, not after
    # them, and every row it gave landed on the users' rows once they were written.
    reports = [r["seq"] for r in log if "userRegistrationDetails" in r["path"]]
    state_reads = [r["seq"] for r in log if r["path"].endswith("/requirements")]
    assert reports and state_reads and min(reports) < max(state_reads)
    current = tenant.census_users.filter(generation=tenant.census_generation)
    assert current.count() == tenant.users_total
    assert current.exclude(mfa_registered=None).count() == tenant.registration_known > 0
