"""The fleet changelist's actions (the customer tenant admin's `actions`). Those that change a tenant
are a POST from the changelist; the first POST shows a page saying what will happen to how many tenants
and users, the second (with `confirm`) does it. "Re-check consent" only asks for a fresh token."""

from __future__ import annotations

import time
import uuid

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Sum
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from migrations_engine.census.services import enqueue_census, progress_url
from migrations_engine.models import MigrationRun, RunItem
from migrations_engine.runs.options_form import RunOptionsForm
from migrations_engine.runs.preflight import check_tenants
from migrations_engine.runs.services import RunConflict, start_rollback, start_run
from msp_console.words import counted
from staff.reauth import require_fresh
from tenants.access import visible_tenants
from tenants.choices import ConsentStatus
from tenants.consent import recheck_consent

MODES = {
    "plan": (
        "Plan (dry run)",
        "reads each tenant and records what a migration would change. Nothing is written.",
    ),
    "pilot": (
        "Start pilot",
        "includes only the pilot group in a new policy and disables per-user MFA for its "
        "members only. Everyone else keeps per-user MFA.",
    ),
    "full": (
        "Start full migration",
        "creates or adopts the MFA policy (report-only first), turns security "
        "defaults off and the policy on together, then disables per-user MFA for every user except "
        "break-glass accounts. Registered methods are kept.",
    ),
}


def _confirm(
    modeladmin, request, queryset, *, action: str, title: str, explain: str, extra: dict | None = None
):
    totals = queryset.aggregate(
        users=Sum("users_total"),
        enabled=Sum("per_user_enabled"),
        enforced=Sum("per_user_enforced"),
        disabled=Sum("per_user_disabled"),
    )
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "explain": explain,
        "action": action,
        "tenants": queryset,
        "totals": totals,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": "_selected_action",
        **(extra or {}),
    }
    return TemplateResponse(request, "admin/tenants/confirm_action.html", context)


def _preflight(queryset, mode: str) -> dict:
    """The confirmation page's pre-flight: per tenant, what blocks it (it will be left out) and what only
    warns; `nothing_starts` when every tenant is blocked."""
    checks = check_tenants(list(queryset), mode=mode)
    return {"preflight": checks, "nothing_starts": bool(checks) and all(c.blocked for c in checks)}


def _run_url(run: MigrationRun) -> str:
    return reverse("admin:migrations_engine_migrationrun_change", args=[run.pk])


def _start(modeladmin, request, queryset, mode: str, **kwargs):
    try:
        run = start_run(mode=mode, tenants=list(queryset), actor=request.user, **kwargs)
    except RunConflict as exc:
        modeladmin.message_user(request, f"{exc}. Nothing was started.", messages.ERROR)
        return HttpResponseRedirect(_run_url(exc.existing))
    except ValidationError as exc:
        modeladmin.message_user(request, "; ".join(exc.messages), messages.ERROR)
        return None
    left_out = (run.preflight or {}).get("left_out", [])
    started = run.items.count()
    note = (
        f" Left out: {', '.join(row['domain'] for row in left_out)} (see the run page)." if left_out else ""
    )
    modeladmin.message_user(
        request,
        f"Run {run.pk} started for {counted(started, 'tenant')}.{note}",
        messages.WARNING if left_out else messages.INFO,
    )
    return HttpResponseRedirect(_run_url(run))


def census(modeladmin, request, queryset):
    """Queue a census of each selected tenant (read-only)."""
    if "confirm" not in request.POST:
        return _confirm(
            modeladmin,
            request,
            queryset,
            action="census",
            title="Run a census",
            explain="reads licences, security defaults, policies and every user's per-user MFA "
            "state and registration. Nothing is written.",
        )
    since = time.time()
    pks = []
    for tenant in queryset:
        enqueue_census(tenant.pk, actor=request.user.get_username())
        pks.append(tenant.pk)
    modeladmin.message_user(request, f"Census queued for {counted(len(pks), 'tenant')}.")
    return HttpResponseRedirect(progress_url(pks, since))


census.short_description = "Run a census"
census.allowed_permissions = ("census",)


def _options_form(request) -> RunOptionsForm:
    """The run options on a confirmation page: bound on the confirming POST, blank on the first."""
    return RunOptionsForm(request.POST if "confirm" in request.POST else None)


def _mode_action(mode: str):
    def action(modeladmin, request, queryset):
        title, explain = MODES[mode]
        form = _options_form(request)
        if "confirm" in request.POST and form.is_valid():
            if mode == "full" and (
                ask := require_fresh(
                    request,
                    f"start a full migration of {counted(queryset.count(), 'tenant')}",
                    modeladmin.admin_site,
                )
            ):
                return ask
            return _start(modeladmin, request, queryset, mode, options=form.cleaned_data["options"])
        return _confirm(
            modeladmin,
            request,
            queryset,
            action=action.__name__,
            title=title,
            explain=explain,
            extra={"options_form": form, **_preflight(queryset, mode)},
        )

    action.__name__ = f"start_{mode}"
    action.short_description = MODES[mode][0]
    action.allowed_permissions = ("plan",) if mode == "plan" else ("migrate",)
    return action


start_plan = _mode_action("plan")
start_full = _mode_action("full")


