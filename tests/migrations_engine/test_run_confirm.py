"""Nothing irreversible on one click: every run button first answers with a page saying what will happen
to how many tenants and users; a cancelled or part-way rollback is finished from its own page, and the
run it rolled back says how far it got."""

from __future__ import annotations

import pytest

from migrations_engine.choices import RunStatus
from migrations_engine.models import AuditEvent, MigrationRun
from migrations_engine.runs.services import cancel_run, start_rollback, start_run
from tenants.choices import MigrationState
from tests.migrations_engine.console_helpers import client_for, csrf_post, staff_user
from tests.migrations_engine.pipeline_helpers import FAST, seed, tenant_named, work

pytestmark = pytest.mark.django_db(transaction=True)  # jobs are queued on commit


def page(run) -> str:
    return f"/migrations_engine/migrationrun/{run.pk}/change/"


def migrated(sim, tmp_path, queue, *names):
    seed(sim, tmp_path)
    tenants = [tenant_named(n) for n in names]
    run = start_run(mode="full", tenants=tenants, actor="test", options=FAST)
    work(queue)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    for tenant in tenants:
        tenant.refresh_from_db()  # its verify step read its users: the census counts them now
    return tenants, run


def test_roll_back_asks_first_saying_how_many_tenants_and_users(fast_graph, tmp_path, queue):
    tenants, run = migrated(fast_graph, tmp_path, queue, "woodgrove", "fabrikam")
    client = client_for(staff_user("ops", *tenants), csrf=True)
    rows_before = AuditEvent.objects.count()

    question = csrf_post(client, page(run), f"/runs/{run.pk}/rollback/")

    text = question.content.decode()
    users = sum(t.users_total for t in tenants)
    assert question.status_code == 200 and "Roll back run" in text
    assert f"2 tenants ({users} users) go back to the snapshot" in text and "Woodgrove Bank" in text
    assert MigrationRun.objects.count() == 1 and AuditEvent.objects.count() == rows_before  # nothing done
    done = csrf_post(client, page(run), f"/runs/{run.pk}/rollback/", {"confirm": "yes"})
    assert done.status_code == 302 and MigrationRun.objects.filter(rollback_of=run).count() == 1


def test_cancelling_a_rollback_warns_and_offers_to_let_it_finish(fast_graph, tmp_path, queue):
    tenants, run = migrated(fast_graph, tmp_path, queue, "woodgrove")
    back = start_rollback(run, actor="test")
    client = client_for(staff_user("ops", *tenants), csrf=True)

    question = csrf_post(client, page(back), f"/runs/{back.pk}/cancel/").content.decode()

    assert "leaves tenants part-way" in question and 'id="confirm-alternative"' in question
    assert "Let the rollback finish" in question
    back.refresh_from_db()
    assert not back.cancel_requested


def test_each_run_button_asks_before_it_acts(fast_graph, tmp_path, queue, settings):
    settings.RUN_APPROVAL_REQUIRED = True
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    waiting = start_run(mode="full", tenants=[tenant], actor="someone-else", options=FAST)
    client = client_for(staff_user("boss", tenant, role="Administrator"), csrf=True)
    for action, words in (("approve", "starts at once for 1 tenant"), ("cancel", "stop at their next step")):
        answer = csrf_post(client, page(waiting), f"/runs/{waiting.pk}/{action}/")
        assert answer.status_code == 200 and words in answer.content.decode(), action
        waiting.refresh_from_db()
        assert waiting.status == RunStatus.AWAITING_APPROVAL and not waiting.cancel_requested, action


def test_a_cancelled_rollback_is_finished_from_its_page_and_the_run_says_how_far(fast_graph, tmp_path, queue):
    tenants, run = migrated(fast_graph, tmp_path, queue, "woodgrove")
    back = start_rollback(run, actor="test")
    cancel_run(back, actor="test")
    work(queue)
    back.refresh_from_db()
    assert back.status == RunStatus.CANCELLED
    client = client_for(staff_user("ops", *tenants), csrf=True)
    original = client.get(page(run)).content.decode()
    assert f"run {back.pk}</a> (cancelled): <strong>partly, 0 of 1 tenants</strong>" in original
    rollback_page = client.get(page(back)).content.decode()
    assert 'data-action="finish-rollback"' in rollback_page

    question = csrf_post(client, page(back), f"/runs/{back.pk}/finish-rollback/")
    assert "Finish rollback run" in question.content.decode()
    done = csrf_post(client, page(back), f"/runs/{back.pk}/finish-rollback/", {"confirm": "yes"})
    assert done.status_code == 302
    work(queue)

    back.refresh_from_db()
    tenants[0].refresh_from_db()
    assert back.status == RunStatus.SUCCEEDED and tenants[0].migration_state == MigrationState.ROLLED_BACK
    assert "all 1 tenant" in client.get(page(run)).content.decode()
    assert AuditEvent.objects.filter(action="run.rollback_finished", run_id=back.pk).exists()
