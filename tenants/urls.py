"""The tenants app's pages (`tenants/views.py`), mounted at the console root by
`msp_console/console_urls.py`."""

from __future__ import annotations

from django.urls import path

from tenants.views import (
    add_customer_view,
    break_glass_view,
    census_now_view,
    consent_callback_view,
    consent_link_view,
    import_tenants_view,
)


def urls(site) -> list:
    """URL patterns mounted at the console's root, each wrapped in `site.admin_view`."""
    extra = {"site": site}
    return [
        path("customers/add/", site.admin_view(add_customer_view), extra, name="tenants_onboard"),
        path("customers/import/", site.admin_view(import_tenants_view), extra, name="tenants_import"),
        path(
            "customers/<int:pk>/consent-link/",
            site.admin_view(consent_link_view),
            extra,
            name="tenants_consent_link",
        ),
        path(
            "customers/<int:pk>/break-glass/",
            site.admin_view(break_glass_view),
            extra,
            name="tenants_break_glass",
        ),
        path(
            "customers/<int:pk>/census/", site.admin_view(census_now_view), extra, name="tenants_census_now"
        ),
        path(
            "consent/callback/",
            site.admin_view(consent_callback_view),
            extra,
            name="tenants_consent_callback",
        ),
    ]
