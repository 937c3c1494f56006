"""The census CSVs (a tenant's, the fleet's, the fleet action's) never hand a spreadsheet a formula that a
customer tenant put in a user's displayName or UPN: the census reads them from the simulator over HTTPS."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command

from tests.migrations_engine.console_helpers import client_for, staff_user
from tests.migrations_engine.pipeline_helpers import seed, tenant_named
from tests.test_csv_safe import FORMULAS

pytestmark = pytest.mark.django_db(transaction=True)  # the census writes users from a second thread

WOODGROVE = "woodgrove.onmicrosoft.com"
CHANGELIST = "/tenants/customertenant/"
# UPNs carry the characters a UPN can start with; tab and carriage return only come in display names.
UPN_PREFIXES = ("=", "+", "-", "@")


def add_users(sim) -> dict[str, dict]:
    """A user per formula prefix, and a harmless one, added in the portal behind Graph's back."""
    users = {}
    for n, (prefix, formula) in enumerate([*FORMULAS.items(), ("", "contoso")]):
        upn = f"{prefix if prefix in UPN_PREFIXES else ''}formula{n}@{WOODGROVE}"
        body = {"userPrincipalName": upn, "displayName": formula}
        users[prefix] = sim.admin("POST", f"/_sim/tenants/{WOODGROVE}/users", body)
    return users


def rows_by_id(response) -> dict[str, dict]:
    assert response.status_code == 200, response.status_code
    text = b"".join(response.streaming_content).decode()
    return {row["user_id"]: row for row in csv.DictReader(io.StringIO(text, newline=""))}


def test_every_census_csv_escapes_display_names_and_upns_that_start_like_a_formula(fast_graph, tmp_path):
    seed(fast_graph, tmp_path)
    users = add_users(fast_graph)
    call_command("census", "--tenant", WOODGROVE, "--no-progress")
    woodgrove = tenant_named("woodgrove")
    client = client_for(staff_user("root", superuser=True))

    action = {"action": "export_census", "_selected_action": [woodgrove.pk]}
    downloads = {
        "tenant": client.get(f"{CHANGELIST}{woodgrove.pk}/census.csv"),
        "fleet": client.get(f"{CHANGELIST}census.csv"),
        "fleet action": client.post(CHANGELIST, action),
    }

    for name, response in downloads.items():
        rows = rows_by_id(response)
        for prefix, formula in FORMULAS.items():
            user = users[prefix]
            row = rows[user["id"]]
            assert row["display_name"] == "'" + formula, (name, prefix, row)
            upn = user["userPrincipalName"]
            assert row["upn"] == ("'" + upn if prefix in UPN_PREFIXES else upn), (name, prefix, row)
        harmless = rows[users[""]["id"]]
        assert (harmless["display_name"], harmless["tenant"]) == ("contoso", WOODGROVE), name
        assert harmless["upn"] == users[""]["userPrincipalName"], name
