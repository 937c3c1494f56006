"""A census started from the fleet list is followed on its progress page: each tenant waiting, reading,
then what it found, in words; only tenants the staff member may see; a malformed address changes nothing."""

from __future__ import annotations

import time

import pytest

from migrations_engine.census.services import enqueue_census
from tests.migrations_engine.console_helpers import client_for, staff_user
from tests.migrations_engine.pipeline_helpers import seed, tenant_named, work

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_tenant_goes_from_waiting_to_what_its_census_found(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    woodgrove, tailspin = tenant_named("woodgrove"), tenant_named("tailspin")
    since = time.time()
    for tenant in (woodgrove, tailspin):
        enqueue_census(tenant.pk, actor="test")
    client = client_for(staff_user("ops", woodgrove, tailspin))
    url = f"/census/progress.json?tenants={woodgrove.pk},{tailspin.pk}&since={since}"

    before = client.get(url).json()
    assert before["active"] and before["waiting"] == 2
    assert {t["words"] for t in before["tenants"]} == {"waiting in the queue"}

    work(queue)
    after = client.get(url).json()
    assert not after["active"] and after["done"] == 2
    rows = {t["name"]: t for t in after["tenants"]}
    woodgrove.refresh_from_db()
    assert rows["Woodgrove Bank"]["words"] == "Complete" and rows["Woodgrove Bank"]["tone"] == "ok"
    assert rows["Woodgrove Bank"]["detail"].startswith(
        f"{woodgrove.users_total} users, per-user MFA still on"
    )
    assert rows["Tailspin Toys"]["words"] == "Entra ID Free: buy P1/P2"
    page = client.get(url.replace("progress.json", "progress/")).content.decode()
    assert "2</strong> of 2 tenants read" in page


def test_only_granted_tenants_show_and_bad_addresses_are_refused(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    woodgrove, contoso = tenant_named("woodgrove"), tenant_named("contoso")
    client = client_for(staff_user("ops", woodgrove))
    seen = client.get(f"/census/progress.json?tenants={woodgrove.pk},{contoso.pk}&since=0").json()
    assert [t["name"] for t in seen["tenants"]] == ["Woodgrove Bank"]
    for query in ("", "?tenants=1", "?tenants=x&since=0", f"?tenants={woodgrove.pk}&since=soon", "?since=0"):
        assert client.get(f"/census/progress.json{query}").status_code == 404, query
