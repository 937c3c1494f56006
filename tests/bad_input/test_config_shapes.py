"""Configuration of the wrong shape: refused when saved, with the field named; and a run (or a drift check,
or a wave's tick) that meets a row written around those checks fails with a reason in words, never a
traceback.

Break-glass `accounts` is a JSON list of UPNs or object ids, `minimum_count` a whole number from 1; run
options are `run_options` and the basic numbers; a wave is `waves.create_wave`'s arguments.
"""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from migrations_engine.choices import DriftCheckStatus, WaveStatus
from migrations_engine.drift.services import check_tenant
from migrations_engine.models import MigrationRun, Wave, WaveSlot
from migrations_engine.runs import options as run_options
from migrations_engine.runs.services import start_run
from migrations_engine.waves import services as waves
from tenants.models import BreakGlassConfig
from tenants.services import add_tenant, set_break_glass
from tests.migrations_engine.console_helpers import client_for, staff_user
from tests.migrations_engine.pipeline_helpers import FAST, item_of, seed, sim_log, tenant_named, work

UPN = "bg1@contoso.com"


def _tenant(name: str = "contoso"):
    return add_tenant(
        tenant_id=str(uuid.uuid4()), domain=f"{name}.com", display_name=name.title(), actor="test"
    )


def _refused(call) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value.message_dict


# --- break-glass: refused at save time -------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("given", "field", "words"),
    [
        ({"accounts": UPN}, "accounts", "not a string"),
        ({"accounts": {"upn": UPN}}, "accounts", "not an object"),
        ({"accounts": [1, None]}, "accounts", "Entry 1 is a number"),
        ({"accounts": [UPN, None]}, "accounts", "Entry 2 is null"),
        ({"accounts": ["not an upn"]}, "accounts", "not a user principal name"),
        ({"accounts": [UPN, " BG1@contoso.com "]}, "accounts", "listed twice"),
        ({"accounts": []}, "accounts", "at least one"),
        ({"accounts": [UPN], "minimum_count": 0}, "minimum_count", "greater than or equal to 1"),
        ({"accounts": [UPN], "minimum_count": 2}, "minimum_count", "more than the 1 accounts"),
        ({"accounts": [UPN], "group_id": "not-a-guid"}, "group_id", "not a valid UUID"),
    ],
)
def test_a_break_glass_configuration_of_the_wrong_shape_is_refused_naming_the_field(given, field, words):
    tenant = _tenant()
    errors = _refused(lambda: set_break_glass(tenant, actor="test", **given))
    assert field in errors, errors
    assert words in " ".join(errors[field])
    assert not BreakGlassConfig.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db
def test_a_group_may_make_up_a_minimum_above_the_accounts_listed():
    config = set_break_glass(
        _tenant(), accounts=[f" {UPN} "], group_id=str(uuid.uuid4()), minimum_count=3, actor="test"
    )
    assert (config.accounts, config.minimum_count) == ([UPN], 3)


def _change_form_data(page) -> dict:
    """What a browser posts back from a tenant's change page: every form and inline as it was shown."""
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is not None:
                data[form.add_prefix(name)] = value
    return data


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "typed", "words"),
    [
        ("accounts", '"bg1@contoso.com"', "not a string"),
        ("accounts", "[1, null]", "Entry 1 is a number"),
        ("minimum_count", "2", "more than the 1 accounts"),
    ],
)
def test_the_tenant_page_shows_a_bad_break_glass_value_on_its_field(field, typed, words):
    tenant = _tenant()
    set_break_glass(tenant, accounts=[UPN], actor="test")
    boss = client_for(staff_user("boss", superuser=True))
    url = f"/tenants/customertenant/{tenant.pk}/edit/"  # the tenant's small edit form
    page = boss.get(url)
    assert page.status_code == 200
    data = _change_form_data(page)
    data[f"break_glass-0-{field}"] = typed
    answer = boss.post(url, data)
    assert answer.status_code == 200  # the form again, not a redirect: nothing saved
    [inline] = [i for i in answer.context["inline_admin_formsets"] if i.formset.model is BreakGlassConfig]
    errors = inline.formset.forms[0].errors
    assert words in " ".join(errors.get(field, [])), errors
    assert BreakGlassConfig.objects.get(tenant=tenant).accounts == [UPN]


# --- run options and waves: refused when made -----------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"settle_seconds": "abc"}, "settle_seconds"),
        ({"settle_seconds": -5}, "settle_seconds"),
        ({"replication_wait_seconds": [60]}, "replication_wait_seconds"),
        ({"whatif_sample": 2.5}, "whatif_sample"),
        ({"whatif_sample": True}, "whatif_sample"),
        ({"grant": ["mfa"]}, "grant"),
        ({"named_location": ["203.0.113.0/24"]}, "named_location"),
        ({"named_location": {"cidrs": 24}}, "named_location.cidrs"),
        ({"named_location": {"cidrs": ["203.0.113.0/24"], "display_name": 7}}, "named_location.display_name"),
        ({"sign_in_frequency": "14d"}, "sign_in_frequency"),
        ({"sign_in_frequency": {"type": ["days"], "value": 14}}, "Sign-in frequency"),
        ({"sign_in_frequency": {"type": "days", "value": {"n": 14}}}, "Sign-in frequency"),
        ({"readiness_max_unregistered_pct": [10]}, "readiness threshold"),
        ({"readiness_override": {"why": "x"}}, "readiness_override"),
        (["grant", "mfa"], "Run options must be an object"),
    ],
)
def test_run_options_of_the_wrong_type_are_refused_naming_the_option(options, words):
    with pytest.raises(ValidationError) as caught:
        run_options.validate(options)
    assert words in " ".join(caught.value.messages)


