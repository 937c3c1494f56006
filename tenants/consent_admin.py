"""The "Re-check consent" admin action of the customer tenant changelist."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from tenants.access import visible_tenants
from tenants.choices import ConsentStatus
from tenants.consent import recheck_consent

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
