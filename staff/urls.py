"""The staff app's pages (sign-in steps, second factor, re-authentication), mounted at the console root.

The second-factor page is wrapped in `site.admin_view` (signed in, staff, never cached, CSRF-checked);
the Entra ID sign-in's two pages are open to anyone (they are how one signs in). The second-factor
middleware lets /account/ through, so these are reachable before the second factor.
"""

from __future__ import annotations

from django.urls import path

from staff.entra.views import entra_callback, entra_login
from staff.second_factor_views import second_factor_view


def urls(site) -> list:
    """URL patterns mounted at the console's root."""
    extra = {"site": site}
    return [
        path(
            "account/second-factor/", site.admin_view(second_factor_view), extra, name="staff_second_factor"
        ),
        path("account/entra/login/", entra_login, name="staff_entra_login"),
        path("account/entra/callback/", entra_callback, name="staff_entra_callback"),
    ]
