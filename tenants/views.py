"""The tenants app's pages that are not one changelist or change form: onboarding (add customer, its
consent link, the consent callback, then the break-glass accounts and a first census) and the CSV import.
`tenants/urls.py` mounts them; the fleet list, a tenant's page and the fleet actions are its admin's.

Each view parses input, calls one service in `tenants.consent`, and renders. A consent URL carries its
state in clear, and only the state's hash is stored, so the URL is kept in the staff session it is bound
to, for the link page to show again.
"""

from __future__ import annotations

import time

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from migrations_engine.audit.writer import record_staff_action
from migrations_engine.census.services import enqueue_census, progress_url
from migrations_engine.graph.permissions import REQUIRED_ROLES
from msp_console.words import counted
from staff import roles
from tenants.access import get_tenant_for_user
from tenants.consent import ConsentRefused, complete_consent, new_consent_link, onboard_customer
from tenants.importing import (
    COLUMNS,
    MAX_FILE_BYTES,
    ImportRefused,
    RowError,
    import_tenants,
    parse_tenant_csv,
)
from tenants.models import BreakGlassConfig
from tenants.services import set_break_glass

_SESSION_LINKS = "tenants.consent_links"  # {tenant pk: consent URL} made in this session


class AddCustomerForm(forms.Form):
    """What staff type to onboard a customer."""

    text = forms.CharField(
        label="Tenant id or domain",
        max_length=253,
        help_text="The customer's Entra tenant id (a GUID) or one of its domains (contoso.onmicrosoft.com).",
    )
    display_name = forms.CharField(label="Display name", max_length=200)
    domain = forms.CharField(
        label="Primary domain",
        max_length=253,
        required=False,
        help_text="Only when you give a tenant id: the tenant's primary domain.",
    )


def _remember_link(request, tenant_pk: int, url: str) -> None:
    links = dict(request.session.get(_SESSION_LINKS, {}))
    links[str(tenant_pk)] = url
    request.session[_SESSION_LINKS] = links


def _forget_link(request, tenant_pk: int) -> None:
    links = dict(request.session.get(_SESSION_LINKS, {}))
    if links.pop(str(tenant_pk), None) is not None:
        request.session[_SESSION_LINKS] = links


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


def _roles_in_words(roles) -> list[tuple[str, str]]:
    return [(role, REQUIRED_ROLES.get(role, "")) for role in roles]


@require_http_methods(["GET", "POST"])
def add_customer_view(request, site):
    """The "Add customer" form; a valid POST onboards the tenant and redirects to its consent link."""
    roles.require(request.user, roles.CUSTOMERS)
    form = AddCustomerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tenant, url = onboard_customer(
                text=form.cleaned_data["text"],
                display_name=form.cleaned_data["display_name"],
                domain=form.cleaned_data["domain"],
                actor=request.user,
                request=request,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            _remember_link(request, tenant.pk, url)
            return HttpResponseRedirect(reverse("admin:tenants_consent_link", args=[tenant.pk]))
    context = {**site.each_context(request), "title": "Add customer", "form": form}
    return TemplateResponse(request, "tenants/add_customer.html", context)


@require_http_methods(["GET", "POST"])
def consent_link_view(request, pk, site):
    """The consent link to send (or open), what it asks for, and where the tenant's consent stands."""
    tenant = get_tenant_for_user(request.user, pk)
    if request.method == "POST":
        roles.require(request.user, roles.CUSTOMERS)
        _remember_link(request, tenant.pk, new_consent_link(tenant, actor=request.user, request=request))
        return HttpResponseRedirect(reverse("admin:tenants_consent_link", args=[tenant.pk]))
    consent = getattr(tenant, "consent", None)
    context = {
        **site.each_context(request),
        "title": f"Admin consent for {tenant.display_name}",
        "tenant": tenant,
        "consent": consent,
        "consent_url": request.session.get(_SESSION_LINKS, {}).get(str(tenant.pk), ""),
        "permissions": _roles_in_words(REQUIRED_ROLES),
        "missing": _roles_in_words(consent.missing_roles if consent else []),
        **next_steps_context(tenant),
    }
    return TemplateResponse(request, "tenants/consent_link.html", context)


@require_GET
def consent_callback_view(request, site):
    """Where the customer's admin lands after the consent page: success, partial, or why it is refused."""
    context = {**site.each_context(request), "title": "Admin consent"}
    try:
        tenant = complete_consent(request=request, params=request.GET)
    except ConsentRefused as exc:
        context["refused"] = exc.message
        return TemplateResponse(request, "tenants/consent_result.html", context, status=400)
    _forget_link(request, tenant.pk)
    context.update(
        tenant=tenant, consent=tenant.consent, missing=_roles_in_words(tenant.consent.missing_roles)
    )
    context.update(next_steps_context(tenant))
    return TemplateResponse(request, "tenants/consent_result.html", context)


class ImportTenantsForm(forms.Form):
    """A CSV file of customer tenants to add, all or none."""

    file = forms.FileField(label="CSV file", help_text="UTF-8, with the header " + ",".join(COLUMNS))
    dry_run = forms.BooleanField(label="Only check the file", required=False)


@require_http_methods(["GET", "POST"])
def import_tenants_view(request, site):
    """Upload a CSV of tenants: every row is checked first; any bad row and nothing is imported."""
    roles.require(request.user, roles.CUSTOMERS)
    form = ImportTenantsForm(request.POST or None, request.FILES or None)
    errors: list[RowError] = []
    checked = None
    status = 200
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > MAX_FILE_BYTES:
            errors = [RowError(0, f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.")]
        else:
            plan = parse_tenant_csv(upload.read(), user=request.user)
            errors = plan.errors
            if not errors and form.cleaned_data["dry_run"]:
                checked = len(plan.rows)
            elif not errors:
                try:
                    tenants = import_tenants(plan, actor=request.user, grant_to=request.user)
                except ImportRefused as exc:
                    errors = exc.errors
                else:
                    messages.success(
                        request,
                        f"{counted(len(tenants), 'customer tenant')} imported. Send each its "
                        "admin-consent link from its consent page.",
                    )
                    return HttpResponseRedirect(reverse("admin:tenants_customertenant_changelist"))
        status = 400 if errors else 200
    elif request.method == "POST":
        status = 400
    context = {
        **site.each_context(request),
        "title": "Import customers",
        "form": form,
        "errors": errors,
        "checked": checked,
        "columns": COLUMNS,
    }
    return TemplateResponse(request, "tenants/import_tenants.html", context, status=status)


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
    since = time.time()
    enqueue_census(tenant.pk, actor=request.user.get_username())
    messages.success(request, f"Census of {tenant.display_name} queued.")
    return HttpResponseRedirect(progress_url([tenant.pk], since))
