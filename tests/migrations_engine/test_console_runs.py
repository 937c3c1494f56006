"""The run page: live progress, per-user failures, plan diffs, the buttons, approval and access scoping."""

from __future__ import annotations

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from migrations_engine.models import AuditEvent, MigrationRun, RunItem
from migrations_engine.runs.pipeline import FORWARD
from migrations_engine.runs.runner import finalize_run, run_item
from migrations_engine.runs.services import approve_run, cancel_run, start_run
from tests.migrations_engine.console_helpers import client_for, csrf_post, staff_user
from tests.migrations_engine.pipeline_helpers import FAST, item_of, seed, sim_state, tenant_named, work

pytestmark = pytest.mark.django_db(transaction=True)

ACTIONS = ("cancel", "retry", "resume", "rollback", "approve")


def page_url(run: MigrationRun) -> str:
    return f"/migrations_engine/migrationrun/{run.pk}/change/"


def progress_url(run: MigrationRun) -> str:
    return f"/runs/{run.pk}/progress.json"


CONFIRM = {"confirm": "yes"}  # the confirmation page's "Yes" (runs/confirm.py)


def action_url(run: MigrationRun, action: str) -> str:
    return f"/runs/{run.pk}/{action}/"


def deny_one_user(sim, tenant) -> dict:
    """Make Graph refuse (403) the per-user change of one user who has per-user MFA on; returns that user."""
    users = [u for u in sim_state(sim, tenant)["users"] if not u["breakGlass"]]
    denied = next(u for u in users if u["perUserMfaState"] != "disabled")
    sim.add_fault_rules(
        str(tenant.tenant_id),
        {"method": "PATCH", "path_contains": f"{denied['id']}/authentication", "status": 403, "times": 0},
    )
    return denied


