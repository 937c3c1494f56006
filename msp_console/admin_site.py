"""The console: a custom AdminSite at the site root. Every ModelAdmin registers here (`site`)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse

from migrations_engine.dashboard import dashboard_context
from msp_console.admin_base import SuperusersOnly
from msp_console.console_urls import extra_urls
from staff.entra.config import entra_sign_in


class ConsoleSite(admin.AdminSite):
    """The MSP MFA console. Custom views are added in `get_urls` only where a changelist cannot serve."""

    site_header = "MSP MFA console"
    site_title = "MSP MFA console"
    index_title = "Dashboard"
    # The fleet list is wide (census, policy, migration and consent columns): give it the whole page.
    enable_nav_sidebar = False

    index_template = "migrations_engine/dashboard.html"

    def index(self, request, extra_context=None):
        """The dashboard: fleet tiles and charts of the tenants the user may see (its links replace the app
        list; each app's own index stays at /<app>/)."""
        context = {**dashboard_context(request.user), **(extra_context or {})}
        return super().index(request, extra_context=context)

    def login(self, request, extra_context=None):
        """Django's sign-in page, offering "Sign in with Microsoft" when the Entra ID sign-in is set up."""
        context = {"entra_sign_in": entra_sign_in() is not None, **(extra_context or {})}
        return super().login(request, extra_context=context)

    def logout(self, request, extra_context=None):
        """Signing out of the console also signs a Microsoft sign-in out of Entra ID: otherwise its
        session would sign the next person at this browser straight back in."""
        # `entra`: the user's linked Entra ID account (staff.models.EntraIdentity), if any.
        with_entra = request.user.is_authenticated and hasattr(request.user, "entra")
        response = super().logout(request, extra_context)
        config = entra_sign_in()
        if with_entra and config is not None and request.method == "POST":
            back = config.redirect_uri.replace("/account/entra/callback/", "/login/") or (
                request.build_absolute_uri(reverse("admin:login"))
            )
            return HttpResponseRedirect(config.end_session_url(back))
        return response

    def get_urls(self):
        return extra_urls(self) + super().get_urls()


class StaffUserAdmin(UserAdmin):
    """Django's user admin; setting someone's password asks the person doing it to confirm it is them."""

    def user_change_password(self, request, id, form_url=""):
        if request.method == "POST":
            # Why here: staff.reauth reaches the audit log, whose app imports this module's site.
            from staff.reauth import require_fresh

            if (
                ask := require_fresh(request, "change a staff member's password", self.admin_site)
            ) is not None:
                return ask
        return super().user_change_password(request, id, form_url)


site = ConsoleSite(name="admin")
site.register(User, StaffUserAdmin)
site.register(Group, GroupAdmin)


class JobQueuesAdmin(SuperusersOnly, admin.ModelAdmin):
    """django-rq's dashboard in the app list, superusers only. Its pages live at /django-rq/ (guarded in
    `msp_console.urls`); registering the model here also lets their breadcrumbs resolve on this site."""

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return redirect("django_rq:home")


def _register_job_queues() -> None:
    from django_rq.models import Dashboard

    site.register(Dashboard, JobQueuesAdmin)


_register_job_queues()
