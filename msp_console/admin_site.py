"""The console: a custom AdminSite at the site root. Every ModelAdmin registers here (`site`)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User


class ConsoleSite(admin.AdminSite):
    """The MSP MFA console. Custom views are added in `get_urls` only where a changelist cannot serve."""

    site_header = "MSP MFA console"
    site_title = "MSP MFA console"
    index_title = "Dashboard"

    def get_urls(self):
        from msp_console.console_urls import extra_urls

        return extra_urls(self) + super().get_urls()


site = ConsoleSite(name="admin")
site.register(User, UserAdmin)
site.register(Group, GroupAdmin)
