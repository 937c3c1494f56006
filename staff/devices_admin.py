"""Staff members' authenticators and backup codes in the console, superusers only: removing a lost
phone's authenticator (its owner enrols a new one at the next sign-in) is audited."""

from __future__ import annotations

from django.contrib import admin
from django_otp.plugins.otp_static.admin import StaticDeviceAdmin
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from migrations_engine.audit.writer import record_staff_action
from msp_console.admin_base import SuperusersOnly
from msp_console.admin_site import site

# django-otp registers these on Django's default site, which this console does not serve.
for _model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


class _AuditedDeletes(SuperusersOnly):
    """Only superusers see these and may remove one (each person enrols their own, at sign-in); a
    removal is an audit row naming whose device it was."""

    superusers_may = frozenset({"delete"})

    def delete_model(self, request, obj) -> None:
        self.delete_queryset(request, type(obj).objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset) -> None:
        for device in queryset.select_related("user"):
            record_staff_action(
                actor=request.user.get_username(),
                action="staff.second_factor_removed",
                detail={
                    "user": device.user.get_username(),
                    "device": device.name,
                    "kind": device._meta.model_name,
                },
            )
        queryset.delete()


@admin.register(TOTPDevice, site=site)
class AuthenticatorAdmin(_AuditedDeletes, TOTPDeviceAdmin):
    """Authenticator apps (TOTP) of staff members."""


@admin.register(StaticDevice, site=site)
class BackupCodesAdmin(_AuditedDeletes, StaticDeviceAdmin):
    """Backup codes of staff members."""
