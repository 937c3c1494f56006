"""The dashboard: fleet totals and SVG charts of the tenants the user may see; django-rq for superusers."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from migrations_engine.runs.services import start_run
from tenants.models import CustomerTenant
from tests.migrations_engine.console_helpers import client_for, staff_user
from tests.migrations_engine.pipeline_helpers import FAST, seed, tenant_named, work

pytestmark = pytest.mark.django_db(transaction=True)


def states(response) -> dict[str, int]:
    return {row["key"]: row["count"] for row in response.context["dashboard"]["state_counts"]}


def test_it_charts_the_fleet_from_real_runs(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    woodgrove, fabrikam, tailspin = (tenant_named(n) for n in ("woodgrove", "fabrikam", "tailspin"))
    CustomerTenant.objects.filter(pk=woodgrove.pk).update(
        census_at=timezone.now(),
        per_user_enabled=0,
        per_user_enforced=0,
        per_user_disabled=12,
        registration_known=10,
        mfa_registered=9,
    )
    CustomerTenant.objects.filter(pk=fabrikam.pk).update(
        census_at=timezone.now(), per_user_enabled=5, per_user_enforced=2, per_user_disabled=3
    )
    start_run(mode="full", tenants=[woodgrove, tailspin], actor="test", options=FAST)
    start_run(mode="plan", tenants=[fabrikam], actor="test", options=FAST)
    work(queue)
    client = client_for(staff_user("root", superuser=True))

    response = client.get("/")

    assert response.status_code == 200
    counts = states(response)
    # Woodgrove migrated; Tailspin's run failed before changing anything (Entra ID Free) and Fabrikam
    # was only planned: both are what they were, like every other tenant (no census yet: not started).
    assert counts["migrated"] == 1 and counts["not_started"] == CustomerTenant.objects.count() - 1
    dashboard = response.context["dashboard"]
    assert dashboard["runs"]["total"] == 2 and dashboard["runs"]["days"][-1]["count"] == 2
    per_user = {
        row["key"]: {s["key"]: s["value"] for s in row["segments"]} for row in dashboard["per_user"]["rows"]
    }
    assert per_user["before"] == {"enabled": 5, "enforced": 2, "disabled": 3}
    # The run's verify read every user back: Woodgrove's census is from after its migration.
    woodgrove.refresh_from_db()
    assert per_user["after"] == {"enabled": 0, "enforced": 0, "disabled": woodgrove.users_total}
    assert per_user["stale"] == {"enabled": 0, "enforced": 0, "disabled": 0}
    page = response.content.decode()
    pct = round(100.0 * woodgrove.mfa_registered / woodgrove.registration_known, 1)
    # Readiness is a histogram of tenants (one bar per tenth, never one per tenant) and the least ready.
    assert page.count('class="dash-chart"') == 3
    bucket = dashboard["readiness"]["buckets"][min(9, int(pct // 10))]
    assert bucket["count"] == 1 and f'data-bucket="{bucket["label"]}" data-count="1"' in page
    assert [t["display_name"] for t in dashboard["least_ready"]] == ["Woodgrove Bank"]
    # Counts by state are tiles linking to the fleet list filtered to that state.
    tile = r'href="/tenants/customertenant/\?migration=migrated" data-state="migrated">'
    tile += r'<span class="number">1<'
    assert re.search(tile, page) and ">Migrated (verified)</span>" in page
    assert 'id="django-rq-link"' in page
    assert "app-migrations_engine" not in page  # no app index: the dashboard's links stand for it


def test_a_staff_member_sees_only_granted_tenants_on_the_dashboard(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    woodgrove, fabrikam = tenant_named("woodgrove"), tenant_named("fabrikam")
    start_run(mode="full", tenants=[woodgrove], actor="test", options=FAST)
    start_run(mode="plan", tenants=[fabrikam], actor="test", options=FAST)
    work(queue)

    response = client_for(staff_user("ops", woodgrove)).get("/")

    assert response.context["dashboard"]["tenants"] == 1
    assert states(response)["migrated"] == 1 and states(response)["not_started"] == 0
    assert response.context["dashboard"]["runs"]["total"] == 1
    page = response.content.decode()
    assert "Woodgrove Bank" in page and "Fabrikam" not in page and "Contoso" not in page
    assert 'id="django-rq-link"' not in page


def test_django_rq_is_for_superusers_only(queue, db):
    tenant = CustomerTenant.objects.create(
        tenant_id="00000000-0000-0000-0000-000000000001", primary_domain="a.example", display_name="A"
    )
    assert client_for(staff_user("root", superuser=True)).get("/django-rq/").status_code == 200
    staff = client_for(staff_user("ops", tenant))
    for url in ("/django-rq/", "/django-rq/queues/0/", "/django-rq/stats.json", "/django-rq/workers/0/"):
        assert staff.get(url).status_code == 403, url
    anonymous = Client().get("/django-rq/")
    assert anonymous.status_code == 302 and anonymous.url.startswith("/login/")
