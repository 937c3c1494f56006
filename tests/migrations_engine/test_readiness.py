"""Run options (grant, trusted IPs, sign-in frequency, readiness) and the readiness gate before cut-over:
checked input, real runs against the simulator, the console and the command line."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from migrations_engine.models import AuditEvent, MigrationRun
from migrations_engine.runs.options import parse_cidrs, validate
from migrations_engine.runs.options_form import cli_options
from migrations_engine.runs.services import start_run
from migrations_engine.steps.readiness_reads import LEGACY_CLIENTS
from tests.migrations_engine.console_helpers import client_for, csrf_post, staff_user
from tests.migrations_engine.pipeline_helpers import FAST, effective_writes, item_of, seed, tenant_named, work


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.5/24", "host bits set: did you mean 10.0.0.0/24"),
        ("10.0.0.1", "no prefix length"),
        ("0.0.0.0/0", "every address"),
        ("16.0.0.0/4", "wider than /8"),
        ("not-an-ip/24", "not an IPv4 or IPv6 CIDR"),
        ("2001:db8::1/48", "host bits set: did you mean 2001:db8::/48"),
    ],
)
def test_bad_ip_ranges_are_named_with_what_is_wrong(text, message):
    with pytest.raises(ValidationError) as caught:
        parse_cidrs([text])
    assert message in " ".join(caught.value.messages)


def test_good_ranges_are_normalised_and_deduplicated():
    assert parse_cidrs("203.0.113.0/24, 2001:DB8::/32\n203.0.113.0/24 198.51.100.7/32") == [
        "203.0.113.0/24",
        "2001:db8::/32",
        "198.51.100.7/32",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"grant": "sms"}, "Unknown grant"),
        ({"sign_in_frequency": {"type": "weeks", "value": 2}}, "days or hours"),
        ({"sign_in_frequency": {"type": "hours", "value": 24}}, "1 to 23"),
        ({"sign_in_frequency": {"type": "days", "value": 0}}, "1 to 365"),
        ({"named_location": {"cidrs": [], "from_legacy": False}}, "needs IP ranges"),
        ({"readiness_max_unregistered_pct": 120}, "0 to 100"),
        ({"readiness_override": "x" * 501}, "under 500"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValidationError) as caught:
        validate(options)
    assert message in " ".join(caught.value.messages)


def test_command_line_options_parse_like_the_form():
    options = cli_options(
        {
            "grant": "phishing_resistant",
            "trusted_ips": "203.0.113.0/24",
            "trusted_ips_from_legacy": True,
            "sign_in_frequency": "14d",
            "readiness_threshold": 30,
            "readiness_override": "",
        }
    )
    assert options["grant"] == "phishing_resistant"
    assert (
        options["named_location"]["cidrs"] == ["203.0.113.0/24"] and options["named_location"]["from_legacy"]
    )
    assert options["sign_in_frequency"] == {"value": 14, "type": "days"}
    assert cli_options({"sign_in_frequency": "12h"})["sign_in_frequency"] == {"value": 12, "type": "hours"}
    assert cli_options({"sign_in_frequency": "legacy"})["sign_in_frequency"] == {"from_legacy": True}
    with pytest.raises(ValidationError, match="14d, 12h or legacy"):
        cli_options({"sign_in_frequency": "two weeks"})


@pytest.mark.django_db(transaction=True)
def test_a_full_run_stops_at_the_gate_with_no_write_and_goes_on_with_an_audited_override(
    fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    fabrikam = tenant_named("fabrikam")  # about a third of its users are not registered
    strict = {**FAST, "readiness_max_unregistered_pct": 20}
    run = start_run(mode="full", tenants=[fabrikam], actor="test", options=strict)
    work(queue)
    item = item_of(run)
    assert item.status == "failed" and "Readiness:" in item.failure_reason and "20%" in item.failure_reason
    assert effective_writes(fast_graph, fabrikam) == []
    report = item.state["readiness"]
    assert report["blocked"] and report["unregistered"] > 0 and report["unregistered_pct"] > 20
    assert len(report["unregistered_users"]) == min(report["unregistered"], 50)
    assert (
        report["in_scope_enabled"]
        == item.snapshot.users.filter(account_enabled=True)
        .exclude(user_id__in=item.state["break_glass_ids"])
        .count()
    )

    # A plan says the same, without stopping.
    plan = start_run(mode="plan", tenants=[fabrikam], actor="test", options=strict)
    work(queue)
    plan_item = item_of(plan)
    assert plan_item.status == "succeeded"
    assert any(d["change"] == "a full run would stop at the readiness gate" for d in plan_item.plan_diff)

    override = {**strict, "readiness_override": "Helpdesk briefed; registration campaign runs this week"}
    run = start_run(mode="full", tenants=[fabrikam], actor="test", options=override)
    work(queue)
    item = item_of(run)
    assert item.status == "succeeded", item.failure_reason
    row = AuditEvent.objects.get(action="readiness.overridden", run_id=run.pk)
    assert row.detail["reason"].startswith("Helpdesk briefed") and row.tenant_id == fabrikam.pk
    assert row.detail["unregistered_pct"] == item.state["readiness"]["unregistered_pct"]


@pytest.mark.django_db(transaction=True)
def test_the_gate_reports_microsoft_managed_policies_and_the_tenant_page_shows_them(
    fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    northwind = tenant_named("northwind")
    call_command("census", "--tenant", northwind.primary_domain, "--no-progress")
    northwind.refresh_from_db()
    managed = [p for p in northwind.census_detail["policies"] if p["microsoftManaged"]]
    assert {p["displayName"] for p in managed} >= {"Multifactor authentication for all users"}
    run = start_run(mode="plan", tenants=[northwind], actor="test", options=FAST)
    work(queue)
    report = item_of(run).state["readiness"]
    assert {p["displayName"] for p in report["policies"]["managed"]} == {p["displayName"] for p in managed}
    assert any(p["managed"] for p in report["policies"]["covering"])
    boss = client_for(staff_user("boss", superuser=True))
    page = boss.get(f"/tenants/customertenant/{northwind.pk}/change/").content.decode()
    assert 'data-microsoft-managed="true"' in page and "Microsoft-managed" in page
    assert 'id="readiness-gate">The readiness gate at' in page
    run_page = boss.get(f"/migrations_engine/migrationrun/{run.pk}/change/").content.decode()
    assert 'data-field="readiness"' in run_page and "Microsoft-managed" in run_page


@pytest.mark.django_db
def test_the_fleet_confirmation_page_takes_options_and_refuses_bad_ones(demo_sim, tmp_path):
    seed(demo_sim, tmp_path)
    contoso = tenant_named("contoso")
    boss = client_for(staff_user("boss", superuser=True), csrf=True)
    listing = "/tenants/customertenant/"
    base = {"action": "start_plan", "_selected_action": [contoso.pk]}
    page = csrf_post(boss, listing, listing, base).content.decode()
    assert 'name="trusted_ips"' in page and 'name="grant"' in page and 'name="readiness_override"' in page
    bad = csrf_post(
        boss, listing, listing, {**base, "confirm": "yes", "grant": "mfa", "trusted_ips": "10.0.0.5/24"}
    )
    assert bad.status_code == 200 and "did you mean 10.0.0.0/24" in bad.content.decode()
    assert not MigrationRun.objects.exists()
    good = csrf_post(
        boss,
        listing,
        listing,
        {
            **base,
            "confirm": "yes",
            "grant": "mfa_strength",
            "trusted_ips": "203.0.113.0/24",
            "sign_in_frequency": "days",
            "sign_in_frequency_value": "14",
        },
    )
    assert good.status_code == 302
    run = MigrationRun.objects.get()
    assert run.options["grant"] == "mfa_strength"
    assert run.options["named_location"]["cidrs"] == ["203.0.113.0/24"]
    assert run.options["sign_in_frequency"] == {"value": 14, "type": "days"}


@pytest.mark.django_db
def test_start_run_refuses_bad_options_and_starts_nothing(demo_sim, tmp_path):
    seed(demo_sim, tmp_path)
    with pytest.raises(CommandError, match="no prefix length"):
        call_command(
            "start_run", "--mode", "plan", "--tenants", "contoso.onmicrosoft.com", "--trusted-ips", "10.1.1.1"
        )
    with pytest.raises(CommandError, match="14d, 12h or legacy"):
        call_command(
            "start_run", "--mode", "plan", "--tenants", "contoso.onmicrosoft.com", "--sign-in-frequency", "1w"
        )
    assert not MigrationRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_gate_names_legacy_client_users_and_leaves_disabled_mailboxes_out(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    contoso, woodgrove = tenant_named("contoso"), tenant_named("woodgrove")
    run = start_run(mode="plan", tenants=[contoso, woodgrove], actor="test", options=FAST)
    work(queue)
    report = run.items.get(tenant=contoso).state["readiness"]
    legacy = {u["upn"].split("@")[0]: u["clients"] for u in report["legacy_sign_ins"]}
    assert legacy["bianca.graham03"] == ["IMAP4"]
    assert legacy["christie.gonzalez06"] == ["Authenticated SMTP"]
    assert legacy["debra.robbins07"] == ["Exchange ActiveSync"]
    assert legacy["allan.hobbs02"] == ["POP3"]
    enforced = {upn.split("@")[0] for upn in report["enforced_with_legacy_clients"]}
    assert enforced == {"bianca.graham03", "christie.gonzalez06", "debra.robbins07"}
    assert report["app_passwords_allowed"] is True
    assert any("legacy clients" in w for w in report["warnings"])
    assert any("App passwords are allowed" in w for w in report["warnings"])

    wood = run.items.get(tenant=woodgrove)
    report = wood.state["readiness"]
    disabled = set(wood.snapshot.users.filter(account_enabled=False).values_list("upn", flat=True))
    assert {u.split("@")[0] for u in disabled} >= {"info", "boardroom", "former.employee"}
    assert report["disabled_accounts"] == len(disabled)
    assert not disabled & set(report["unregistered_users"])
    assert report["app_passwords_allowed"] is False


@pytest.mark.django_db(transaction=True)
def test_sign_in_logs_read_one_client_at_a_time_and_unreadable_logs_warn(fast_graph, tmp_path, queue):
    """Graph takes only `eq` on clientAppUsed (https://learn.microsoft.com/graph/api/resources/signin):
    the gate asks once per legacy client; a log it cannot read is a warning, never a silent pass."""
    seed(fast_graph, tmp_path)
    contoso = tenant_named("contoso")
    run = start_run(mode="plan", tenants=[contoso], actor="test", options=FAST)
    work(queue)
    log = fast_graph.state.log.since(0, tenant=str(contoso.tenant_id))
    sign_in_reads = [unquote(e["path"]) for e in log if "auditLogs/signIns" in e["path"]]
    asked = {
        p.split("clientAppUsed eq '")[1].split("'")[0] for p in sign_in_reads if "clientAppUsed eq '" in p
    }
    assert asked == set(LEGACY_CLIENTS) and not any(" ne " in p for p in sign_in_reads)

    fast_graph.add_fault_rules(
        str(contoso.tenant_id),
        {"method": "GET", "path_contains": "auditLogs/signIns", "status": 403, "times": 0},
    )
    again = start_run(mode="plan", tenants=[contoso], actor="test", options=FAST)
    work(queue)
    item = again.items.get()
    assert item.status == "succeeded"
    assert any(
        w.startswith("Legacy clients not checked: sign-in logs unreadable") for w in item.state["warnings"]
    )
    assert run.items.get().state["readiness"]["legacy_sign_in_users"] > 0


@pytest.mark.django_db(transaction=True)
def test_the_gate_reads_its_reports_while_the_census_reads_users(fast_graph, tmp_path, queue):
    """Reports have their own limit (5 requests per 10 s per app and tenant) apart from the resource units
    per-user reads cost, so the gate's report requests start once the licence is checked and overlap the
    census instead of following it; what they found still lands on the snapshot."""
    seed(fast_graph, tmp_path)
    contoso = tenant_named("contoso")
    run = start_run(mode="plan", tenants=[contoso], actor="test", options=FAST)
    work(queue)
    item = run.items.get(tenant=contoso)
    log = fast_graph.state.log.since(0, tenant=str(contoso.tenant_id))
    state_reads = [e["seq"] for e in log if e["method"] == "GET" and e["path"].endswith("/requirements")]
    census_reads = state_reads[: item.snapshot.user_count]
    reports = [e["seq"] for e in log if "/reports/" in e["path"] or "/auditLogs/" in e["path"]]
    assert census_reads and reports
    assert min(reports) < max(census_reads), "the first report request waited for the whole census"
    report = item.state["readiness"]
    assert report["registration_read"]
    unregistered = item.snapshot.users.filter(mfa_registered=False, account_enabled=True)
    assert report["unregistered"] == unregistered.count()
