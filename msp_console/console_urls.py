"""The console's pages that are not one model's admin, mounted at the site root by `ConsoleSite.get_urls`
before the ModelAdmin URLs. Each feature with such pages has a `urls.py` whose `urls(site)` lists them,
each wrapped in `site.admin_view` (signed in, staff, never cached, CSRF-checked); a new one is added here.
"""

from __future__ import annotations

from migrations_engine.audit import urls as audit_urls
from migrations_engine.census import urls as census_urls
from migrations_engine.runs import urls as runs_urls
from staff import urls as staff_urls
from tenants import urls as tenants_urls

FEATURES = (staff_urls, tenants_urls, runs_urls, census_urls, audit_urls)


def extra_urls(site) -> list:
    """Every feature's pages, in the order above."""
    return [pattern for feature in FEATURES for pattern in feature.urls(site)]
