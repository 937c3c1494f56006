"""Personas: a staff member sees and touches only the tenants granted to her, on every page and URL.

Eve is staff with every view/change permission, but is granted Contoso only. Woodgrove has a census,
a finished full run and audit rows. Nothing of Woodgrove may reach Eve, and nothing she sends may touch it.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from migrations_engine.models import AuditEvent, MigrationRun, RunItem
from migrations_engine.runs.services import start_run
from tenants.models import ConsentRequest, CustomerTenant
from tests.migrations_engine.console_helpers import client_for, staff_user
from tests.migrations_engine.pipeline_helpers import FAST, seed, tenant_named, work

pytestmark = pytest.mark.django_db(transaction=True)

RUN_BUTTONS = ("cancel", "retry", "resume", "rollback", "approve")


@pytest.fixture
def world(fast_graph, tmp_path, queue):
    from django.core.management import call_command

    seed(fast_graph, tmp_path)
    woodgrove, contoso = tenant_named("woodgrove"), tenant_named("contoso")
    call_command("census", "--tenant", woodgrove.primary_domain, "--no-progress")
    run = start_run(mode="full", tenants=[woodgrove], actor="boss", options=FAST)
    work(queue)
    eve = staff_user("eve", contoso)
    eve.user_permissions.add(
        *Permission.objects.filter(codename__in=["change_customertenant", "add_customertenant"])
    )
    woodgrove.refresh_from_db()
    return {"other": woodgrove, "mine": contoso, "run": run, "eve": eve}


def test_every_page_of_another_tenant_is_hidden(world):
    other, run = world["other"], world["run"]
    eve = client_for(world["eve"])
    item = RunItem.objects.get(run=run)
    row = AuditEvent.objects.filter(tenant=other).first()
    hidden = [
        f"/tenants/customertenant/{other.pk}/change/",
        f"/tenants/customertenant/{other.pk}/census.csv",
        f"/customers/{other.pk}/consent-link/",
        f"/migrations_engine/migrationrun/{run.pk}/change/",
        f"/migrations_engine/runitem/{item.pk}/change/",
        f"/runs/{run.pk}/progress.json",
        f"/migrations_engine/auditevent/{row.pk}/change/",
    ]
    for url in hidden:
        status = eve.get(url).status_code
        assert status in (403, 404) or (status == 302), (url, status)
        if status == 302:  # the admin's "doesn't exist" redirect lands on a list without it
            assert other.primary_domain not in eve.get(url, follow=True).content.decode(), url

    lists = [
        "/",
        "/tenants/customertenant/",
        "/migrations_engine/migrationrun/",
        "/migrations_engine/runitem/",
        "/migrations_engine/auditevent/",
        "/audit/verify/",
    ]
    for url in lists:
        page = eve.get(url)
        assert page.status_code == 200, url
        assert other.primary_domain not in page.content.decode() and other.display_name not in (
            page.content.decode()
        ), url
    for url in (
        "/tenants/customertenant/census.csv",
        "/migrations_engine/auditevent/export/csv/",
        f"/migrations_engine/auditevent/export/jsonl/?tenant__id__exact={other.pk}",
    ):
        body = b"".join(eve.get(url).streaming_content).decode()
        assert other.primary_domain not in body and str(other.tenant_id) not in body, url
    assert eve.get("/django-rq/").status_code in (302, 403)


def test_nothing_eve_sends_touches_another_tenant(world, queue):
    other, run = world["other"], world["run"]
    eve = client_for(world["eve"])
    audit_before = AuditEvent.objects.count()
    for button in RUN_BUTTONS:
        assert eve.post(f"/runs/{run.pk}/{button}/").status_code in (403, 404), button
    for action in (
        "census",
        "start_plan",
        "start_full",
        "rollback",
        "export_census",
        "recheck_consent_action",
    ):
        eve.post(
            "/tenants/customertenant/", {"action": action, "_selected_action": [other.pk], "confirm": "yes"}
        )
    assert eve.post(f"/customers/{other.pk}/consent-link/").status_code == 404
    assert MigrationRun.objects.count() == 1 and queue.count == 0
    assert not ConsentRequest.objects.filter(tenant=other).exists()
    assert AuditEvent.objects.count() == audit_before
    assert CustomerTenant.objects.get(pk=other.pk).census_at == other.census_at


def test_every_action_url_refuses_get_and_posts_without_csrf(world):
    run = world["run"]
    boss = staff_user("boss2", superuser=True)
    plain = client_for(boss)
    for button in RUN_BUTTONS:
        assert plain.get(f"/runs/{run.pk}/{button}/").status_code == 405, button
    strict = client_for(boss, csrf=True)
    posts = [f"/runs/{run.pk}/{button}/" for button in RUN_BUTTONS] + [
        "/tenants/customertenant/",
        f"/customers/{world['mine'].pk}/consent-link/",
        "/customers/add/",
    ]
    for url in posts:
        assert (
            strict.post(url, {"action": "start_full", "_selected_action": [world["mine"].pk]}).status_code
            == 403
        ), url
    assert MigrationRun.objects.count() == 1