def start_pilot(modeladmin, request, queryset):
    """A pilot for one tenant: its pilot group is named on the confirmation page."""
    title, explain = MODES["pilot"]
    if queryset.count() != 1:
        modeladmin.message_user(
            request,
            "Choose exactly one tenant for a pilot: the pilot group belongs to that tenant.",
            messages.ERROR,
        )
        return None
    group = request.POST.get("pilot_group_id", "").strip()
    error = ""
    form = _options_form(request)
    if "confirm" in request.POST:
        try:
            uuid.UUID(group)
        except ValueError:
            error = "Enter the pilot group's object id (a GUID from Entra ID > Groups)."
        else:
            if form.is_valid():
                options = form.cleaned_data["options"]
                return _start(modeladmin, request, queryset, "pilot", pilot_group_id=group, options=options)
    return _confirm(
        modeladmin,
        request,
        queryset,
        action="start_pilot",
        title=title,
        explain=explain,
        extra={
            "ask_pilot_group": True,
            "pilot_group_id": group,
            "form_error": error,
            "options_form": form,
            **_preflight(queryset, "pilot"),
        },
    )


start_pilot.short_description = "Start pilot"
start_pilot.allowed_permissions = ("migrate",)


def rollback(modeladmin, request, queryset):
    """Roll each selected tenant back to the snapshot of its latest pilot or full run."""
    latest: dict[int, list] = {}
    skipped = []
    for tenant in queryset:
        item = (
            RunItem.objects.filter(tenant=tenant, run__mode__in=["pilot", "full"], snapshot__complete=True)
            .select_related("run")
            .order_by("-run__created_at")
            .first()
        )
        if item is None:
            skipped.append(tenant.primary_domain)
        else:
            latest.setdefault(item.run_id, []).append(tenant)
    if "confirm" not in request.POST:
        explain = (
            "restores every user's per-user MFA state and security defaults from the snapshot of the "
            "tenant's latest pilot or full run, and turns that run's policy back."
        )
        if skipped:
            explain += f" Not rolled back (no snapshot): {', '.join(skipped)}."
        return _confirm(modeladmin, request, queryset, action="rollback", title="Roll back", explain=explain)
    if ask := require_fresh(
        request, f"roll back {counted(queryset.count(), 'tenant')}", modeladmin.admin_site
    ):
        return ask
    started = []
    for run_id, tenants in latest.items():
        try:
            started.append(
                start_rollback(MigrationRun.objects.get(pk=run_id), actor=request.user, tenants=tenants)
            )
        except (RunConflict, ValidationError) as exc:
            text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            modeladmin.message_user(request, text, messages.ERROR)
    if started:
        modeladmin.message_user(request, f"Rollback started: runs {', '.join(str(r.pk) for r in started)}.")
        if len(started) == 1:
            return HttpResponseRedirect(_run_url(started[0]))
    if skipped:
        modeladmin.message_user(
            request, f"No snapshot to restore for {', '.join(skipped)}.", messages.WARNING
        )
    return None


rollback.short_description = "Roll back"
rollback.allowed_permissions = ("rollback",)


def export_census(modeladmin, request, queryset):
    """The selected tenants' per-user census as one CSV."""
    from django.http import StreamingHttpResponse

    from tenants.census_report import census_csv_rows

    response = StreamingHttpResponse(census_csv_rows(list(queryset)), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="census.csv"'
    return response


export_census.short_description = "Export census (CSV)"
export_census.allowed_permissions = ("view",)


def export_audit(modeladmin, request, queryset):
    """The selected tenants' audit rows as one CSV, streamed (the export is itself recorded)."""
    from django.http import StreamingHttpResponse

    from migrations_engine.audit.export import CONTENT_TYPES, VALUES, iter_chunks
    from migrations_engine.audit.writer import record_staff_action
    from migrations_engine.models import AuditEvent

    tenants = list(queryset)
    last_id = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    rows = (
        AuditEvent.objects.filter(tenant__in=tenants, id__lte=last_id)
        .order_by("id")
        .values_list(*VALUES)
        .iterator(chunk_size=2000)
    )
    for tenant in tenants:
        record_staff_action(
            actor=request.user.get_username(),
            action="audit.exported",
            tenant_id=tenant.pk,
            detail={"format": "csv", "output": "fleet action", "tenants": len(tenants)},
        )
    response = StreamingHttpResponse(iter_chunks("csv", rows), content_type=CONTENT_TYPES["csv"])
    response["Content-Disposition"] = 'attachment; filename="audit.csv"'
    return response


export_audit.short_description = "Export audit log (CSV)"
export_audit.allowed_permissions = ("view",)


_LEVELS = {
    ConsentStatus.GRANTED: messages.SUCCESS,
    ConsentStatus.PARTIAL: messages.WARNING,
    ConsentStatus.PENDING: messages.WARNING,
    ConsentStatus.ERROR: messages.ERROR,
}


@admin.action(description="Re-check consent", permissions=["customers"])
def recheck_consent_action(modeladmin, request, queryset) -> None:
    """Ask the login service for a fresh token per selected tenant; one message per tenant."""
    for tenant in queryset.filter(pk__in=visible_tenants(request.user).values("pk")):
        try:
            consent = recheck_consent(tenant, actor=request.user)
        except ValidationError as exc:
            modeladmin.message_user(request, f"{tenant}: {exc.messages[0]}", messages.ERROR)
            continue
        text = f"{tenant}: {consent.get_status_display()}"
        if consent.missing_roles:
            text += f" (missing {', '.join(consent.missing_roles)})"
        if consent.last_error:
            text += f": {consent.last_error}"
        modeladmin.message_user(request, text, _LEVELS.get(consent.status, messages.INFO))


ACTIONS = [
    census,
    start_plan,
    start_pilot,
    start_full,
    rollback,
    export_census,
    export_audit,
    recheck_consent_action,
]
