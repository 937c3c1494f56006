"""Plans read as plans: a dry run's steps that would change the tenant say what they would change, never
"done"; its verify is skipped; its page says it is a dry run."""

from __future__ import annotations

import pytest

from migrations_engine.runs.services import start_run
from tests.migrations_engine.console_helpers import client_for, staff_user
from tests.migrations_engine.pipeline_helpers import FAST, seed, tenant_named, work

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_plans_timeline_says_would_and_never_done_for_a_change(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    plan = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    client = client_for(staff_user("ops", tenant))

    progress = client.get(f"/runs/{plan.pk}/progress.json").json()
    steps = {s["key"]: s for s in progress["items"][0]["timeline"]}

    assert steps["cut_over"]["state"] == "would" and steps["disable_per_user"]["state"] == "would"
    assert (
        steps["disable_per_user"]["message"].startswith("would: ")
        and "users)" in steps["disable_per_user"]["message"]
    )
    assert steps["verify"]["state"] == "skipped"
    assert steps["check_licence"]["state"] == "done"  # a read really happened
    page = client.get(f"/migrations_engine/migrationrun/{plan.pk}/change/").content.decode()
    assert 'id="run-dry-run"' in page and 'data-step-state="would"' in page
    assert "disable per-user MFA (" in page  # the intended change, in the timeline itself


def test_a_plan_speaks_in_step_names_and_counter_words_not_keys(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    plan = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    client = client_for(staff_user("ops", tenant))
    page = client.get(f"/migrations_engine/migrationrun/{plan.pk}/change/").content.decode()
    diff = page.split('data-field="plan-diff"')[1].split("</table>")[0]
    assert 'data-plan-step="ensure_policy"><td>' in diff and "<td>ensure_policy</td>" not in diff
    assert ">per_user_enabled<" not in page and "Per-user MFA enabled (before)" in page
    progress = client.get(f"/runs/{plan.pk}/progress.json").json()
    item = progress["items"][0]
    assert item["counter_labels"]["users_total"] == "Users"
    assert {s["state_display"] for s in item["timeline"]} <= {"done", "would change", "skipped"}
    assert progress["run"]["finished_words"] in ("just now",) or progress["run"]["finished_words"].endswith(
        "ago"
    )
