"""The census as staff see it in the console's tenant list."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db(transaction=True)  # the census writes users from a second thread


def test_it_shows_each_tenants_census_in_the_changelist(client, demo_graph, tmp_path):
    fleet_file = tmp_path / "fleet.json"
    fleet_file.write_text(json.dumps(demo_graph.fleet))
    call_command("seed_demo", "--fleet", str(fleet_file))
    call_command("census", "--all", "--no-progress")
    staff = get_user_model().objects.create_superuser("staff", "", "pw-for-tests-only")
    client.force_login(staff)

    page = client.get("/tenants/customertenant/").content.decode()
    for entry in demo_graph.fleet["tenants"]:
        assert entry["display_name"] in page
    assert "Entra ID Free" in page and "Entra ID P1" in page and "Entra ID P2" in page
    assert "Not granted yet" in page  # the tenant without consent
    assert "Granted, permissions missing" in page and "Policy.ReadWrite.AuthenticationMethod" in page

    free_only = client.get("/tenants/customertenant/?licence__exact=free").content.decode()
    free = [e for e in demo_graph.fleet["tenants"] if e["licence"] == "Free"]
    others = [e for e in demo_graph.fleet["tenants"] if e["licence"] != "Free"]
    assert all(e["display_name"] in free_only for e in free)
    assert not any(e["display_name"] in free_only for e in others)


def test_it_asks_for_a_login_first(client):
    response = client.get("/tenants/customertenant/")
    assert response.status_code == 302 and "/login/" in response["Location"]
