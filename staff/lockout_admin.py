"""Sign-in lockouts in the console (django-axes' failure records): who is locked out, until when, and an
audited Unlock action. Superusers only: unlocking lets a guesser try again."""

from __future__ import annotations

from axes.models import AccessAttempt
from django.contrib import admin
from django.utils import timezone

from msp_console.admin_base import SuperusersOnly
from msp_console.admin_site import site
from staff.lockout import is_locked, lockout_ends, unlock


@admin.register(AccessAttempt, site=site)
class SignInLockoutAdmin(SuperusersOnly, admin.ModelAdmin):
    """Failed sign-ins by username and address; those at the limit are locked out until the time shown."""

    list_display = ("username", "ip_address", "failures_since_start", "attempt_time", "locked_until")
    search_fields = ("username", "ip_address")
    ordering = ("-attempt_time",)
    actions = ["unlock_selected"]
    fields = ("username", "ip_address", "user_agent", "failures_since_start", "attempt_time", "path_info")
    readonly_fields = fields

    # Nothing is deleted but through Unlock, which is audited.

    def has_unlock_permission(self, request) -> bool:
        return self.has_module_permission(request)

    @admin.display(description="locked until")
    def locked_until(self, attempt: AccessAttempt) -> str:
        if not is_locked(attempt.username or "", attempt.ip_address or ""):
            return "not locked"
        ends = lockout_ends(attempt.username or "", attempt.ip_address or "")
        return "ended" if ends <= timezone.now() else timezone.localtime(ends).strftime("%Y-%m-%d %H:%M %Z")

    @admin.action(description="Unlock (delete these failure records)", permissions=["unlock"])
    def unlock_selected(self, request, queryset) -> None:
        count = unlock(queryset, actor=request.user.get_username())
        self.message_user(request, f"Unlocked: {count} failure record(s) removed; recorded in the audit log.")
