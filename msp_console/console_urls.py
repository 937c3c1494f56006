"""Custom admin views of the console, mounted by `ConsoleSite.get_urls` before the ModelAdmin URLs."""

from __future__ import annotations


def extra_urls(site) -> list:
    """Each app contributes its custom views (wrapped in `site.admin_view`: login, staff, no cache)."""
    from migrations_engine.runs import views as engine_console
    from staff import urls as staff_urls
    from tenants import console as tenants_console

    return staff_urls.urls(site) + tenants_console.urls(site) + engine_console.urls(site)