@pytest.mark.django_db
def test_a_run_with_an_option_of_the_wrong_type_is_not_started():
    tenant = _tenant()
    with pytest.raises(ValidationError, match="settle_seconds"):
        start_run(mode="plan", tenants=[tenant], actor="test", options={**FAST, "settle_seconds": "abc"})
    assert not MigrationRun.objects.exists()


def _wave_arguments(tenant) -> dict:
    return {
        "name": "shapes",
        "mode": "plan",
        "tenants": [tenant],
        "time_zone": "UTC",
        "starts_at": timezone.now() + datetime.timedelta(hours=1),
        "actor": "test",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("wrong", "field"),
    [
        ({"rings": "2"}, "rings"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"window_minutes": None}, "window_minutes"),
        ({"ring_delay_days": True}, "ring_delay_days"),
        ({"tenants": "contoso.com"}, "tenants"),
        ({"tenants": None}, "tenants"),
        ({"pilot_tenants": ["contoso.com"]}, "pilot_tenants"),
        ({"starts_at": "2030-01-01T22:00"}, "starts_at"),
        ({"selection": ["contoso.com"]}, "selection"),
        ({"options": [["grant", "mfa"]]}, "options must be an object"),
        ({"options": {"sign_in_frequency": "14d"}}, "sign_in_frequency"),
        ({"name": ["shapes"]}, "name"),
        ({"name": "x" * 201}, "at most 200 characters"),
    ],
)
def test_a_wave_of_the_wrong_shape_is_refused_naming_the_argument(wrong, field):
    tenant = _tenant()
    with pytest.raises(ValidationError) as caught:
        waves.create_wave(**{**_wave_arguments(tenant), **wrong})
    assert field in " ".join(caught.value.messages)
    assert not Wave.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_wave_whose_stored_options_are_of_the_wrong_shape_halts_with_the_reason(queue):
    tenant = _tenant()
    set_break_glass(tenant, accounts=["bg@contoso.com"], actor="test")  # the pre-flight wants one
    wave = waves.create_wave(**_wave_arguments(tenant))
    Wave.objects.filter(pk=wave.pk).update(options=["grant", "mfa"])  # around create_wave's checks
    result = waves.tick(wave.pk, now=waves.window(wave, 0).start + datetime.timedelta(minutes=1))
    wave.refresh_from_db()
    assert result.status == WaveStatus.HALTED == wave.status
    assert "options cannot be used" in wave.status_message and "must be an object" in wave.status_message
    assert wave.next_fire_at is None
    assert not WaveSlot.objects.filter(wave=wave).exists() and not MigrationRun.objects.exists()


# --- rows written around the checks: a run fails in words ------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("written", "words"),
    [
        ({"accounts": "x@y"}, "accounts: A list of UPNs or object ids is needed, not a string"),
        ({"accounts": [1, None]}, "accounts: Entry 1 is a number"),
        ({"minimum_count": 0}, "minimum_count: A whole number of at least 1"),  # would pass with none found
    ],
)
def test_a_run_that_meets_a_break_glass_row_of_the_wrong_shape_fails_with_the_reason(
    fast_graph, tmp_path, queue, written, words
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    BreakGlassConfig.objects.filter(tenant=tenant).update(**written)  # as a hand-made UPDATE would
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "failed", (item.status, item.failure_reason, item.traceback)
    assert "break-glass" in item.failure_reason and words in item.failure_reason
    assert "No change was made" in item.failure_reason and item.traceback == ""
    assert item.current_step == "guard_break_glass" or item.step_log[-1]["key"] == "guard_break_glass"
    writes = [
        r for r in sim_log(fast_graph, tenant) if r["method"] != "GET" and not r["path"].endswith("$batch")
    ]
    assert writes == []


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_stored_options_are_of_the_wrong_type_fails_with_the_reason(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    run = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)
    MigrationRun.objects.filter(pk=run.pk).update(options={**run.options, "settle_seconds": "abc"})
    work(queue)
    item = item_of(run)
    assert item.status == "failed", (item.status, item.failure_reason)
    assert "options cannot be used" in item.failure_reason and "settle_seconds" in item.failure_reason
    assert item.traceback == ""


@pytest.mark.django_db(transaction=True)
def test_a_drift_check_that_meets_a_break_glass_row_of_the_wrong_shape_records_the_reason(
    fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    assert item_of(run).status == "succeeded", item_of(run).failure_reason
    BreakGlassConfig.objects.filter(tenant=tenant).update(accounts=[1, None])
    tenant.refresh_from_db()
    check = check_tenant(tenant, actor="test")
    assert check.status == DriftCheckStatus.ERROR
    assert "break-glass configuration cannot be used" in check.error and "Entry 1 is a number" in check.error
