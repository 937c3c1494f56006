"""The end of onboarding: the break-glass accounts (asked for here when missing: without them every
migration of the tenant is blocked) and "Run a census now". Both POST-only, CSRF-checked, each checking
the role's permission and the tenant grant."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from migrations_engine.audit.writer import record_staff_action
from migrations_engine.census.services import enqueue_census
from staff import roles
from tenants.access import get_tenant_for_user
from tenants.models import BreakGlassConfig
from tenants.services import set_break_glass


def next_steps_context(tenant) -> dict:
    """What the onboarding pages show under "Next": the break-glass state and the census."""
    glass = BreakGlassConfig.objects.filter(tenant=tenant).first()
    configured = bool(glass and (glass.accounts or glass.group_id))
    return {
        "next_tenant": tenant,
        "break_glass_configured": configured,
        "break_glass": glass,
        "break_glass_url": reverse("admin:tenants_break_glass", args=[tenant.pk]),
        "census_url": reverse("admin:tenants_census_now", args=[tenant.pk]),
    }


def _back(request, tenant) -> HttpResponseRedirect:
    target = request.POST.get("next", "")
    if not (target.startswith("/") and url_has_allowed_host_and_scheme(target, {request.get_host()})):
        target = reverse("admin:tenants_consent_link", args=[tenant.pk])
    return HttpResponseRedirect(target)


@require_POST
def break_glass_view(request, pk, site):
    """Set the tenant's break-glass accounts (one UPN per line) and their minimum."""
    roles.require(request.user, roles.CUSTOMERS)
    tenant = get_tenant_for_user(request.user, pk)
    accounts = [line.strip() for line in request.POST.get("accounts", "").splitlines() if line.strip()]
    try:
        minimum = int(request.POST.get("minimum") or 1)
    except ValueError:
        messages.error(request, "The minimum is a whole number of accounts. Nothing was changed.")
        return _back(request, tenant)
    if not accounts:
        messages.error(
            request, "Enter at least one break-glass account (one UPN per line). Nothing was changed."
        )
        return _back(request, tenant)
    try:
        set_break_glass(tenant, accounts=accounts, minimum_count=minimum, actor=request.user)
    except ValidationError as exc:
        messages.error(request, f"{' '.join(exc.messages)} Nothing was changed.")
        return _back(request, tenant)
    record_staff_action(
        actor=request.user.get_username(),
        action="tenant.break_glass_set",
        tenant_id=tenant.pk,
        detail={"accounts": accounts, "minimum": minimum},
    )
    messages.success(request, f"Break-glass accounts of {tenant.display_name}: {len(accounts)} set.")
    return _back(request, tenant)


@require_POST
def census_now_view(request, pk, site):
    """Queue a census of the tenant (read-only) and go to its page."""
    roles.require(request.user, roles.CENSUS)
    tenant = get_tenant_for_user(request.user, pk)
    enqueue_census(tenant.pk, actor=request.user.get_username())
    messages.success(request, f"Census of {tenant.display_name} queued: its page shows the result.")
    return HttpResponseRedirect(reverse("admin:tenants_customertenant_change", args=[tenant.pk]))
