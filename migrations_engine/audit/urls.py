"""The audit log's pages that are not about one row, mounted at the console root by
`msp_console/console_urls.py`."""

from __future__ import annotations

from django.urls import path

from migrations_engine.audit.views import verify_chains


def urls(site) -> list:
    """URL patterns wrapped in `site.admin_view`; the view gets the site as a keyword."""
    return [
        path(
            "audit/verify/",
            site.admin_view(verify_chains),
            {"site": site},
            name="migrations_engine_audit_verify",
        ),
    ]
