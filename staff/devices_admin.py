"""Staff members' authenticators and backup codes in the console, superusers only: removing a lost
phone's authenticator (its owner enrols a new one at the next sign-in) is audited."""

from __future__ import annotations

from django.contrib import admin
from django_otp.plugins.otp_static.admin import StaticDeviceAdmin
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from migrations_engine.audit.writer import record_staff_action
from msp_console.admin_site import site

# django-otp registers these on Django's default site, which this console does not serve.
for _model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


class _AuditedDeletes:
    """Only superusers see these; a removal is an audit row naming whose device it was."""

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request) -> bool:
        return False  # each person enrols their own, at sign-in

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

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