def test_it_reports_progress_as_a_run_advances_and_ends_verified(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    admin = staff_user("ops", tenant)
    client = client_for(admin)
    run = start_run(mode="full", tenants=[tenant], actor=admin, options=FAST)

    before = client.get(progress_url(run)).json()
    assert before["active"] is True and before["run"]["status"] == "pending"
    [item] = before["items"]
    assert item["status"] == "queued" and item["tenant"] == tenant.primary_domain
    assert [s["state"] for s in item["timeline"]] == ["pending"] * len(FORWARD)
    page = client.get(page_url(run)).content.decode()
    assert 'data-item-status="queued"' in page and 'data-run-active="true"' in page
    assert f'data-progress-url="/runs/{run.pk}/progress.json"' in page and "setTimeout(poll" in page
    assert 'data-step-key="verify_consent" data-step-state="pending"' in page

    work(queue)

    after = client.get(progress_url(run)).json()
    assert after["active"] is False and after["run"]["status"] == "succeeded"
    [item] = after["items"]
    assert item["status"] == "succeeded" and item["verdict"].startswith("Verified")
    assert {s["state"] for s in item["timeline"]} == {"done"} and item["steps_done"] == len(FORWARD)
    assert item["counters"]["users_total"] > 0
    page = client.get(page_url(run)).content.decode()
    assert 'data-item-status="succeeded"' in page and 'data-run-active="false"' in page
    assert 'data-field="verdict">Verified' in page
    assert 'data-step-key="disable_per_user" data-step-state="done"' in page


def test_it_lists_per_user_failures_and_retries_them_with_csrf(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    denied = deny_one_user(fast_graph, tenant)
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    assert item_of(run).status == "failed"
    client = client_for(staff_user("ops", tenant), csrf=True)

    page = client.get(page_url(run)).content.decode()
    assert 'data-item-status="failed"' in page and 'data-failed-users="1"' in page
    assert f'data-failed-upn="{denied["userPrincipalName"]}"' in page and "<td>403</td>" in page
    assert 'data-step-key="disable_per_user" data-step-state="failed"' in page
    assert "1 users could not be changed" in page
    assert 'data-action="retry"' in page and 'data-action="rollback"' in page
    assert 'data-action="cancel"' not in page and 'data-action="approve"' not in page

    fast_graph.clear_fault_rules(str(tenant.tenant_id))
    response = csrf_post(client, page_url(run), action_url(run, "retry"), CONFIRM)
    assert response.status_code == 302 and response.url == page_url(run)
    assert item_of(run).status == "queued"
    work(queue)
    assert item_of(run).status == "succeeded"
    assert AuditEvent.objects.filter(action="run.retried", actor="ops", run_id=run.pk).count() == 1


def test_it_shows_a_plan_runs_diff(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("fabrikam")
    run = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    page = client_for(staff_user("ops", tenant)).get(page_url(run)).content.decode()

    assert 'data-field="plan-diff"' in page
    for change in ("create policy", "turn security defaults off", "enable policy"):
        assert f'data-plan-change="{change}"' in page
    disable = next(d for d in item_of(run).plan_diff if d["step"] == "migrate")
    assert f"<td>{disable['users']}</td>" in page and str(disable["sample"][0]) in page
    assert 'data-action="rollback"' not in page  # a plan changed nothing


@pytest.mark.parametrize("action", ACTIONS)
def test_every_button_refuses_get_and_a_post_without_csrf(fast_graph, tmp_path, queue, action):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    client = client_for(staff_user("ops", tenant), csrf=True)

    assert client.get(action_url(run, action)).status_code == 405
    assert client.post(action_url(run, action)).status_code == 403  # no CSRF token

    run.refresh_from_db()
    assert (run.status, run.cancel_requested, item_of(run).attempt) == ("pending", False, 1)
    assert MigrationRun.objects.count() == 1


def test_cancel_stops_the_run_at_its_next_step(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    client = client_for(staff_user("ops", tenant), csrf=True)
    assert 'data-action="cancel"' in client.get(page_url(run)).content.decode()

    assert csrf_post(client, page_url(run), action_url(run, "cancel"), CONFIRM).status_code == 302
    work(queue)

    run.refresh_from_db()
    assert run.cancel_requested and run.status == "cancelled" and item_of(run).status == "cancelled"


def test_resume_requeues_an_item_whose_worker_died(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    # A worker claimed the item and died: it stays running, its heartbeat goes stale.
    stale = timezone.now() - datetime.timedelta(hours=1)
    RunItem.objects.filter(run=run).update(status="running", heartbeat_at=stale)
    client = client_for(staff_user("ops", tenant), csrf=True)
    assert 'data-action="resume"' in client.get(page_url(run)).content.decode()

    assert csrf_post(client, page_url(run), action_url(run, "resume"), CONFIRM).status_code == 302
    item = item_of(run)
    assert (item.status, item.attempt) == ("queued", 2)
    work(queue)  # the dead attempt's job finds the item re-queued and does nothing; attempt 2 runs it
    assert item_of(run).status == "succeeded"


def test_roll_back_starts_a_rollback_run(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    client = client_for(staff_user("ops", tenant), csrf=True)

    response = csrf_post(client, page_url(run), action_url(run, "rollback"), CONFIRM)

    rollback = MigrationRun.objects.get(rollback_of=run)
    assert response.status_code == 302 and response.url == page_url(rollback)
    assert rollback.mode == "rollback" and rollback.actor == "ops"
    work(queue)
    assert item_of(rollback).status == "succeeded"
    assert "Rolled back" in client.get(page_url(rollback)).content.decode() or item_of(rollback).verdict


def test_a_full_run_waits_for_a_second_staff_members_approval(settings, fast_graph, tmp_path, queue):
    settings.RUN_APPROVAL_REQUIRED = True
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    # Alice may both start and approve full runs; still, not her own.
    alice = staff_user("alice", tenant, role="Administrator")
    bob = staff_user("bob", tenant, role="Approver")
    run = start_run(mode="full", tenants=[tenant], actor=alice, options=FAST)

    assert run.status == "awaiting_approval" and len(queue) == 0
    alice_client = client_for(alice, csrf=True)
    page = alice_client.get(page_url(run)).content.decode()
    assert "Awaiting approval by a second staff member" in page and 'data-action="approve"' not in page
    # The starter cannot approve their own run, by the button or the service.
    response = csrf_post(alice_client, page_url(run), action_url(run, "approve"), CONFIRM)
    assert response.status_code == 302
    assert "a second staff member must approve it" in alice_client.get(page_url(run)).content.decode()
    with pytest.raises(ValidationError, match="second staff member"):
        approve_run(run, actor=alice)
    run.refresh_from_db()
    assert run.status == "awaiting_approval" and run.approved_by is None

    bob_client = client_for(bob, csrf=True)
    assert 'data-action="approve"' in bob_client.get(page_url(run)).content.decode()
    assert csrf_post(bob_client, page_url(run), action_url(run, "approve"), CONFIRM).status_code == 302

    run.refresh_from_db()
    assert (run.status, run.approved_by, run.approved_at is not None) == ("pending", bob, True)
    assert AuditEvent.objects.filter(action="run.approved", actor="bob", run_id=run.pk).count() == 1
    work(queue)
    run.refresh_from_db()
    assert run.status == "succeeded" and item_of(run).verdict.startswith("Verified")


def test_only_full_runs_wait_for_approval(settings, fast_graph, tmp_path, queue):
    settings.RUN_APPROVAL_REQUIRED = True
    seed(fast_graph, tmp_path)
    run = start_run(mode="plan", tenants=[tenant_named("fabrikam")], actor="test", options=FAST)
    assert run.status == "pending" and len(queue) == 1


def test_cancelling_an_unapproved_run_frees_its_tenants(settings, fast_graph, tmp_path, queue):
    settings.RUN_APPROVAL_REQUIRED = True
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    run = start_run(mode="full", tenants=[tenant], actor="alice", options=FAST)
    item = item_of(run)
    # Neither a stray job nor the finalizer moves a run that waits for approval.
    assert run_item(item.pk, item.rq_job_id) == "not claimed"
    assert finalize_run(run.pk) == "awaiting_approval"

    assert cancel_run(run, actor="alice") == 1

    run.refresh_from_db()
    assert (run.status, item_of(run).status) == ("cancelled", "cancelled") and run.finished_at
    with pytest.raises(ValidationError, match="not awaiting approval"):
        approve_run(run, actor=staff_user("bob", tenant))
    settings.RUN_APPROVAL_REQUIRED = False
    again = start_run(mode="full", tenants=[tenant], actor="alice", options=FAST)
    work(queue)
    assert item_of(again).status == "succeeded"


def test_a_staff_member_without_a_grant_sees_and_does_nothing(settings, fast_graph, tmp_path, queue):
    settings.RUN_APPROVAL_REQUIRED = True
    seed(fast_graph, tmp_path)
    woodgrove, fabrikam = tenant_named("woodgrove"), tenant_named("fabrikam")
    run = start_run(mode="full", tenants=[woodgrove, fabrikam], actor="alice", options=FAST)
    outsider = client_for(staff_user("mallory", tenant_named("contoso")))
    partial = client_for(staff_user("pat", woodgrove))

    assert outsider.get(page_url(run)).status_code == 404
    assert outsider.get(progress_url(run)).status_code == 404
    assert page_url(run) not in outsider.get("/migrations_engine/migrationrun/").content.decode()
    assert page_url(run) in partial.get("/migrations_engine/migrationrun/").content.decode()
    for action in ACTIONS:
        assert outsider.post(action_url(run, action)).status_code == 404, action
    # Granted one of the run's two tenants: sees that one only, and may not act on the run.
    page = partial.get(page_url(run)).content.decode()
    assert woodgrove.primary_domain in page and fabrikam.primary_domain not in page
    assert "1 more tenant of this run is not granted to you" in page
    assert [i["tenant"] for i in partial.get(progress_url(run)).json()["items"]] == [woodgrove.primary_domain]
    for action in ("cancel", "retry", "resume", "approve"):
        assert partial.post(action_url(run, action)).status_code == 403, action
    # Rollback touches only tenants with a complete snapshot: none here, so it is refused as such.
    assert partial.post(action_url(run, "rollback"), CONFIRM).status_code == 302
    assert MigrationRun.objects.count() == 1
    with pytest.raises(Exception, match="may not act on every tenant"):
        approve_run(run, actor=staff_user("pat2", woodgrove, role="Approver"))
    run.refresh_from_db()
    assert (run.status, run.cancel_requested) == ("awaiting_approval", False)
